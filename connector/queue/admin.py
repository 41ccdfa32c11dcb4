"""Reading a Service Bus queue's settings (sessions, duplicate detection) for `doctor`.

`azure.servicebus.management.ServiceBusAdministrationClient` fits `QueueAdmin` as it is; its
`get_queue` needs Manage rights, which the app's identity usually lacks (it sends and listens).
"""

from __future__ import annotations

from typing import Protocol


class QueueDescription(Protocol):
    """The two properties of `azure.servicebus.management.QueueProperties` doctor reads."""

    @property
    def requires_session(self) -> bool | None: ...

    @property
    def requires_duplicate_detection(self) -> bool | None: ...


class QueueAdmin(Protocol):
    def get_queue(self, queue_name: str) -> QueueDescription: ...
