"""Benchmark: what per-cluster keys cost on the webhook path, next to a floor of the same run.

The key that verifies an event decides its cluster. The cluster the request names (`?cluster=`,
else the event's `"cluster":"…"` metadata, found in the raw bytes) only says which key to try
first; without one the keys are tried in turn until one matches (on average half of them for a
valid event), and a signature no key makes is checked against all. Prints the CPU time per 1 KB
and 30 KB event through the registered function for: the shared FLUX_HMAC_KEY; one cluster key;
the last of 50 cluster keys, named by the metadata, by `?cluster=`, and by nothing; and an unknown
key (401). The floor: HMAC-SHA256 + json.loads + one ServiceBusMessage, as in bench/ingest.py.

Run: `.venv/bin/python bench/cluster_keys.py`. No thresholds: it prints figures.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import azure.functions as func  # noqa: E402

import function_app  # noqa: E402
from bench.events import KEY, BuildingSender, event  # noqa: E402
from bench.ingest import cpu_us, floor  # noqa: E402
from connector.app.root import bootstrap  # noqa: E402
from connector.app.root.bootstrap import Container  # noqa: E402
from connector.settings import Settings  # noqa: E402
from connector.sources.flux.signature import sign  # noqa: E402

CLUSTER = "aks-prod-weu-01"  # the cluster bench/events.py's event names in its metadata
FLEET = 50


def keys(count: int) -> str:
    others = {f"cluster-{i:02d}": f"key-of-cluster-{i:02d}-0123456789" for i in range(count - 1)}
    return json.dumps({**others, CLUSTER: KEY.decode()})  # the signing cluster's key comes last


def install(**settings: str) -> None:
    values = {"DEFAULT_CLUSTER": "c", "DEFAULT_ENV": "e", **settings}
    bootstrap.override(Container(Settings.from_env(values), sender=BuildingSender()))


def post(body: bytes, *, key: bytes = KEY, params: dict[str, str] | None = None, status=202):
    headers = {"Content-Type": "application/json", "X-Signature": sign(key, body)}
    req = func.HttpRequest(
        method="POST", url="/api/flux", headers=headers, params=params or {}, body=body
    )

    def once() -> None:
        resp = function_app.flux(req)
        if resp.status_code != status:
            raise RuntimeError(resp.get_body())

    return once


NAMED = b'"cluster":"aks-prod-weu-01",'
VARIANTS: tuple[tuple[str, dict[str, str], dict[str, str], bool], ...] = (
    ("shared FLUX_HMAC_KEY", {"FLUX_HMAC_KEY": KEY.decode()}, {}, True),
    ("1 cluster key", {"FLUX_CLUSTER_KEYS": keys(1)}, {}, True),
    (f"{FLEET} keys, metadata", {"FLUX_CLUSTER_KEYS": keys(FLEET)}, {}, True),
    (f"{FLEET} keys, ?cluster=", {"FLUX_CLUSTER_KEYS": keys(FLEET)}, {"cluster": CLUSTER}, False),
    (f"{FLEET} keys, unnamed", {"FLUX_CLUSTER_KEYS": keys(FLEET)}, {}, False),
)


def main() -> None:
    logging.disable(logging.CRITICAL)  # the 401 variant would log a refusal per request
    print("ingest path with per-cluster keys, CPU time per event (best of 7 batches):")
    for size in (1024, 30 * 1024):
        body = event(size)
        assert NAMED in body
        for label, settings, params, named in VARIANTS:
            install(**settings)
            sent = body if named else body.replace(NAMED, b"")
            (base, ours), (_, ratio) = cpu_us(floor(sent), post(sent, params=params), rounds=1400)
            print(
                f"  {len(body) / 1024:5.1f} KB  {label:22s} {ours:8.1f} µs   floor {base:7.1f} µs"
                f"   ratio {ratio:4.2f}x"
            )
        install(FLUX_CLUSTER_KEYS=keys(FLEET))
        bad = post(body, key=b"no-such-key-0123456789", status=401)
        (base, ours), (_, ratio) = cpu_us(floor(body), bad, rounds=700)
        print(
            f"  {len(body) / 1024:5.1f} KB  {'unknown key (401)':22s} {ours:8.1f} µs   floor"
            f" {base:7.1f} µs   ratio {ratio:4.2f}x"
        )
    bootstrap.override(None)


if __name__ == "__main__":
    main()
