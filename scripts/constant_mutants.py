"""Hand-made mutants of the pure core's module-level tables, which mutmut 3 does not mutate
(it mutates function bodies only): reason sets, source kinds, the SHA-1 and plain-name patterns,
the Service Bus id limit, the signature algorithms.

Each mutant is applied to a copy of the repository in a temporary folder (the work tree is never
touched) and the core tests of `[tool.mutmut]` in pyproject.toml are run against it. Exits 1 if
any mutant survives; equivalent ones are left out of the table, with the reason in
tests/mutants-equivalent.txt.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
T, E, V, S = (
    f"connector/{m}.py"
    for m in ("core/tracking", "sources/flux/events", "queue/envelope", "sources/flux/signature")
)
REASONS = [
    "ReconciliationSucceeded",
    "InstallSucceeded",
    "UpgradeSucceeded",
    "TestSucceeded",
    "DriftCorrected",
    "NewArtifact",
    "Succeeded",
    "Progressing",
    "DependencyNotReady",
    "HealthCheckCanceled",
    "PendingRelease",
    "UninstallSucceeded",
]
KINDS = ["GitRepository", "OCIRepository", "Bucket", "HelmChart", "HelmRepository"]
TERMINAL = "TERMINAL = frozenset({Phase.SUCCEEDED, Phase.FAILED})"
SHA1 = 'r"[0-9a-f]{40}"'
PLAIN = 'r"[A-Za-z0-9._-]*"'
LIMIT = "SERVICE_BUS_ID_LIMIT = 128"

# (file, text, replacement): the first occurrence of text is replaced.
MUTANTS: list[tuple[str, str, str]] = [
    *((T, f'"{r}",', '"XX",') for r in REASONS),
    (T, 'frozenset({"RollbackSucceeded"})', "frozenset()"),
    (T, TERMINAL, "TERMINAL = frozenset({Phase.SUCCEEDED})"),
    (T, TERMINAL, "TERMINAL = frozenset({Phase.FAILED})"),
    *((E, f'"{k}",', '"XX",') for k in KINDS),
    (E, '"ExternalArtifact"}', '"XX"}'),
    (E, SHA1, 'r"[0-9a-fA-F]{40}"'),
    (E, SHA1, 'r"[0-9a-f]{39,40}"'),
    (E, SHA1, 'r"[0-9a-f]{40,64}"'),
    (V, LIMIT, "SERVICE_BUS_ID_LIMIT = 127"),
    (V, LIMIT, "SERVICE_BUS_ID_LIMIT = 129"),
    (V, PLAIN, r'r"[A-Za-z0-9._\"-]*"'),
    (V, PLAIN, r'r"[A-Za-z0-9._\\-]*"'),
    *((S, f'    "{a}": hashlib.{a},\n', "") for a in ("sha1", "sha224", "sha384", "sha512")),
    (S, '"sha256": hashlib.sha256', '"sha256": hashlib.sha512'),
]


def core_tests() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return list(config["tool"]["mutmut"]["pytest_add_cli_args_test_selection"])


def survives(copy: Path, file: str, text: str, replacement: str, tests: list[str]) -> bool:
    path = copy / file
    original = path.read_text(encoding="utf-8")
    if text not in original:
        raise SystemExit(f"{file}: {text!r} not found: update scripts/constant_mutants.py")
    path.write_text(original.replace(text, replacement, 1), encoding="utf-8")
    try:
        command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
        # This interpreter and test paths from pyproject.toml: no outside input.
        run = subprocess.run(command, cwd=copy, capture_output=True, check=False)  # noqa: S603
        return run.returncode == 0
    finally:
        path.write_text(original, encoding="utf-8")


def main() -> int:
    tests = core_tests()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp)
        for part in ("connector", "tests", "pyproject.toml"):
            source = ROOT / part
            if source.is_dir():
                shutil.copytree(source, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(source, copy / part)
        if not survives(copy, E, "", "", tests):
            raise SystemExit("the core tests fail on the unmutated copy: fix them first")
        survivors = [m for m in MUTANTS if survives(copy, *m, tests)]
    for file, text, replacement in survivors:
        print(f"  constant mutant not killed: {file}: {text.strip()!r} -> {replacement.strip()!r}")
    killed = len(MUTANTS) - len(survivors)
    print(f"constant mutants {len(MUTANTS)}: killed {killed}, survived {len(survivors)}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
