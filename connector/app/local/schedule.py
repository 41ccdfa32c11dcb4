"""NCRONTAB schedules of timer triggers, for the embedded local host.

Six fields, `{second} {minute} {hour} {day} {month} {day-of-week}` (Learn, "Timer trigger for
Azure Functions", NCRONTAB expressions): each `*`, a value, a range `a-b`, a list `a,b` or a
step `*/n` / `a-b/n`; day-of-week 0-6 from Sunday. Times are UTC (the host's default without
WEBSITE_TIME_ZONE). The `TimeSpan` form (`00:05:00`) is not used by function_app.py: refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_RANGES = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_SEARCH_LIMIT = timedelta(days=366 * 4)  # every valid schedule fires within four years


@dataclass(frozen=True)
class Schedule:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> Schedule:
        fields = text.split()
        if len(fields) != len(_RANGES):
            raise ValueError(f"schedule {text!r}: six NCRONTAB fields expected")
        sets = [_field(f, lo, hi) for f, (lo, hi) in zip(fields, _RANGES, strict=True)]
        return cls(*sets)

    def next_after(self, when: datetime) -> datetime:
        """The first time strictly after `when` (UTC) that the schedule fires."""
        t = when.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        limit = t + _SEARCH_LIMIT
        while t < limit:
            if not (t.month in self.months and t.day in self.days and self._weekday(t)):
                t = (t + timedelta(days=1)).replace(hour=0, minute=0, second=0)
            elif t.hour not in self.hours:
                t = (t + timedelta(hours=1)).replace(minute=0, second=0)
            elif t.minute not in self.minutes:
                t = (t + timedelta(minutes=1)).replace(second=0)
            elif t.second not in self.seconds:
                t += timedelta(seconds=1)
            else:
                return t
        raise ValueError("schedule never fires")

    def _weekday(self, t: datetime) -> bool:
        return (t.isoweekday() % 7) in self.weekdays


def _field(text: str, lo: int, hi: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            start, end = lo, hi
        elif "-" in base:
            first, last = base.split("-", 1)
            start, end = int(first), int(last)
        else:
            start = int(base)
            end = hi if step_text else start
        if not (lo <= start <= end <= hi) or step < 1:
            raise ValueError(f"NCRONTAB field {text!r}: outside {lo}-{hi}")
        values.update(range(start, end + 1, step))
    return frozenset(values)
