"""A throwaway source, "probe": `POST /api/probe` with a shared token and a tiny JSON body.

Everything a real source has, in one file: its wire model, its admission into the ingest
template, its message, the door's reading and the processor's (its translator). It imports
only the plug-in contract and the shared ingest rules, as a source package would.
"""

from __future__ import annotations

import hmac
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict

from connector.core.door import Arrival
from connector.core.tracking import ObjectRef, Observation, Phase
from connector.queue import envelope
from connector.queue.envelope import Envelope
from connector.queue.sender import OutgoingMessage
from connector.settings import Settings
from connector.sources import http
from connector.sources.http import KeyCheck, RejectedError
from connector.sources.plugin import Admitted, Source, lazy
from connector.web import Request

NAME = "probe"
KIND = "Probe"
TOKEN = "probe-token"  # a test's secret: a real source reads its secret from Settings


class ProbeEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    cluster: str
    env: str
    namespace: str
    name: str
    commit: str
    phase: Phase
    time: AwareDatetime


class ProbeAdmission:
    def __init__(self, settings: Settings, keys: KeyCheck) -> None:
        self._keys = keys

    def admit(self, request: Request) -> Admitted[ProbeEvent]:
        http.require_post(request.method)
        http.require_size(request.body)
        token = request.headers.get("x-probe-token", "")
        if not hmac.compare_digest(token.encode(), TOKEN.encode()):
            raise RejectedError(401, "unauthorized: send X-Probe-Token")
        event: ProbeEvent = http.parse(ProbeEvent, request.body, "probe event")
        cluster = http.origin_name("cluster", event.cluster, "cluster", "set cluster")
        env = http.origin_name("env", event.env, "env", "set env")
        obj = ObjectRef(KIND, event.namespace, event.name)
        http.too_large(self._keys.problems(env, cluster, obj))
        return Admitted(event, cluster, env, obj, event.phase.value, event.commit, request.body)

    def message(self, admitted: Admitted[ProbeEvent], received_at: datetime) -> OutgoingMessage:
        cluster, env, obj = admitted.cluster, admitted.env, admitted.obj
        return OutgoingMessage(
            body=envelope.encode(cluster, env, received_at, admitted.queued, source=NAME),
            message_id=envelope.message_id(cluster, env, admitted.queued, source=NAME),
            session_id=envelope.session_id(cluster, obj.kind, obj.namespace, obj.name),
            application_properties={"cluster": cluster, "env": env, "kind": KIND},
        )


def arrival(admitted: Admitted[ProbeEvent], received_at: datetime) -> Arrival:
    event = admitted.event
    obj = admitted.obj
    return Arrival(
        admitted.env,
        admitted.cluster,
        obj.kind,
        obj.namespace,
        obj.name,
        event.commit,
        event.phase,
        event.time,
    )


def observe(queued: Envelope, message_id: str) -> Observation:
    event = ProbeEvent.model_validate(queued.event)
    return Observation(
        cluster=queued.cluster,
        env=queued.env,
        obj=ObjectRef(KIND, event.namespace, event.name),
        commit=event.commit,
        phase=event.phase,
        reason=f"Probe{event.phase.value.title()}",
        summary=f"probe says {event.phase.value}",
        time=event.time,
        message_id=message_id,
        is_source=False,
    )


SOURCE: Source[ProbeEvent] = Source(
    name=NAME,
    route="probe",
    doc="A throwaway source of the test tree.",
    admission=lazy(__name__, "ProbeAdmission"),
    arrival=lazy(__name__, "arrival"),
    translate=lazy(__name__, "observe"),
    key_fields={"env": ("env",), "cluster": ("cluster",), "object": ("namespace", "name")},
    warm_up=(__name__,),
)
