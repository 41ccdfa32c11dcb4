"""The release: locks that agree with the declared ranges, what the tests run is what is locked,
one version everywhere, a CHANGELOG that names it, and a package built reproducibly.

The locks (requirements*.txt) are written by `make lock` from the ranges (requirements*.in);
these checks need no network: they read both files and the installed distributions.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from connector import USER_AGENT, __version__

ROOT = Path(__file__).resolve().parents[2]
# (declared ranges, their lock)
LOCKS = [
    ("requirements.in", "requirements.txt"),
    ("requirements-dev.in", "requirements-dev.txt"),
    ("requirements-checkov.in", "requirements-checkov.txt"),
]
# Pre-releases the deployed lock may hold, each because no released version does the job.
BETAS = {
    "azure-monitor-opentelemetry-exporter": "Application Insights' exporter: never released",
    "opentelemetry-semantic-conventions": "pinned exactly (==0.xxbN) by opentelemetry-sdk",
    "opentelemetry-exporter-http-transport": "pinned exactly by the OTLP exporter",
    "opentelemetry-exporter-otlp-common": "pinned exactly by the OTLP exporter",
}
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


@dataclass
class Pin:
    version: str
    hashes: set[str] = field(default_factory=set)
    via: list[str] = field(default_factory=list)


def read_lock(name: str) -> dict[str, Pin]:
    """A lock as uv writes it: `name==version \\` then `--hash=` lines, then `# via` lines."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
        if found := PIN.match(line):
            current = pins.setdefault(canonicalize_name(found[1]), Pin(found[2]))
        elif current is not None and (hashes := HASH.findall(line)):
            current.hashes.update(hashes)
        elif current is not None and line.strip().startswith("#"):
            via = line.strip().lstrip("#").strip().removeprefix("via").strip()
            if via:
                current.via.append(via)
        elif line.strip() and not line.startswith("#"):
            raise AssertionError(f"{name}: unexpected line {line!r}")
    return pins


def read_ranges(name: str) -> dict[str, Requirement]:
    """The declared requirements of a .in file, following its `-r` includes."""
    declared: dict[str, Requirement] = {}
    for raw in (ROOT / name).read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-r "):
            declared.update(read_ranges(line[3:].strip()))
            continue
        requirement = Requirement(line)
        declared[canonicalize_name(requirement.name)] = requirement
    return declared


def included(name: str) -> list[str]:
    """`name` and the .in files it includes with `-r`, as the locks' `via` lines name them."""
    names = [name]
    for raw in (ROOT / name).read_text(encoding="utf-8").splitlines():
        if raw.startswith("-r "):
            names += included(raw[3:].strip())
    return names


@pytest.mark.parametrize(("ranges", "lock"), LOCKS)
def test_every_declared_range_is_locked_inside_it(ranges, lock):
    pins = read_lock(lock)
    for name, requirement in read_ranges(ranges).items():
        assert name in pins, f"{name} is declared in {ranges} but not in {lock}: run `make lock`"
        assert requirement.specifier.contains(pins[name].version, prereleases=True), (
            f"{lock} pins {name}=={pins[name].version}, outside {ranges}'s {requirement}:"
            " run `make lock`"
        )


@pytest.mark.parametrize(("ranges", "lock"), LOCKS)
def test_the_lock_pins_what_the_ranges_pull_and_nothing_else(ranges, lock):
    """A pin taken directly from a .in file (`via -r requirements.in`) must still be declared
    there, and every other pin must be pulled by some package: a range removed without
    `make lock` leaves its package, and what only it pulled, behind."""
    pins = read_lock(lock)
    sources = {f"-r {name}" for name in included(ranges)}
    direct = {name for name, pin in pins.items() if sources & set(pin.via)}
    assert direct == set(read_ranges(ranges)), f"{lock} and {ranges} disagree: run `make lock`"
    for name, pin in pins.items():
        pulled_by = {canonicalize_name(v) for v in pin.via if not v.startswith("-")}
        assert pin.via, f"{lock}: nothing pulls {name}"
        assert name in direct or pulled_by & set(pins), f"{lock}: {name} is pulled by nothing"


@pytest.mark.parametrize(("ranges", "lock"), LOCKS)
def test_every_pin_is_exact_and_hashed(ranges, lock):
    pins = read_lock(lock)
    assert pins, f"{lock} pins nothing"
    for name, pin in pins.items():
        Version(pin.version)  # an exact, valid version
        assert pin.hashes, f"{lock}: {name} has no hash"
    text = (ROOT / lock).read_text(encoding="utf-8")
    assert "make lock" in text.splitlines()[1], f"{lock} was not written by `make lock`"


def test_the_dev_lock_holds_the_deployed_versions_unchanged():
    """Tests run what is deployed: the runtime pins, with the same hashes, in the dev lock."""
    runtime, dev = read_lock("requirements.txt"), read_lock("requirements-dev.txt")
    for name, pin in runtime.items():
        assert name in dev, f"requirements-dev.txt lacks the deployed {name}"
        assert (dev[name].version, dev[name].hashes) == (pin.version, pin.hashes), name


def test_the_deployed_lock_holds_only_the_named_betas():
    betas = {
        n for n, pin in read_lock("requirements.txt").items() if Version(pin.version).is_prerelease
    }
    assert betas == set(BETAS), "a beta came or went: update BETAS and docs/deploy.md"


def test_the_tests_run_what_is_locked():
    """The environment running this suite is the dev lock (`make install`), version by version."""
    wrong = []
    for name, pin in read_lock("requirements-dev.txt").items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = "missing"
        if installed == "missing" or Version(installed) != Version(pin.version):
            wrong.append(f"{name} {installed} (locked {pin.version})")
    assert not wrong, "the venv is not the lock, run `make install`: " + ", ".join(wrong)


def test_the_locks_target_the_deployed_runtime():
    """`make lock` resolves for the Python that infra/main.bicep deploys, on Linux x86_64."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    bicep = (ROOT / "infra" / "main.bicep").read_text(encoding="utf-8")
    deployed = re.search(r"^param pythonVersion string = '([0-9.]+)'$", bicep, re.MULTILINE)
    allowed = re.search(r"@allowed\(\[([^\]]*)\]\)\nparam pythonVersion", bicep)
    assert deployed
    assert allowed
    assert re.findall(r"'([0-9.]+)'", allowed[1]) == [deployed[1]], "one Python: the locked one"
    assert f"--python-version {deployed[1]}" in makefile
    assert "--python-platform x86_64-manylinux_2_28" in makefile
    assert tuple(map(int, deployed[1].split("."))) == package_script().PYTHON


# --- one version -------------------------------------------------------------------------------


def test_the_version_is_written_once():
    """connector/__init__.py holds it; everything else reads it from there."""
    literal = re.compile(rf"(?<![\d.]){re.escape(__version__)}(?![\d.])")
    places = [ROOT / "function_app.py", ROOT / "pyproject.toml", ROOT / "host.json"]
    places += [*(ROOT / "connector").rglob("*.py"), *(ROOT / "scripts").glob("*.py")]
    # Everything else that could carry a version: the npm manifest, azd, the templates, the
    # deployment files, the docs and the scripts of every kind (the locks pin other packages'
    # versions, the CHANGELOG names every release).
    places += [ROOT / name for name in ("package.json", "azure.yaml", "README.md", "Makefile")]
    places += [ROOT / "CONTRIBUTING.md", ROOT / "local.settings.sample.json"]
    for folder in ("infra", "deploy", "pipelines", "docs", "scripts", "bench", ".ci"):
        files = [p for p in (ROOT / folder).rglob("*") if p.is_file()]
        places += [p for p in files if p.suffix not in {".png", ".pyc"}]
    found = {str(p.relative_to(ROOT)) for p in places if literal.search(p.read_text("utf-8"))}
    assert found == {"connector/__init__.py"}
    lock = json.loads((ROOT / "package-lock.json").read_text(encoding="utf-8"))
    assert "version" not in lock
    assert "version" not in lock["packages"][""]
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'dynamic = ["version"]' in pyproject
    assert 'version = { attr = "connector.__version__" }' in pyproject
    assert package_script().version() == __version__
    assert f"flux-azdo-connector/{__version__}" == USER_AGENT


def test_health_answers_the_version():
    import function_app

    response = function_app.health(func.HttpRequest(method="GET", url="/api/health", body=b""))
    assert json.loads(response.get_body()) == {"status": "ok", "version": __version__}


def test_both_http_clients_send_the_version_as_user_agent():
    from azure.core import PipelineClient
    from azure.core.rest import HttpRequest

    from connector.devops.policies import auth_policy, policies
    from connector.outputs.subscribers import Subscriber, WebhookClient
    from tests.fakes.webhook_receiver import WebhookReceiver

    with WebhookReceiver() as receiver:
        WebhookClient(retry_total=0).post(Subscriber.parse(receiver.url("/hook")), b"{}", {})
        devops: PipelineClient[HttpRequest, Any] = PipelineClient(
            base_url="",
            policies=policies(
                auth=auth_policy("pat", None),
                retry_total=0,
                retry_backoff_factor=0,
                retry_backoff_max=0,
            ),
        )
        devops.send_request(HttpRequest("POST", receiver.url("/_apis/x"), json={}))
    agents = [received.headers.get("User-Agent", "") for received in receiver.received]
    assert len(agents) == 2
    for agent in agents:
        assert agent.split()[0] == USER_AGENT, agent


# --- the CHANGELOG check -----------------------------------------------------------------------

RELEASE = re.compile(r"^## \[(?P<version>\d+\.\d+\.\d+)\] - (?P<date>\d{4}-\d{2}-\d{2})$")


def changelog_problems(text: str, version: str) -> list[str]:
    """Headers are `## [Unreleased]` (first, if present) or `## [X.Y.Z] - YYYY-MM-DD`, newest
    first; the newest release is `version`. With no release yet, any version passes."""
    headers = [line for line in text.splitlines() if line.startswith("## ")]
    problems = [
        f"not a release header: {h!r}"
        for h in headers
        if h != "## [Unreleased]" and not RELEASE.match(h)
    ]
    if "## [Unreleased]" in headers[1:]:
        problems.append("[Unreleased] must be the first section")
    releases = [Version(m["version"]) for h in headers if (m := RELEASE.match(h))]
    if releases != sorted(releases, reverse=True) or len(set(releases)) != len(releases):
        problems.append(f"releases are not newest first, once each: {[str(r) for r in releases]}")
    if releases and releases[0] != Version(version):
        problems.append(f"the newest release is {releases[0]}, the version {version}")
    return problems


def test_the_changelog_names_the_version():
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert changelog_problems(text, __version__) == []


@pytest.mark.parametrize(
    ("text", "version", "ok"),
    [
        ("## [Unreleased]\n## [0.2.0] - 2026-12-08\n## [0.1.0] - 2026-11-01\n", "0.2.0", True),
        ("## [Unreleased]\n", "0.3.0", True),
        ("## [0.2.0] - 2026-12-08\n", "0.2.1", False),  # bumped without its header
        ("## [Unreleased]\n## [0.1.0] - 2026-11-01\n", "0.2.0", False),
        ("## [0.1.0] - 2026-11-01\n## [0.2.0] - 2026-12-08\n", "0.2.0", False),  # order
        ("## [0.2.0] - 2026-12-08\n## [Unreleased]\n", "0.2.0", False),
        ("## [0.2.0]\n", "0.2.0", False),  # no date
        ("## 0.2.0 - 2026-12-08\n", "0.2.0", False),  # no brackets
    ],
)
def test_the_changelog_check_can_fail(text, version, ok):
    assert (changelog_problems(text, version) == []) is ok


# --- the package -------------------------------------------------------------------------------


def package_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("package_script", ROOT / "scripts" / "package.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_package_takes_the_app_sources_only():
    files = {p.as_posix() for p in package_script().app_files()}
    assert {"function_app.py", "host.json", "requirements.txt", "connector/__init__.py"} <= files
    assert all(f.endswith(".py") for f in files - {"host.json", "requirements.txt"})
    assert not {f for f in files if f.startswith(("tests/", "bench/", "infra/", "local."))}
    assert not {f for f in files if "__pycache__" in f}


def make_tree(root: Path, mtime: int, order: list[str]) -> Path:
    files = {
        "function_app.py": "import connector\n",
        "connector/__init__.py": '__version__ = "9.9.9"\n',
        "connector/core/rules.py": "RULES = {'a': 1}\n\n\ndef f():\n    return RULES\n",
        ".python_packages/lib/site-packages/dep/__init__.py": "X = 1\n",
    }
    for name in order:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[name], encoding="utf-8")
        os.utime(path, (mtime, mtime))
    return root


def test_the_same_sources_zip_to_the_same_bytes(tmp_path):
    """Other times, another creation order, another folder: the same zip, byte for byte,
    bytecode included."""
    script = package_script()
    names = [
        "function_app.py",
        "connector/__init__.py",
        "connector/core/rules.py",
        ".python_packages/lib/site-packages/dep/__init__.py",
    ]
    zips = []
    for n, (mtime, order) in enumerate([(1_700_000_000, names), (1_800_000_000, names[::-1])]):
        tree = make_tree(tmp_path / f"tree{n}", mtime, order)
        script.compile_bytecode(tree)
        out = tmp_path / f"app{n}.zip"
        listing = script.write_zip(tree, out)
        zips.append((out.read_bytes(), listing))
    (first, listing), (second, again) = zips
    assert first == second
    assert script.digest(listing) == script.digest(again)
    with zipfile.ZipFile(tmp_path / "app0.zip") as zf:
        infos = zf.infolist()
    names_in_zip = [i.filename for i in infos]
    assert names_in_zip == sorted(names_in_zip)
    assert any(n.endswith(".cpython-311.pyc") for n in names_in_zip)
    assert {(i.date_time, i.external_attr >> 16) for i in infos} == {
        ((1980, 1, 1, 0, 0, 0), 0o100644)
    }


def test_bytecode_is_checked_against_the_source_not_its_time(tmp_path):
    """Hash-based .pyc: flags 0b11 (hash, checked) in the header, so an edited source is
    recompiled and a copied tree's times do not matter."""
    script = package_script()
    tree = make_tree(tmp_path / "tree", 1_700_000_000, ["connector/core/rules.py"])
    script.compile_bytecode(tree)
    (pyc,) = (tree / "connector/core/__pycache__").glob("rules.*.pyc")
    assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 0b11


def test_a_changed_file_changes_the_digest(tmp_path):
    script = package_script()
    names = ["function_app.py", "connector/__init__.py"]
    tree = make_tree(tmp_path / "tree", 1_700_000_000, names)
    before = script.digest(script.write_zip(tree, tmp_path / "a.zip"))
    (tree / "connector/__init__.py").write_text('__version__ = "9.9.10"\n', encoding="utf-8")
    assert script.digest(script.write_zip(tree, tmp_path / "b.zip")) != before


def test_azd_deploys_the_package_built_here():
    """azure.yaml: no remote build; `make package` first, then the folder it stages."""
    text = (ROOT / "azure.yaml").read_text(encoding="utf-8")
    for line in ("dist: build/package", "remoteBuild: false", "prepackage:", "run: make package"):
        assert re.search(rf"^\s+{re.escape(line)}$", text, re.MULTILINE), line
    assert package_script().BUILD_DIR == ROOT / "build" / "package"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "$(BIN)/python scripts/package.py\n" in makefile
