"""The door's hot read: one Table entity by its keys, over a kept-alive `http.client` connection.

Why not the SDK's `TableClient.get_entity`: per re-send at the door it would be most of the CPU,
even with its pipeline cut to the policies a point read needs and no proxy-environment scan per
call; `requests`, `urllib3` and the generated (de)serializers are most of what remains
(`bench/hot_read.py` measures both under callgrind; docs/cost.md has the figures). This client
makes the same documented request and maps its errors to
the SDK's exceptions, so that callers cannot tell them apart
(`tests/integration/test_point_read.py` checks both against Azurite). Everything that writes
keeps using the SDK.

The request (Learn, Table service REST API, "Query Entities": a single entity is addressed as
`/<table>(PartitionKey='<pk>',RowKey='<rk>')`, single quotes in a key doubled, the path
percent-encoded as the SDK's serializer does, `quote(value, safe="")`):
- `x-ms-version: 2019-02-02`: the version azure-data-tables 12.x sends (its generated client);
- `Accept: application/json;odata=nometadata` ("Payload format for Table service operations":
  properties only; the entity's ETag comes in the `ETag` response header);
- `DataServiceVersion: 3.0`, `MaxDataServiceVersion: 3.0;NetFx` (as the SDK sends);
- authorization: Shared Key for a connection string (Learn, "Authorize with Shared Key", Table
  service: `VERB\\nContent-MD5\\nContent-Type\\nDate\\nCanonicalizedResource`, the date being
  `x-ms-date`, the resource `/<account><encoded path>`, as azure-data-tables signs it), else a
  Microsoft Entra token for `https://storage.azure.com/.default`, reused until 5 minutes before
  it expires.
Answers: 200 with the entity; 404 → `ResourceNotFoundError`; anything else →
`HttpResponseError` (with the status and the service's error code when it sends one); a broken
kept-alive connection is opened again once (a GET is safe to repeat), then
`ServiceRequestError`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import threading
import time
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, TokenCredential

API_VERSION = "2019-02-02"
STORAGE_SCOPE = "https://storage.azure.com/.default"
TIMEOUT_SECONDS = 10.0
TOKEN_MARGIN_SECONDS = 300
_BROKEN = (http.client.HTTPException, ConnectionError, TimeoutError, OSError)


class PointReader:
    """`read(partition, row)`: the entity's properties and its ETag (`ResourceNotFoundError`
    when it is absent, as the SDK). One connection per thread (the worker runs invocations on
    several)."""

    def __init__(
        self,
        endpoint: str,
        table: str,
        *,
        account_key: tuple[str, str] | None = None,
        credential: TokenCredential | None = None,
    ) -> None:
        if account_key is None and credential is None:
            raise ValueError("a point read needs an account key or a token credential")
        parts = urlsplit(endpoint.rstrip("/"))
        self._https = parts.scheme == "https"
        self._host = parts.netloc
        self._prefix = f"{parts.path}/{quote(table, safe='')}(PartitionKey='"
        self._key = (account_key[0], base64.b64decode(account_key[1])) if account_key else None
        self._credential = credential
        self._token: AccessToken | None = None
        self._local = threading.local()
        self._lock = threading.Lock()

    def read(self, partition: str, row: str) -> tuple[dict[str, Any], str]:
        path = f"{self._prefix}{_quoted(partition)}',RowKey='{_quoted(row)}')"
        status, headers, body = self._get(path)
        if status == 200:
            return json.loads(body), headers.get("etag", "")
        if status == 404:
            raise ResourceNotFoundError(_message(status, body))
        raise HttpResponseError(_message(status, body))

    def _get(self, path: str) -> tuple[int, http.client.HTTPMessage, bytes]:
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.request("GET", path, headers=self._headers(path))
                response = connection.getresponse()
                return response.status, response.headers, response.read()
            except _BROKEN as exc:
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise ServiceRequestError(f"table point read failed: {exc!r}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            connection = kind(self._host, timeout=TIMEOUT_SECONDS)
            self._local.connection = connection
        return connection

    def _headers(self, path: str) -> dict[str, str]:
        date = formatdate(usegmt=True)
        return {
            "x-ms-date": date,
            "x-ms-version": API_VERSION,
            "Accept": "application/json;odata=nometadata",
            "DataServiceVersion": "3.0",
            "MaxDataServiceVersion": "3.0;NetFx",
            "Authorization": self._authorization(date, path),
        }

    def _authorization(self, date: str, path: str) -> str:
        if self._key is not None:
            account, secret = self._key
            text = f"GET\n\n\n{date}\n/{account}{path}".encode()
            mac = base64.b64encode(hmac.new(secret, text, hashlib.sha256).digest()).decode()
            return f"SharedKey {account}:{mac}"
        return f"Bearer {self._bearer()}"

    def _bearer(self) -> str:
        with self._lock:
            token = self._token
            if token is None or token.expires_on - time.time() < TOKEN_MARGIN_SECONDS:
                if self._credential is None:  # pragma: no cover - the constructor requires one
                    raise ValueError("no credential")
                token = self._token = self._credential.get_token(STORAGE_SCOPE)
            return token.token


def point_reader(
    table: str,
    *,
    connection_string: str | None = None,
    account_url: str | None = None,
    credential: TokenCredential | None = None,
) -> PointReader:
    """From the same settings as `rows.connect`."""
    if connection_string:
        from azure.data.tables._base_client import parse_connection_str

        endpoint, key = parse_connection_str(connection_string, credential=None, keyword_args={})
        named = getattr(key, "named_key", None)
        if named is None:
            raise ValueError("a point read needs an account key (the connection string has none)")
        return PointReader(endpoint, table, account_key=(named.name, named.key))
    if account_url and credential is not None:
        return PointReader(account_url, table, credential=credential)
    raise ValueError("table storage needs a connection string or an account URL and credential")


def _quoted(key: str) -> str:
    return quote(key.replace("'", "''"), safe="")


def _message(status: int, body: bytes) -> str:
    """The service's error code and message (JSON `odata.error`), else the status alone."""
    try:
        error = json.loads(body)["odata.error"]
        return f"{status} {error['code']}: {error['message']['value']}"
    except (ValueError, KeyError, TypeError):
        return f"{status}"
