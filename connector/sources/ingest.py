"""The one ingest template every source's webhook runs: admit (the source's own check, a 4xx/503
naming the problem), build the message, pass the door, queue, answer 202 only once queued.

The source's part is its `Admission` (`connector.sources.plugin`): `admit` once, `message`
once; the rest (span, refusal, door, queue, counters, the accepted log line, the reply) is here,
the same for every source. The shared rules it uses live in `connector.sources.http`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Generic, TypeVar

from connector import telemetry
from connector.core.door import Arrival, Door
from connector.queue.sender import MessageSender, OutgoingMessage
from connector.sources import http
from connector.sources.http import RejectedError
from connector.sources.plugin import Admission, Admitted
from connector.web import Reply, Request

logger = logging.getLogger(__name__)

E = TypeVar("E")


class Ingest(Generic[E]):
    """`POST /api/<source>`: one source's admission in the shared ingest flow."""

    def __init__(
        self,
        source: str,
        admission: Admission[E],
        arrival: Callable[[Admitted[E], datetime], Arrival],
        sender: MessageSender,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        door: Door | None = None,
    ) -> None:
        self.source = source
        self.admission = admission
        self._arrival = arrival
        self._sender = sender
        self._clock = clock
        self._door = door
        self._span = f"{source}.ingest"

    def handle(self, request: Request) -> Reply:
        with telemetry.span(self._span) as span:
            try:
                admitted = self.admission.admit(request)
            except RejectedError as rejected:
                span.set_attribute("http.response.status_code", rejected.reply.status)
                return http.refused(rejected)
            obj = admitted.obj
            if span.is_recording():
                span.set_attributes(
                    {
                        "connector.cluster": admitted.cluster,
                        "connector.env": admitted.env,
                        "connector.reason": admitted.reason,
                        "connector.object": f"{obj.kind}/{obj.namespace}/{obj.name}",
                        "connector.commit": admitted.commit or "",
                    }
                )
            reply = self._enqueue(admitted)
            span.set_attribute("http.response.status_code", reply.status)
            return reply

    def _enqueue(self, admitted: Admitted[E]) -> Reply:
        received = self._clock()
        try:  # a message the queue cannot hold is the source's 413 (never a 503 retried forever)
            message = self.admission.message(admitted, received)
        except RejectedError as rejected:
            return http.refused(rejected)
        arrival = lambda: self._arrival(admitted, received)  # noqa: E731 - only past the door
        failed = http.enqueue(self._sender, message, self._door, arrival)
        if failed is not None:
            return failed
        cluster, obj = admitted.cluster, admitted.obj
        telemetry.events_received.add(
            1, {"cluster": cluster, "kind": obj.kind, "reason": admitted.reason}
        )
        if logger.isEnabledFor(logging.INFO):  # the fields cost more than a disabled call
            self._log_accepted(message, admitted)
        return Reply(202, f'{{"id":"{message.message_id}"}}')  # a hex id: JSON as it is

    def _log_accepted(self, message: OutgoingMessage, admitted: Admitted[E]) -> None:
        obj = admitted.obj
        logger.info(
            "ingest.accepted",
            extra={
                "message_id": message.message_id,
                "source": self.source,
                "cluster": admitted.cluster,
                "env": admitted.env,
                "object": f"{obj.kind}/{obj.namespace}/{obj.name}",
                "reason": admitted.reason,
            },
        )
