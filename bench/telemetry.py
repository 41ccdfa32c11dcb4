"""Cold start of the telemetry export: what a deployed app pays when Application Insights is
configured (`APPLICATIONINSIGHTS_CONNECTION_STRING`, as `infra/main.bicep` sets it).

Prints the CPU time (less disturbed than wall time on a shared machine) of, in fresh processes
taken in pairs with the floor `import azure.functions`:
- `import function_app` (the host indexing the app), and
- `telemetry.configure()` with an Application Insights connection string (the exporters'
  imports and set-up, done once per worker process before the first invocation is traced).

The connection string points at a closed loopback port and statsbeat is off, so nothing leaves
the machine. Run: `.venv/bin/python bench/telemetry.py`. No thresholds: it prints figures.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CONFIGURE = (
    "from connector import telemetry; telemetry.configure({"
    "'APPLICATIONINSIGHTS_CONNECTION_STRING': 'InstrumentationKey="
    "00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/'})"
)
FLOOR = "import azure.functions"
STATEMENTS = {"import function_app": "import function_app", "configure Azure Monitor": CONFIGURE}
# No SDK self-telemetry (statsbeat) and no cloud resource detectors: loopback only.
QUIET = {
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",
}


def seconds(statement: str) -> float:
    code = f"import time; t = time.process_time(); {statement}; print(time.process_time() - t)"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "APPLICATIONINSIGHTS"))
    }
    out = subprocess.run(  # noqa: S603 - our own interpreter, fixed code
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**env, **QUIET, "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=120,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main(pairs: int = 11) -> None:
    print(f"cold start, CPU time (medians of {pairs} pairs of fresh processes, floor {FLOOR!r}):")
    for label, statement in STATEMENTS.items():
        ours: list[float] = []
        floor: list[float] = []
        for n in range(pairs):
            first, second = (statement, FLOOR) if n % 2 == 0 else (FLOOR, statement)
            a, b = seconds(first), seconds(second)
            ours.append(a if first == statement else b)
            floor.append(b if first == statement else a)
        ratio = statistics.median(a / b for a, b in zip(ours, floor, strict=True))
        print(
            f"  {label:24s} {statistics.median(ours) * 1000:7.1f} ms   floor"
            f" {statistics.median(floor) * 1000:6.1f} ms   ratio {ratio:5.2f}x (median of"
            " per-pair ratios)"
        )


if __name__ == "__main__":
    main()
