"""What one `doctor` check says, and the shape of a group of checks: the bottom of the doctor
package (the groups build these; `connector.app.doctor.report` runs, redacts and prints them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connector.app.root.bootstrap import Container


@dataclass(frozen=True)
class Check:
    check: str  # `settings.*`, `storage.*`, `servicebus.*`, `devops.*` or `spektate.*`
    ok: bool
    detail: str
    remedy: str = ""
    skipped: bool = False  # not run: what it checks is not used (never counted as passed)


def skip(check: str, why: str) -> Check:
    return Check(check, True, f"skipped: {why}", skipped=True)


# A group takes the app's container and returns its checks, in order.
CheckGroup = Callable[["Container"], list[Check]]
