"""Event sources: each owns its wire model, its validation, its translation into the core's
`Observation` and its HTTP handler, in a package of its own (`flux`, `argocd`). This module reads a
queued message and hands it to the translator of the source that queued it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from pydantic import ValidationError

from connector.core.errors import ConnectorError
from connector.core.tracking import Observation
from connector.queue import envelope
from connector.queue.envelope import Envelope, GateCheck

logger = logging.getLogger(__name__)

Translator = Callable[[Envelope, str], Observation]


class UnreadableMessageError(ConnectorError):
    """The message can never be processed. Raising it lets Service Bus redeliver it up to
    `maxDeliveryCount` times (cheap: parsing fails at once) and then dead-letter it, where
    `python -m connector dlq peek` shows it; the log line carries the reason."""


def translators() -> dict[str, Translator]:
    from connector.sources.argocd.translate import observe as argocd
    from connector.sources.flux.translate import observe as flux

    return {"flux": flux, "argocd": argocd}


def read(body: bytes, message_id: str | None) -> Observation | GateCheck:
    """A queued message as the core takes it: an observation, or a gate check."""
    try:
        message = envelope.decode(body)
        if isinstance(message, GateCheck):
            return message
        translate = _translator(message.source)
        delivery = message_id or envelope.message_id(message.cluster, message.env, body)
        # The receive time bounds the event's own (a cluster's clock may be ahead).
        return replace(translate(message, delivery), received_at=message.received_at)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        reason = _describe(exc)
        logger.error(  # noqa: TRY400 - the reason says it all; a traceback would add nothing
            "process.unreadable", extra={"message_id": message_id, "reason": reason}
        )
        raise UnreadableMessageError(f"unreadable message: {reason}") from None


def _translator(source: str) -> Translator:
    found = translators().get(source)
    if found is None:
        raise ValueError(f"source: unknown source {source!r}")
    return found


def _describe(exc: ValueError) -> str:
    if not isinstance(exc, ValidationError):
        text = str(exc)
        return text if text.startswith("source:") else "body is not JSON"
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
        for e in exc.errors(include_url=False, include_input=False)
    )
