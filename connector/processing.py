"""The queue-triggered side: turn one Service Bus message into one envelope and process it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pydantic import ValidationError

from connector import envelope

if TYPE_CHECKING:
    import azure.functions as func

    from connector.bootstrap import Container

logger = logging.getLogger(__name__)


class UnreadableMessageError(Exception):
    """The message can never be processed. Raising it lets Service Bus redeliver it up to
    `maxDeliveryCount` times (cheap: parsing fails at once) and then dead-letter it, where
    `python -m connector dlq peek` shows it; the log line carries the reason."""


def handle_message(msg: func.ServiceBusMessage, container: Container) -> None:
    try:
        env = envelope.decode(msg.get_body())
    except ValidationError as exc:
        reason = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        logger.exception(
            "process.unreadable",
            extra={
                "message_id": msg.message_id,
                "delivery_count": _delivery_count(msg),
                "reason": reason,
            },
        )
        raise UnreadableMessageError(f"not an envelope: {reason}") from None
    container.processor.process(env, msg.message_id or "")


def _delivery_count(msg: func.ServiceBusMessage) -> int | None:
    return getattr(msg, "delivery_count", None)
