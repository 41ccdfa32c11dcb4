"""The door's hot read (connector/storage/point_read.py) against Azurite, next to the SDK's
`get_entity`: the same properties, an ETag the SDK's conditional writes accept, and the SDK's
exceptions for an absent row, an absent table and a refused signature."""

from __future__ import annotations

import uuid

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode

from connector.storage.point_read import PointReader, point_reader
from connector.storage.rows import key

pytestmark = pytest.mark.azurite

# Keys as the state store builds them (`rows.key` escapes `/ \\ # ?` to %XX), plus what the URL
# must escape again: %, a single quote (doubled in the OData literal), spaces, '+', non-ASCII.
KEYS = [
    ("c" * 40, key("obj", "dev", "dev-1", "Kustomization", "flux-system", "apps")),
    ("it's", key("obj", "e n v", "c+1", "Kind", "ns/with/slashes", "name#1?x")),
    ("ünïcödé ✓", "a'b''c%41%2F|~:@"),
]


@pytest.fixture
def table(azurite_connection: str):
    service = TableServiceClient.from_connection_string(azurite_connection)
    return service.create_table("pr" + uuid.uuid4().hex[:12])


def _entity(partition: str, row: str) -> dict:
    return {
        "PartitionKey": partition,
        "RowKey": row,
        "phase": "succeeded",
        "time": "2026-05-14T09:00:00+00:00",
        "settled": True,
        "inflight": '{"m":"2026-05-14T09:00:00+00:00"}',
        "summary": "Applied revision: ünïcödé 'quoted' \"double\"",
    }


@pytest.mark.parametrize(("partition", "row"), KEYS)
def test_reads_what_the_sdk_reads(azurite_connection: str, table, partition: str, row: str) -> None:
    table.create_entity(_entity(partition, row))
    reader = point_reader(table.table_name, connection_string=azurite_connection)

    found, etag = reader.read(partition, row)
    sdk = table.get_entity(partition, row)

    assert {k: v for k, v in found.items() if k != "Timestamp"} == dict(sdk)
    assert etag == sdk.metadata["etag"]


def test_its_etag_guards_the_sdks_conditional_writes(azurite_connection: str, table) -> None:
    partition, row = KEYS[1]
    table.create_entity(_entity(partition, row))
    reader = point_reader(table.table_name, connection_string=azurite_connection)
    _, etag = reader.read(partition, row)
    condition = MatchConditions.IfNotModified
    change = {"PartitionKey": partition, "RowKey": row, "settled": False}

    table.update_entity(change, mode=UpdateMode.MERGE, etag=etag, match_condition=condition)
    with pytest.raises(ResourceModifiedError):
        table.update_entity(change, mode=UpdateMode.MERGE, etag=etag, match_condition=condition)
    assert reader.read(partition, row)[0]["settled"] is False


def test_an_absent_row_or_table_is_not_found(azurite_connection: str, table) -> None:
    reader = point_reader(table.table_name, connection_string=azurite_connection)
    with pytest.raises(ResourceNotFoundError):
        reader.read("nobody", "nothing")
    missing = point_reader(
        "nosuchtable" + uuid.uuid4().hex[:8], connection_string=azurite_connection
    )
    with pytest.raises(ResourceNotFoundError):
        missing.read("nobody", "nothing")


def test_a_refused_signature_is_an_http_error_naming_the_status(
    azurite_connection: str, table
) -> None:
    table.create_entity(_entity(*KEYS[0]))
    endpoint = azurite_connection.split("TableEndpoint=")[1].rstrip(";")
    wrong = PointReader(endpoint, table.table_name, account_key=("devstoreaccount1", "AAAA"))
    with pytest.raises(HttpResponseError) as raised:
        wrong.read(*KEYS[0])
    assert not isinstance(raised.value, ResourceNotFoundError)
    assert str(raised.value).startswith("403")


def test_a_dropped_connection_is_opened_again(azurite_connection: str, table) -> None:
    table.create_entity(_entity(*KEYS[0]))
    reader = point_reader(table.table_name, connection_string=azurite_connection)
    reader.read(*KEYS[0])
    reader._local.connection.sock.close()  # the server or a proxy dropped the kept-alive link
    assert reader.read(*KEYS[0])[0]["phase"] == "succeeded"


def test_a_connection_string_without_an_account_key_is_refused() -> None:
    sas = "TableEndpoint=https://acct.table.core.windows.net/;SharedAccessSignature=sv=2019&sig=x"
    with pytest.raises(ValueError, match="account key"):
        point_reader("t", connection_string=sas)
