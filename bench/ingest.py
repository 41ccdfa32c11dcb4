"""Benchmark of the webhook path, next to floors measured in the same run.

Prints, for 1 KB and 30 KB Flux events:
- the per-event CPU time of the ingest path (verify + parse + envelope + build the Service Bus
  message, through the registered function with a real HttpRequest), and
- the floor: HMAC-SHA256 + json.loads + building one ServiceBusMessage of the same bytes,
  the work any ingest must do; and the ratio of the two.
Then the cold import time of `function_app` next to `import azure.functions` (pairs of fresh
processes).

Run: `make bench` (or `.venv/bin/python bench/ingest.py`). No thresholds: it prints figures.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import azure.functions as func  # noqa: E402
from azure.servicebus import ServiceBusMessage  # noqa: E402

import function_app  # noqa: E402
from bench.events import KEY, BuildingSender, event  # noqa: E402
from connector.app.root import bootstrap  # noqa: E402
from connector.app.root.bootstrap import Container  # noqa: E402
from connector.settings import Settings  # noqa: E402
from connector.sources.flux.signature import sign  # noqa: E402

ROUNDS = 2000


def cpu_us(*fns, rounds: int = ROUNDS, batches: int = 7) -> tuple[list[float], list[float]]:
    """Batches of each function in turn. Returns the best batch of each (the least disturbed
    figure on a shared machine) and, per function, the median over batches of its time divided
    by the first function's time in the same batch: drift hits ours and the floor alike."""
    for fn in fns:
        for _ in range(50):
            fn()
    best = [float("inf")] * len(fns)
    ratios: list[list[float]] = [[] for _ in fns]
    per_batch = rounds // batches
    for _ in range(batches):
        batch = []
        for fn in fns:
            start = time.process_time()
            for _ in range(per_batch):
                fn()
            batch.append((time.process_time() - start) / per_batch)
        for i, t in enumerate(batch):
            best[i] = min(best[i], t)
            ratios[i].append(t / batch[0])
    return [b * 1e6 for b in best], [statistics.median(r) for r in ratios]


def ingest(body: bytes):
    headers = {"Content-Type": "application/json", "X-Signature": sign(KEY, body)}
    # Built once: the host builds the request before our code runs.
    req = func.HttpRequest(method="POST", url="/api/flux", headers=headers, body=body)

    def once() -> None:
        resp = function_app.flux(req)
        if resp.status_code != 202:
            raise RuntimeError(resp.get_body())

    return once


PROPERTIES = {"cluster": "c", "env": "e", "kind": "Kustomization", "reason": "R", "severity": "e"}


def floor(body: bytes, properties: dict[str, str] | None = None):
    props = cast("dict[str | bytes, Any] | None", properties)  # the same dict, as the SDK types it

    def once() -> None:
        hmac.compare_digest(hmac.new(KEY, body, hashlib.sha256).hexdigest(), "0" * 64)
        json.loads(body)
        ServiceBusMessage(body, message_id="m", session_id="s", application_properties=props)

    return once


def import_seconds(ours: str, floor: str, pairs: int = 15) -> tuple[float, float, float]:
    """Cold import times of two statements, each in fresh processes, taken in pairs (which goes
    first alternates): the medians of each, and the median of the per-pair ratios, which drift
    on a shared machine hits on both sides alike."""
    code = "import time; t = time.perf_counter(); {}; print(time.perf_counter() - t)"
    samples: dict[str, list[float]] = {ours: [], floor: []}
    for n in range(pairs):
        for statement in (ours, floor) if n % 2 == 0 else (floor, ours):
            out = subprocess.run(  # noqa: S603 - our own interpreter, fixed code
                [sys.executable, "-c", code.format(statement)],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            )
            samples[statement].append(float(out.stdout.strip()))
    ratio = statistics.median(a / b for a, b in zip(samples[ours], samples[floor], strict=True))
    return statistics.median(samples[ours]), statistics.median(samples[floor]), ratio


def cold_starts(connection: str, runs: int) -> dict[str, dict[str, float]]:
    """Medians over fresh processes (bench/cold_start.py) with and without the warm-up."""
    figures: dict[str, dict[str, float]] = {}
    for label, flags in (("no warm-up", []), ("warm-up", ["--warm-up"])):
        samples: list[dict[str, object]] = []
        for n in range(runs):
            out = subprocess.run(  # noqa: S603 - our own interpreter and script
                [sys.executable, str(ROOT / "bench" / "cold_start.py"), *flags],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
                env={
                    **os.environ,
                    "STATE_STORAGE": connection,
                    "STATE_TABLE_PREFIX": f"cold{n}{len(flags)}",
                },
            )
            samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
        figures[label] = {
            "import_ms": statistics.median(float(s["import_ms"]) for s in samples),  # type: ignore[arg-type]
            "warm_up_ms": statistics.median(float(s["warm_up_ms"]) for s in samples),  # type: ignore[arg-type]
            "flux_first_ms": statistics.median(s["flux_ms"][0] for s in samples),  # type: ignore[index]
            "flux_second_ms": statistics.median(s["flux_ms"][1] for s in samples),  # type: ignore[index]
            "process_first_ms": statistics.median(s["process_ms"][0] for s in samples),  # type: ignore[index]
            "process_second_ms": statistics.median(s["process_ms"][1] for s in samples),  # type: ignore[index]
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cold-runs", type=int, default=5, help="fresh processes per variant")
    args = parser.parse_args()
    settings = Settings.from_env(
        {"FLUX_HMAC_KEY": KEY.decode(), "DEFAULT_CLUSTER": "c", "DEFAULT_ENV": "e"}
    )
    bootstrap.override(Container(settings, sender=BuildingSender()))
    print(f"ingest path, CPU time per event (best of 7 interleaved batches of {ROUNDS // 7}):")
    floor_1k = 0.0
    for size in (1024, 30 * 1024):
        body = event(size)
        (base, ours, with_props), (_, ratio, ratio_props) = cpu_us(
            floor(body), ingest(body), floor(body, PROPERTIES)
        )
        floor_1k = floor_1k or base
        print(
            f"  {len(body) / 1024:5.1f} KB  ingest {ours:8.1f} µs   floor {base:8.1f} µs"
            f"   ratio {ratio:4.2f}x (median of same-batch ratios; best batches"
            f" {ours / base:4.2f}x)"
        )
        print(
            f"           floor with the same 5 application properties {with_props:8.1f} µs"
            f"   ratio {ratio / ratio_props:4.2f}x"
        )
    pairs = 15
    app, base, ratio = import_seconds("import function_app", "import azure.functions", pairs)
    print(f"cold import (medians of {pairs} pairs of fresh processes):")
    print(f"  import function_app     {app * 1000:7.1f} ms")
    print(
        f"  import azure.functions  {base * 1000:7.1f} ms   ratio {ratio:4.2f}x (median of"
        f" per-pair ratios; of the medians {app / base:4.2f}x)"
    )
    from tests.azurite import azurite_tables

    with azurite_tables() as connection:
        figures = cold_starts(connection, args.cold_runs)
    print(
        f"first invocations after a cold start (median of {args.cold_runs} fresh processes;"
        f" 1 KB event; floor {floor_1k:.0f} µs):"
    )
    for label, f in figures.items():
        print(
            f"  {label:10s}  import {f['import_ms']:6.1f} ms  warm-up {f['warm_up_ms']:6.1f} ms"
            f"  first /api/flux {f['flux_first_ms']:6.2f} ms"
            f" ({f['flux_first_ms'] * 1000 / floor_1k:5.0f}x floor), second"
            f" {f['flux_second_ms']:5.2f} ms  first queue message {f['process_first_ms']:6.1f} ms,"
            f" second {f['process_second_ms']:5.1f} ms"
        )


if __name__ == "__main__":
    main()
