"""The mutation score of the pure core, after `mutmut run`: killed / (all - accepted equivalents).

Reads `mutmut results --all true` on stdin and the equivalent list given as the argument; prints
the figures and each surviving mutant that is not accepted; exits 1 below the required score.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

REQUIRED = 95.0  # percent of the non-equivalent mutants that the core tests must kill
# mutmut's statuses that mean a test noticed the mutant (a hang or a crash counts as noticed).
DETECTED = frozenset({"killed", "timeout", "segfault"})


def parse_results(text: str) -> dict[str, str]:
    """`    <name>: <status>` per line, as `mutmut results --all true` prints them."""
    results = {}
    for line in text.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and name:
            results[name] = status
    return results


def parse_equivalents(text: str) -> dict[str, str]:
    """`<name>  <reason>` per line; `#` starts a comment line. A reason is required."""
    accepted = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        name, _, reason = line.strip().partition(" ")
        if not reason.strip():
            raise SystemExit(f"equivalent mutant on line {number} has no reason: {name}")
        accepted[name] = reason.strip()
    return accepted


def main(equivalents_path: str) -> int:
    results = parse_results(sys.stdin.read())
    if not results:
        print("no mutmut results: did `mutmut run` fail?")
        return 1
    accepted = parse_equivalents(Path(equivalents_path).read_text(encoding="utf-8"))
    stale = sorted(name for name in accepted if results.get(name) != "survived")
    equivalent = [n for n, s in results.items() if n in accepted and s == "survived"]
    counted = {n: s for n, s in results.items() if n not in equivalent}
    killed = sum(1 for s in counted.values() if s in DETECTED)
    missed = sorted(n for n, s in counted.items() if s not in DETECTED)
    score = 100.0 * killed / len(counted) if counted else 100.0
    by_status = ", ".join(f"{s} {c}" for s, c in sorted(Counter(results.values()).items()))
    print(f"mutants {len(results)} ({by_status}); accepted equivalent {len(equivalent)}")
    for name in missed:
        print(f"  not killed ({counted[name]}): {name}   (mutmut show {name})")
    for name in stale:
        print(f"  listed as equivalent but {results.get(name, 'absent')}: {name}")
    print(f"score {score:.1f} % of {len(counted)} non-equivalent mutants (required {REQUIRED} %)")
    return 0 if score >= REQUIRED else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
