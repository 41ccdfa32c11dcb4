"""Gate checks: a queued message that evaluates one gate later (after its registration has been
answered, or when a failure's grace runs out). The queue's duplicate detection keeps one check
per gate and moment however often it is asked for."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime

from connector.core.gates import Gate
from connector.queue.sender import MessageSender, OutgoingMessage, QueueUnavailableError

logger = logging.getLogger(__name__)


class GateChecks:
    def __init__(self, sender: MessageSender) -> None:
        self._sender = sender

    def queue(self, gate: Gate, at: datetime, key: str) -> bool:
        """Evaluate `gate` at `at`; `key` names the occasion (one message per gate and key).
        False when the queue is unreachable (the sweep evaluates the gate anyway)."""
        message = OutgoingMessage(
            body=f'{{"kind":"gate-check","env":"{gate.environment}","gate":"{gate.id}"}}'.encode(),
            message_id=message_id(gate, key),
            session_id=f"gate/{gate.id}",
            application_properties={"kind": "gate-check", "env": gate.environment},
            scheduled_at=at,
        )
        try:
            self._sender.send(message)
        except QueueUnavailableError as exc:
            logger.warning("gate.check_not_queued", extra={"gate": gate.id, "cause": str(exc)})
            return False
        return True


def message_id(gate: Gate, key: str) -> str:
    """One id per gate and occasion: the environment (a gate's partition), its id, its task and
    `key` (a registration's exact time, a grace's end), hashed to fit Service Bus' 128
    characters. Two gates never share one, so neither check is taken for the other's duplicate."""
    occasion = "|".join((gate.environment, gate.id, gate.plan.task_instance_id.lower(), key))
    return f"gate-check/{gate.id}/{hashlib.sha256(occasion.encode()).hexdigest()[:32]}"
