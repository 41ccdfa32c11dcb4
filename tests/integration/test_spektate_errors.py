"""Spektate's storage misbehaving, for real: a fresh Azurite account, SAS tokens without the
rights, names Azurite refuses, an endpoint nobody listens on, a server answering 503.
Permanent errors are logged once, counted and do not fail the message; transient ones raise."""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.data.tables import (
    AccountSasPermissions,
    ResourceTypes,
    TableClient,
    TableSasPermissions,
    TableServiceClient,
    generate_account_sas,
    generate_table_sas,
)

from connector.core.tracking import ObjectRef, Phase
from connector.outputs.spektate import SpektateWriter
from connector.outputs.spektate_errors import SpektateError
from connector.storage.rows import connect
from tests.azurite import ACCOUNT, KEY, azurite_tables
from tests.integration.test_spektate import C1, install_listeners, notify, observe
from tests.integration.test_telemetry import metric_points, providers, total  # noqa: F401 - a fixture
from tests.spektate_dashboard import load_flux
from tests.world import REPO, kustomization

pytestmark = pytest.mark.azurite

ERRORS = "connector.spektate.errors"
NO_RETRY: dict[str, Any] = {"retry_total": 0}  # the SDK's own retries only slow these tests


def endpoint_of(connection_string: str) -> str:
    return connection_string.split("TableEndpoint=")[1].rstrip(";")


def endpoint_of_service(service: TableServiceClient) -> str:
    return str(service.url).rstrip("/")


def sas_credential(token: str) -> AzureSasCredential:
    return AzureSasCredential(token)


def expiry() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


def key() -> AzureNamedKeyCredential:
    return AzureNamedKeyCredential(ACCOUNT, KEY)  # Azurite's published development key


@pytest.fixture
def fresh_account() -> Iterator[str]:
    """An Azurite of its own: a storage account on which nobody created `flux`."""
    with azurite_tables() as conn:
        yield conn


@pytest.fixture
def shared(azurite_connection: str) -> Any:
    service = connect(connection_string=azurite_connection)
    service.create_table_if_not_exists("flux")
    return service


@pytest.fixture
def partition() -> str:
    return f"errs-{uuid.uuid4().hex[:8]}"


def gave_up(caplog: pytest.LogCaptureFixture) -> list[Any]:  # records with their `extra` fields
    return [r for r in caplog.records if r.getMessage() == "spektate.gave_up"]


def objects(n: int) -> list[ObjectRef]:
    return [ObjectRef("Kustomization", "flux-system", f"app-{i}") for i in range(n)]


class CountingTable:
    """The real `TableClient`, counting `create_table` calls."""

    def __init__(self, table: TableClient) -> None:
        self.table, self.table_name, self.creates = table, table.table_name, 0
        self._lock = threading.Lock()

    def create_table(self) -> Any:
        with self._lock:
            self.creates += 1
        return self.table.create_table()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.table, name)


# --- the table: created on first use ----------------------------------------------------------


def test_a_fresh_account_gets_the_flux_table_once_from_many_threads(fresh_account, partition):
    service = connect(connection_string=fresh_account)
    assert "flux" not in [t.name for t in service.list_tables()]
    table = CountingTable(service.get_table_client("flux"))
    writer = SpektateWriter(table, partition_key=partition)

    # WHEN the worker's threads handle the first messages at the same time
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda obj: notify(writer, observe(obj=obj)), objects(8)))

    assert table.creates == 1
    assert len(load_flux(service.get_table_client("flux"), partition)[C1[:7]]) == 8


def test_a_table_that_already_exists_is_fine(shared, partition, caplog):
    writer = SpektateWriter(shared.get_table_client("flux"), partition_key=partition)
    notify(writer, observe())
    assert len(load_flux(shared.get_table_client("flux"), partition)[C1[:7]]) == 1
    assert gave_up(caplog) == []


# --- permanent errors: logged once, counted, message completes -------------------------------


def test_no_permission_is_logged_once_with_the_remedy_and_counted(shared, partition, caplog):
    # GIVEN a table SAS that may only read (Azurite enforces SAS permissions: 403)
    token = generate_table_sas(
        key(), "flux", permission=TableSasPermissions(read=True), expiry=expiry()
    )
    table = TableClient(endpoint_of_service(shared), "flux", credential=sas_credential(token))
    writer = SpektateWriter(table, partition_key=partition)
    before = total(metric_points(), ERRORS, step="insert notification", status="403")

    # WHEN three changes arrive: none raises (no redelivery, no dead-letter)
    for obj in objects(3):
        notify(writer, observe(obj=obj))

    # THEN each kind is logged once, with its remedy; every refused insert is counted
    records = gave_up(caplog)
    assert [(r.step, r.levelno) for r in records] == [
        ("create table", logging.ERROR),
        ("insert notification", logging.ERROR),
    ]
    assert all("Storage Table Data Contributor" in r.remedy for r in records)
    assert records[1].error.startswith("HttpResponseError 403")
    after = total(metric_points(), ERRORS, step="insert notification", status="403")
    assert after - before == 3
    signature = dict(part.split("=", 1) for part in token.split("&"))["sig"]
    ours = [
        r.getMessage() + str(r.__dict__) for r in caplog.records if r.name.startswith("connector")
    ]
    assert ours
    assert not [line for line in ours if signature in line]  # our logs never carry the SAS
    assert load_flux(shared.get_table_client("flux"), partition) == {}


def test_a_table_that_cannot_be_created_is_reported_not_retried(fresh_account, partition, caplog):
    # GIVEN an account SAS for entities only: Azurite refuses table creation (403)
    token = generate_account_sas(
        key(),
        resource_types=ResourceTypes(object=True),
        permission=AccountSasPermissions(read=True, add=True, update=True, write=True),
        expiry=expiry(),
    )
    service = TableServiceClient(endpoint_of(fresh_account), credential=sas_credential(token))
    writer = SpektateWriter(service.get_table_client("flux"), partition_key=partition)

    notify(writer, observe())
    notify(writer, observe(Phase.FAILED))

    records = gave_up(caplog)
    assert [(r.step, r.error) for r in records] == [
        ("create table", "HttpResponseError 403 AuthorizationResourceTypeMismatch"),
        ("insert notification", "ResourceNotFoundError 404 TableNotFound"),
    ]
    assert "create the table" in records[1].remedy


def test_the_same_sas_writes_once_the_table_exists(fresh_account, partition, caplog):
    # An identity that may add entities but not create tables still works with `flux` present.
    connect(connection_string=fresh_account).create_table("flux")
    token = generate_account_sas(
        key(),
        resource_types=ResourceTypes(object=True),
        permission=AccountSasPermissions(read=True, add=True, update=True, write=True),
        expiry=expiry(),
    )
    service = TableServiceClient(endpoint_of(fresh_account), credential=sas_credential(token))
    writer = SpektateWriter(service.get_table_client("flux"), partition_key=partition)
    notify(writer, observe())
    assert [r.step for r in gave_up(caplog)] == ["create table"]
    assert (
        len(load_flux(connect(connection_string=fresh_account).get_table_client("flux"), partition))
        == 1
    )


def test_another_4xx_is_permanent(shared, partition, caplog):
    # Azurite answers 400 to a table name with a dash (names are letters and digits).
    writer = SpektateWriter(shared.get_table_client("no-such"), partition_key=partition)
    notify(writer, observe())
    notify(writer, observe(Phase.FAILED))
    records = gave_up(caplog)
    assert [r.step for r in records] == ["create table", "insert notification"]
    assert all(" 400" in r.error for r in records)


def test_a_missing_deployments_table_does_not_stop_the_notification(shared, partition, caplog):
    flux = shared.get_table_client("flux")
    missing = shared.get_table_client("nodeployments" + uuid.uuid4().hex[:8])
    writer = SpektateWriter(flux, partition_key=partition, deployments=missing)
    notify(writer, observe())
    assert len(load_flux(flux, partition)[C1[:7]]) == 1
    records = gave_up(caplog)
    assert [r.step for r in records] == ["link deployment", "touch deployment"]
    assert all("SPEKTATE_DEPLOYMENTS_TABLE" in r.remedy for r in records)


# --- transient errors: raised, so Service Bus redelivers -------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when this returns: nobody listens


def test_an_unreachable_endpoint_raises(partition):
    url = f"http://127.0.0.1:{closed_port()}/{ACCOUNT}"
    table = TableClient(url, "flux", credential=key(), **NO_RETRY)
    writer = SpektateWriter(table, partition_key=partition)
    with pytest.raises(SpektateError, match="ServiceRequestError"):
        notify(writer, observe())


class Unavailable(BaseHTTPRequestHandler):
    """Every request: 503 Server Busy, as Azure Storage answers when throttling an account."""

    def _busy(self) -> None:
        self.send_response(503)
        self.send_header("x-ms-error-code", "ServerBusy")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PUT = do_PATCH = do_MERGE = _busy  # noqa: N815 - http.server names

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def busy_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{ACCOUNT}"
    server.shutdown()
    server.server_close()


def test_a_5xx_raises(busy_endpoint, partition):
    table = TableClient(busy_endpoint, "flux", credential=key(), **NO_RETRY)
    writer = SpektateWriter(table, partition_key=partition)
    with pytest.raises(SpektateError, match="503 ServerBusy"):
        notify(writer, observe())


# --- through the queue function --------------------------------------------------------------


def test_a_redelivery_after_a_transient_failure_keeps_every_output_once(world, shared, partition):
    world.azdo.add_commit(REPO, C1, "Merged PR 7: bump podinfo")
    assert world.post(kustomization(C1)) == 202
    [message] = world.sender.drain()
    down = TableClient(
        f"http://127.0.0.1:{closed_port()}/{ACCOUNT}", "flux", credential=key(), **NO_RETRY
    )
    install_listeners(world, SpektateWriter(down, partition_key=partition))

    # WHEN the first delivery meets Spektate down: the function fails, Service Bus redelivers
    with pytest.raises(SpektateError):
        world.process(message)
    statuses_after_first = len(world.azdo.status_writes())
    install_listeners(
        world, SpektateWriter(shared.get_table_client("flux"), partition_key=partition)
    )
    world.process(message, delivery_count=2)
    world.process(message, delivery_count=3)

    # THEN the statuses were posted by the first delivery only, the notification once
    assert statuses_after_first == 2
    assert len(world.azdo.status_writes()) == 2
    assert len(load_flux(shared.get_table_client("flux"), partition)[C1[:7]]) == 1


def test_a_permanent_failure_completes_the_message(world, shared, partition, caplog):
    world.azdo.add_commit(REPO, C1)
    token = generate_table_sas(
        key(), "flux", permission=TableSasPermissions(read=True), expiry=expiry()
    )
    table = TableClient(endpoint_of_service(shared), "flux", credential=sas_credential(token))
    install_listeners(world, SpektateWriter(table, partition_key=partition))
    assert world.post(kustomization(C1)) == 202
    world.deliver_queued()  # raises nothing: the host completes the message
    assert len(world.azdo.status_writes()) == 2
    assert [r.step for r in gave_up(caplog)] == ["create table", "insert notification"]
