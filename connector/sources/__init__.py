"""Event sources: each owns its wire model, its validation, its translation into the core's
`Observation` and its admission into the ingest template, in a package of its own (`flux`,
`argocd`) that exports one description, `SOURCE` (`connector.sources.plugin`). This module reads
a queued message and hands it to the translator of the source that queued it.

Cheap to import (what it needs is imported when a message is read): the source descriptions live
below it and `function_app` reads them when the host indexes the app."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from connector.core.errors import ConnectorError

if TYPE_CHECKING:
    from connector.core.tracking import Observation
    from connector.queue.envelope import GateCheck
    from connector.sources.plugin import Translator

logger = logging.getLogger(__name__)


class UnreadableMessageError(ConnectorError):
    """The message can never be processed. Raising it lets Service Bus redeliver it up to
    `maxDeliveryCount` times (cheap: parsing fails at once) and then dead-letter it, where
    `python -m connector dlq peek` shows it; the log line carries the reason."""


def read(
    body: bytes, message_id: str | None, translators: Mapping[str, Translator]
) -> Observation | GateCheck:
    """A queued message as the core takes it: an observation, or a gate check. `translators`:
    each registered source's, by name (`connector.app.root.registry.translators`)."""
    from connector.queue import envelope
    from connector.queue.envelope import GateCheck

    try:
        message = envelope.decode(body)
        if isinstance(message, GateCheck):
            return message
        translate = _translator(translators, message.source)
        delivery = message_id or envelope.message_id(message.cluster, message.env, body)
        # The receive time bounds the event's own (a cluster's clock may be ahead).
        return replace(translate(message, delivery), received_at=message.received_at)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        reason = _describe(exc)
        logger.error(  # noqa: TRY400 - the reason says it all; a traceback would add nothing
            "process.unreadable", extra={"message_id": message_id, "reason": reason}
        )
        raise UnreadableMessageError(f"unreadable message: {reason}") from None


def _translator(translators: Mapping[str, Translator], source: str) -> Translator:
    found = translators.get(source)
    if found is None:
        raise ValueError(f"source: unknown source {source!r}")
    return found


def _describe(exc: ValueError) -> str:
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        text = str(exc)
        return text if text.startswith("source:") else "body is not JSON"
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
        for e in exc.errors(include_url=False, include_input=False)
    )
