"""Session slots under the fleet's arrival process: messages/s one instance sustains.

A model of the Functions Service Bus extension's session receiver (SessionReceiverManager): each
of `maxConcurrentSessions` slots accepts the session with the oldest waiting message, handles its
messages one at a time, and after the last one keeps waiting `sessionIdleTimeout` for another
before it releases the session (shared/reference/azure-functions.md, `sessionIdleTimeout`;
Azure/azure-sdk-for-net#33046, #27517). Arrivals: clusters x objects, each object re-reporting
once per interval at a random phase. The instance is saturated (a backlog of the whole interval
is waiting), so the figure is its capacity, not the offered load.

Run: `.venv/bin/python bench/sessions.py [--handle-ms 120]`. No I/O; prints a table.
"""

from __future__ import annotations

import argparse
import heapq
import random
from collections import deque

FLEET_EVENTS_PER_S = 1000 * 50 / 600  # 1,000 clusters x 50 objects every 10 minutes


def capacity(
    sessions: int, idle_s: float, handle_s: float, keys: int | None, n_objects: int = 50_000
) -> float:
    """Messages/s one instance handles from a saturated queue; `keys` None = per-object key,
    else objects hashed into that many session keys. The backlog is one reconcile interval
    of the fleet (every object once, in random order)."""
    rng = random.Random(1)
    order = list(range(n_objects))
    rng.shuffle(order)
    waiting: dict[int, deque[int]] = {}
    ready: deque[int] = deque()  # session keys with waiting messages, oldest first
    for obj in order:
        key = obj if keys is None else obj % keys
        if key not in waiting:
            waiting[key] = deque()
            ready.append(key)
        waiting[key].append(obj)
    slots = [(0.0, i) for i in range(sessions)]
    heapq.heapify(slots)
    done, now, horizon = 0, 0.0, 600.0
    while ready and now < horizon:
        now, slot = heapq.heappop(slots)
        key = ready.popleft()
        queue = waiting.pop(key)
        now += handle_s * len(queue)  # every waiting message, in order
        done += len(queue)
        heapq.heappush(slots, (now + idle_s, slot))  # then the idle wait before release
    elapsed = max(now, min(t for t, _ in slots))
    return done / elapsed if elapsed else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--handle-ms", type=float, default=120.0, help="handler time per message")
    args = parser.parse_args()
    handle = args.handle_ms / 1000
    print(
        f"handler {args.handle_ms:.0f} ms/message; fleet offers {FLEET_EVENTS_PER_S:.0f} events/s"
    )
    print(
        f"{'session key':18s} {'slots':>5s} {'idle':>6s}"
        f" {'msgs/s/instance':>16s} {'instances':>10s}"
    )
    for keys, label in ((None, "per object"), (64, "hash mod 64")):
        for sessions, idle in ((8, 30.0), (8, 2.0), (32, 2.0), (32, 1.0)):
            rate = capacity(sessions, idle, handle, keys)
            need = FLEET_EVENTS_PER_S / rate
            print(f"{label:18s} {sessions:5d} {idle:5.0f}s {rate:16.2f} {need:10.1f}")


if __name__ == "__main__":
    main()
