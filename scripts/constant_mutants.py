"""Hand-made mutants of the pure core's module-level tables, which mutmut 3 does not mutate
(it mutates function bodies only): Flux's reason sets and source kinds, Argo CD's phase and
health tables, the SHA-1, plain-name, origin-name and object-part patterns and limits, the
inventory TTL, the gate claim timeout, the Service Bus id limit, the signature algorithms.

Each mutant is applied to a copy of the repository in a temporary folder (the work tree is never
touched) and the core tests of `[tool.mutmut]` in pyproject.toml are run against it (the
modules are found by the end of their path in its `only_mutate`, the one list). Exits 1 if any
mutant survives; equivalent ones are left out of the table, with the reason in
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
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mutmut"]


def module(suffix: str) -> str:
    """The one `only_mutate` path ending in `suffix`: the module list lives in pyproject.toml."""
    found = [m for m in CONFIG["only_mutate"] if m.endswith("/" + suffix)]
    if len(found) != 1:
        raise SystemExit(f"{suffix}: {len(found)} modules in [tool.mutmut] only_mutate match")
    return str(found[0])


TRACKING, ROLLUP, NAMES = (module(f"core/{m}.py") for m in ("tracking", "rollup", "names"))
EVENTS, FLUX = (module(f"flux/{m}.py") for m in ("events", "translate"))
SIGNATURE = module("hmac_signing.py")  # the algorithms Flux's verification accepts
ARGOCD, ENVELOPE = module("argocd/translate.py"), module("queue/envelope.py")
TRANSITIONS = module("core/gate_transitions.py")

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
OTHER_ALGORITHMS = ("sha1", "sha224", "sha384", "sha512")
# Argo CD's tables (gitops-engine OperationPhase and HealthStatusCode, as the module cites).
RUNNING = '_RUNNING = frozenset({"Running", "Terminating"})'
FAILED = '_FAILED = frozenset({"Failed", "Error"})'
WAITING_HEALTH = ("Progressing", "Missing", "Suspended")
WAITING = '_WAITING_HEALTH = frozenset({"Progressing", "Missing", "Suspended"})'
SKIPPED = '_SKIPPED_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})'
ORIGIN = 'r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}"'
NOT_IN_PART = r'r"[/\x00-\x1f\x7f-\x9f]"'
PART_LIMIT = "OBJECT_PART_LIMIT = 253"
TTL = "INVENTORY_TTL = timedelta(hours=24)"
CLAIM = "CLAIM_TIMEOUT = timedelta(minutes=2)"

# (file, text, replacement): the first occurrence of text is replaced.
MUTANTS: list[tuple[str, str, str]] = [
    *((FLUX, f'"{r}",', '"XX",') for r in REASONS),
    (FLUX, 'frozenset({"RollbackSucceeded"})', "frozenset()"),
    (TRACKING, TERMINAL, "TERMINAL = frozenset({Phase.SUCCEEDED})"),
    (TRACKING, TERMINAL, "TERMINAL = frozenset({Phase.FAILED})"),
    *((EVENTS, f'"{k}",', '"XX",') for k in KINDS),
    (EVENTS, '"ExternalArtifact"}', '"XX"}'),
    (EVENTS, SHA1, 'r"[0-9a-fA-F]{40}"'),
    (EVENTS, SHA1, 'r"[0-9a-f]{39,40}"'),
    (EVENTS, SHA1, 'r"[0-9a-f]{40,64}"'),
    (ENVELOPE, LIMIT, "SERVICE_BUS_ID_LIMIT = 127"),
    (ENVELOPE, LIMIT, "SERVICE_BUS_ID_LIMIT = 129"),
    (ENVELOPE, PLAIN, r'r"[A-Za-z0-9._\"-]*"'),
    (ENVELOPE, PLAIN, r'r"[A-Za-z0-9._\\-]*"'),
    *((SIGNATURE, f'    "{a}": hashlib.{a},\n', "") for a in OTHER_ALGORITHMS),
    (SIGNATURE, '"sha256": hashlib.sha256', '"sha256": hashlib.sha512'),
    *((ARGOCD, RUNNING, RUNNING.replace(f'"{p}"', '"XX"')) for p in ("Running", "Terminating")),
    *((ARGOCD, FAILED, FAILED.replace(f'"{p}"', '"XX"')) for p in ("Failed", "Error")),
    *((ARGOCD, WAITING, WAITING.replace(f'"{h}"', '"XX"')) for h in WAITING_HEALTH),
    (ARGOCD, SKIPPED, "_SKIPPED_ANNOTATIONS = frozenset()"),
    (ARGOCD, '_NO_VALUE = "<no value>"', '_NO_VALUE = "<none>"'),
    (ARGOCD, 'KIND = "Application"', 'KIND = "ArgoApplication"'),
    (ARGOCD, SHA1, 'r"[0-9a-fA-F]{40}"'),
    (ARGOCD, SHA1, 'r"[0-9a-f]{39,40}"'),
    (ARGOCD, SHA1, 'r"[0-9a-f]{40,64}"'),
    (NAMES, ORIGIN, 'r"[A-Za-z0-9][A-Za-z0-9._-]{0,61}"'),
    (NAMES, ORIGIN, 'r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"'),
    (NAMES, ORIGIN, 'r"[A-Za-z0-9_][A-Za-z0-9._-]{0,62}"'),
    (NAMES, ORIGIN, 'r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}"'),
    (NAMES, PART_LIMIT, "OBJECT_PART_LIMIT = 252"),
    (NAMES, PART_LIMIT, "OBJECT_PART_LIMIT = 254"),
    (NAMES, NOT_IN_PART, r'r"[\x00-\x1f\x7f-\x9f]"'),
    (NAMES, NOT_IN_PART, r'r"[/\x01-\x1f\x7f-\x9f]"'),
    (NAMES, NOT_IN_PART, r'r"[/\x00-\x1e\x7f-\x9f]"'),
    (NAMES, NOT_IN_PART, r'r"[/\x00-\x1f\x80-\x9f]"'),
    (NAMES, NOT_IN_PART, r'r"[/\x00-\x1f\x7f-\x9e]"'),
    (NAMES, NOT_IN_PART, r'r"[/\x00-\x1f\x7f-\xa0]"'),
    (ROLLUP, TTL, "INVENTORY_TTL = timedelta(hours=23)"),
    (ROLLUP, TTL, "INVENTORY_TTL = timedelta(hours=25)"),
    (TRANSITIONS, CLAIM, "CLAIM_TIMEOUT = timedelta(minutes=2, microseconds=-1)"),
    (TRANSITIONS, CLAIM, "CLAIM_TIMEOUT = timedelta(minutes=2, microseconds=1)"),
]


def core_tests() -> list[str]:
    return list(CONFIG["pytest_add_cli_args_test_selection"])


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
        for part in ("connector", "tests", "pyproject.toml", "function_app.py", "host.json"):
            source = ROOT / part
            if source.is_dir():
                shutil.copytree(source, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(source, copy / part)
        if not survives(copy, EVENTS, "", "", tests):
            raise SystemExit("the core tests fail on the unmutated copy: fix them first")
        survivors = [m for m in MUTANTS if survives(copy, *m, tests)]
    for file, text, replacement in survivors:
        print(f"  constant mutant not killed: {file}: {text.strip()!r} -> {replacement.strip()!r}")
    killed = len(MUTANTS) - len(survivors)
    print(f"constant mutants {len(MUTANTS)}: killed {killed}, survived {len(survivors)}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
