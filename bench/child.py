"""One settled object and its re-sends, for bench/cost.py: run under callgrind as
`child.py <door|http|both> <re-sends>` (the same setup with 0 re-sends is the floor), or used
in-process through `settled_world`.

- `door`: the re-sends are answered at the ingest door (the HTTP function only);
- `http`: no door: each re-send is queued (the HTTP function only);
- `both`: no door: each re-send is queued and processed by the queue function.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COMMIT = "d" * 40


@contextmanager
def settled_world(
    *, door: bool, process: bool = True, quiet: bool = False
) -> Iterator[tuple[object, Callable[[int], None]]]:
    import uuid

    from connector.app.root import bootstrap
    from connector.storage.rows import connect
    from connector.storage.tables import TableStore
    from tests.azurite import azurite_tables
    from tests.fakes.azdo_server import FakeAzureDevOps
    from tests.world import PAT, REPO, World, kustomization

    with azurite_tables() as connection, FakeAzureDevOps(pat=PAT) as azdo:
        azdo.add_repository(REPO)
        azdo.add_commit(REPO, COMMIT, "Merged PR 1: apps")
        store = TableStore(
            connect(connection_string=connection), prefix="c" + uuid.uuid4().hex[:12]
        )
        world = World(azdo=azdo, store=store)
        container = world.configure(STATE_STORAGE=connection)
        if not door:
            container.__dict__["door"] = None
        world.send(kustomization(COMMIT, time="2026-05-14T09:00:00Z"))
        world.post(kustomization(COMMIT, time="2026-05-14T09:01:00Z"))  # warm every path
        world.deliver_queued()
        if quiet:
            azdo.stop()  # re-sends call no Azure DevOps; its polling thread would be counted

        def resend(i: int) -> None:
            at = f"2026-05-14T{10 + i // 60:02d}:{i % 60:02d}:00Z"
            assert world.post(kustomization(COMMIT, time=at)) == 202
            if process:
                world.deliver_queued()

        try:
            yield world, resend
        finally:
            bootstrap.override(None)


def main() -> None:
    variant, count = sys.argv[1], int(sys.argv[2])
    chosen = {"door": variant == "door", "process": variant == "both", "quiet": True}
    with settled_world(**chosen) as (world, resend):
        for i in range(count):
            resend(i)
        world.sender.drain()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
