"""Print the line and the branch coverage of connector/ apart (`make coverage`, after the table).

coverage.py's own total mixes lines and branches in one percentage; the two figures say different
things (code never run, decisions never taken both ways), so they are printed side by side. It
reads the data the test tiers appended to (`.coverage`; [tool.coverage] in pyproject.toml).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import coverage


def percent(covered: int, total: int) -> str:
    return f"{100 * covered / total:.1f} % ({covered:,} of {total:,})" if total else "n/a"


def main() -> int:
    cov = coverage.Coverage()
    cov.load()
    if not cov.get_data().measured_files():
        print("no coverage data: run `make unit`, `make integration` or `make e2e` first")
        return 1
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "coverage.json"
        cov.json_report(outfile=str(out))
        totals = json.loads(out.read_text(encoding="utf-8"))["totals"]
    lines = percent(totals["covered_lines"], totals["num_statements"])
    branches = percent(totals["covered_branches"], totals["num_branches"])
    print(f"connector/: lines {lines}, branches {branches}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
