from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import azure.functions as func
import pytest

from connector.app.root import bootstrap
from connector.app.root.bootstrap import Container
from connector.settings import Settings
from connector.sources.flux.signature import sign
from tests.recording_sender import RecordingSender

EVENTS = Path(__file__).parent / "events"
UNIT = Path(__file__).parent / "unit"
HMAC_KEY = b"test-hmac-key-0123456789"


def event_bytes(name: str) -> bytes:
    return (EVENTS / f"{name}.json").read_bytes()


def all_event_names() -> list[str]:
    return sorted(p.stem for p in EVENTS.glob("*.json"))


def flux_request(
    body: bytes,
    *,
    key: bytes | None = HMAC_KEY,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    method: str = "POST",
) -> func.HttpRequest:
    all_headers = {"Content-Type": "application/json", "Gotk-Component": "kustomize-controller"}
    if key is not None:
        all_headers["X-Signature"] = sign(key, body)
    all_headers.update(headers or {})
    return func.HttpRequest(
        method=method,
        url="http://localhost:7071/api/flux",
        headers=all_headers,
        params=dict(params or {}),
        route_params={},
        body=body,
    )


BASE_SETTINGS = {
    "FLUX_HMAC_KEY": HMAC_KEY.decode(),
    "DEFAULT_CLUSTER": "dev-1",
    "DEFAULT_ENV": "dev",
    "SERVICEBUS_QUEUE": "flux-events",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The unit tier runs without Azurite (`make unit`): a test there that needs it (marked
    `azurite`, or through a fixture) belongs in tests/integration."""
    misplaced = [
        item.nodeid
        for item in items
        if item.path.is_relative_to(UNIT)
        and (
            item.get_closest_marker("azurite") is not None
            or "azurite_connection" in getattr(item, "fixturenames", ())
        )
    ]
    if misplaced:
        raise pytest.UsageError("needs Azurite, move to tests/integration: " + ", ".join(misplaced))


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


@pytest.fixture
def install(sender: RecordingSender) -> Iterator[object]:
    """Install a container built from the given settings (plus overrides) for the app to use."""

    def _install(settings: Mapping[str, str] | None = None, **overrides: object) -> Container:
        values = dict(BASE_SETTINGS if settings is None else settings)
        container = Container(Settings.from_env(values), **{"sender": sender, **overrides})
        bootstrap.override(container)
        return container

    yield _install
    bootstrap.override(None)


@pytest.fixture(scope="session")
def azurite_connection() -> Iterator[str]:
    from tests.azurite import azurite_tables

    with azurite_tables() as conn:
        yield conn


@pytest.fixture
def table_store(azurite_connection: str, request: pytest.FixtureRequest):
    """A TableStore on Azurite with tables unique to this test."""
    import re
    import uuid

    from connector.storage.rows import connect
    from connector.storage.tables import TableStore

    prefix = "t" + re.sub(r"[^a-z0-9]", "", request.node.name.lower())[:20] + uuid.uuid4().hex[:8]
    return TableStore(connect(connection_string=azurite_connection), prefix=prefix)


def assert_contract_kept(fake: object, request: pytest.FixtureRequest) -> None:
    """Fail the test whose requests to the fake Azure DevOps broke the REST contract
    (tests/contract), unless it is marked `breaks_contract` (it sends them on purpose)."""
    violations = list(getattr(fake, "contract_violations", []))
    if violations and request.node.get_closest_marker("breaks_contract") is None:
        pytest.fail("Azure DevOps contract violations:\n" + "\n".join(violations[:20]))


@pytest.fixture
def azdo(request: pytest.FixtureRequest):
    from tests.fakes.azdo_server import FakeAzureDevOps
    from tests.world import PAT, REPO

    with FakeAzureDevOps(pat=PAT) as fake:
        fake.add_repository(REPO)
        yield fake
    assert_contract_kept(fake, request)


@pytest.fixture
def world(azdo, table_store):
    from tests.world import World

    w = World(azdo=azdo, store=table_store)
    w.configure()
    yield w
    bootstrap.override(None)
