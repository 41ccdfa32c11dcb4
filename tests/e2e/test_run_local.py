"""`scripts/run-local.sh` (`make run`), run for real against stand-in tools.

Each test copies the script and the files it reads into a temporary project and runs it with a PATH
holding only stand-ins (`func`, `docker`) and the few real tools the script needs. The stand-ins are
tiny Python scripts that append their argv to a JSON-lines log. The project's
`node_modules/.bin/azurite` is a stand-in that listens on the table port it is given (and exits by
itself after 20 s), so the script's readiness wait and its clean-up on exit are exercised too.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from connector.settings import HOST_SETTINGS, Settings, setting_names

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "local.settings.sample.json"
EMULATOR_CONNECTION = (
    "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;"
    "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;"
)
# Real tools the script may use; anything else it calls is missing, so hidden dependencies fail.
REAL_TOOLS = ("bash", "env", "dirname", "cp", "sleep")
# The venv's python: runs what the script runs with it, but only records `-m connector serve`.
VENV_PYTHON = """#!{python}
import json, os, sys
if sys.argv[1:3] == ["-m", "connector"]:
    with open({log!r}, "a", encoding="utf-8") as f:
        f.write(json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd()}}) + "\\n")
    sys.exit(0)
os.execv({python!r}, [{python!r}, *sys.argv[1:]])
"""

RECORDER = """#!{python}
import json, os, sys
with open({log!r}, "a", encoding="utf-8") as f:
    f.write(json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd(),
                        "virtual_env": os.environ.get("VIRTUAL_ENV")}}) + "\\n")
{extra}
"""
FUNC_EXTRA = 'sys.exit(int(os.environ.get("FAKE_FUNC_EXIT", "0")))'
DOCKER_EXTRA = """if sys.argv[1:2] == ["info"]:
    sys.exit(int(os.environ.get("FAKE_DOCKER_INFO_EXIT", "0")))
if sys.argv[1:3] == ["compose", "version"]:
    sys.exit(int(os.environ.get("FAKE_COMPOSE_EXIT", "0")))
"""
NODE_EXTRA = """if sys.argv[1:2] == ["-p"]:
    print(os.environ.get("FAKE_NODE_MAJOR", "20"))
"""
MAKE_EXTRA = 'sys.exit(int(os.environ.get("FAKE_MAKE_EXIT", "0")))'
# npm stand-in: `npm install --prefix DIR azure-functions-core-tools@4` puts a recording `func` in
# DIR/node_modules/.bin, as the real package does; FAKE_NPM_EXIT=1 stands for "no network".
NPM_EXTRA = """code = int(os.environ.get("FAKE_NPM_EXIT", "0"))
if code == 0 and sys.argv[1:2] == ["install"]:
    import pathlib
    prefix = sys.argv[sys.argv.index("--prefix") + 1]
    target = pathlib.Path(prefix, "node_modules", ".bin", "func")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(pathlib.Path(os.environ["FAKE_FUNC_SOURCE"]).read_text())
    target.chmod(0o755)
sys.exit(code)
"""
AZURITE_EXTRA = """import signal, socket, time
def stop(*_):
    with open({log!r}, "a", encoding="utf-8") as f:
        f.write(json.dumps({{"signal": "TERM"}}) + "\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
port = int(sys.argv[sys.argv.index("--tablePort") + 1])
server = socket.create_server(("127.0.0.1", port))
time.sleep(20)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@dataclass
class Project:
    root: Path
    bin: Path
    logs: Path
    env: dict[str, str]

    @property
    def settings(self) -> Path:
        return self.root / "local.settings.json"

    def stand_in(self, name: str, directory: Path, extra: str = "") -> None:
        log = str(self.logs / f"{name}.jsonl")
        path = directory / name
        path.write_text(
            RECORDER.format(python=sys.executable, log=log, extra=extra.format(log=log)),
            encoding="utf-8",
        )
        path.chmod(0o755)

    def calls(self, name: str) -> list[dict[str, Any]]:
        return [r for r in read_log(self.logs / f"{name}.jsonl") if "argv" in r]

    def write_settings(self, **values: str) -> None:
        doc = json.loads(SAMPLE.read_text(encoding="utf-8"))
        doc["Values"].update(values)
        self.settings.write_text(json.dumps(doc), encoding="utf-8")

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - our own script, fixed arguments
            [str(self.root / "scripts" / "run-local.sh"), *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root, bin_dir, logs = tmp_path / "project", tmp_path / "bin", tmp_path / "logs"
    for d in (
        root / "scripts",
        root / ".venv" / "bin",
        root / "node_modules" / ".bin",
        bin_dir,
        logs,
    ):
        d.mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "run-local.sh", root / "scripts" / "run-local.sh")
    shutil.copy2(SAMPLE, root / SAMPLE.name)
    shutil.copy2(ROOT / "docker-compose.yml", root / "docker-compose.yml")
    venv = root / ".venv"
    (venv / "bin" / "python").write_text(
        VENV_PYTHON.format(python=sys.executable, log=str(logs / "serve.jsonl")), encoding="utf-8"
    )
    (venv / "bin" / "python").chmod(0o755)
    (bin_dir / "python3").symlink_to(sys.executable)
    (venv / "bin" / "activate").write_text(
        f'export VIRTUAL_ENV="{venv}"\nexport PATH="$VIRTUAL_ENV/bin:$PATH"\n', encoding="utf-8"
    )
    for tool in REAL_TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)

    p = Project(
        root=root,
        bin=bin_dir,
        logs=logs,
        env={
            "PATH": str(bin_dir),
            "HOME": str(tmp_path),
            "AZURITE_TABLE_PORT": str(free_port()),
            "SERVICEBUS_EMULATOR_TIMEOUT": "0",
            "SERVICEBUS_EMULATOR_HEALTH_URL": f"http://127.0.0.1:{free_port()}/health",
            "FAKE_FUNC_SOURCE": str(bin_dir / "func"),
            "RUN_LOCAL_PORT": str(free_port()),
        },
    )
    p.stand_in("func", bin_dir, FUNC_EXTRA)
    p.stand_in("node", bin_dir, NODE_EXTRA)
    p.stand_in("make", bin_dir, MAKE_EXTRA)
    p.stand_in("npm", bin_dir, NPM_EXTRA)
    p.stand_in("docker", bin_dir, DOCKER_EXTRA)
    p.stand_in("azurite", root / "node_modules" / ".bin", AZURITE_EXTRA)
    return p


@pytest.fixture
def healthy_emulator() -> Iterator[str]:
    """A loopback HTTP server answering 200, standing in for the emulator's health endpoint."""

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/health"
    server.shutdown()
    server.server_close()


def assert_nothing_started(p: Project) -> None:
    assert p.calls("make") == []  # nothing installed either
    assert p.calls("azurite") == []
    assert p.calls("func") == []
    assert p.calls("serve") == []


# --- prerequisites ---------------------------------------------------------------------------


def test_without_core_tools_the_embedded_host_runs_and_says_why(project: Project) -> None:
    (project.bin / "func").unlink()

    result = project.run("--hold-queue")

    assert result.returncode == 0, result.stderr
    assert [c["argv"] for c in project.calls("make")] == [["--no-print-directory", "install"]]
    [serve] = project.calls("serve")
    port = project.env["RUN_LOCAL_PORT"]
    assert serve["argv"] == [
        "-m", "connector", "serve", "--settings", "local.settings.json", "--port", port,
        "--hold-queue",
    ]  # fmt: skip
    assert serve["cwd"] == str(project.root)
    assert "not using Azure Functions Core Tools, because:" in result.stderr
    assert "npm i -g azure-functions-core-tools@4" in result.stderr
    assert project.calls("npm") == []  # no 200 MB download behind the user's back
    assert project.calls("func") == []


def test_core_tools_already_installed_by_npm_are_used(project: Project) -> None:
    project.write_settings(ServiceBusConnection="Endpoint=sb://ns.servicebus.windows.net/;x=y")
    installed = project.root / ".tools/core-tools/node_modules/.bin"
    installed.mkdir(parents=True)
    (installed / "func").write_bytes((project.bin / "func").read_bytes())
    (installed / "func").chmod(0o755)
    (project.bin / "func").unlink()

    result = project.run()

    assert result.returncode == 0, result.stderr
    assert project.calls("npm") == []
    assert len(project.calls("func")) == 1
    assert project.calls("serve") == []


def test_embedded_host_on_request_even_with_core_tools(project: Project) -> None:
    project.write_settings(ServiceBusConnection="Endpoint=sb://ns.servicebus.windows.net/;x=y")

    result = project.run(RUN_LOCAL_HOST="embedded")

    assert result.returncode == 0, result.stderr
    assert len(project.calls("serve")) == 1
    assert project.calls("func") == []
    assert "not using" not in result.stderr


def test_core_tools_requested_but_missing_names_the_fix(project: Project) -> None:
    (project.bin / "func").unlink()

    result = project.run(RUN_LOCAL_HOST="func")

    assert result.returncode != 0
    assert "1 prerequisite(s) missing" in result.stderr
    assert "npm i -g azure-functions-core-tools@4" in result.stderr
    assert_nothing_started(project)
    assert project.settings.read_bytes() == SAMPLE.read_bytes()  # created before stopping


def test_missing_node_says_install_node(project: Project) -> None:
    (project.bin / "node").unlink()

    result = project.run()

    assert result.returncode != 0
    assert "Node.js and npm" in result.stderr
    assert_nothing_started(project)


def test_old_node_is_named_with_its_version(project: Project) -> None:
    result = project.run(FAKE_NODE_MAJOR="18")

    assert result.returncode != 0
    assert "Node.js 18 is too old" in result.stderr
    assert_nothing_started(project)


def test_the_fix_is_the_one_for_this_machine(project: Project) -> None:
    (project.bin / "node").unlink()
    project.stand_in("apt-get", project.bin)

    result = project.run()

    assert "Fix: sudo apt-get install nodejs npm" in result.stderr
    assert project.calls("apt-get") == []  # named, never run


def test_missing_venv_is_created_by_make_install(project: Project) -> None:
    shutil.rmtree(project.root / ".venv")

    result = project.run()

    assert result.returncode != 0  # the stand-in `make` creates nothing
    assert [c["argv"] for c in project.calls("make")] == [["--no-print-directory", "install"]]
    assert "make install did not create .venv/bin/python" in result.stderr


def test_failed_install_stops_before_any_host(project: Project) -> None:
    result = project.run(FAKE_MAKE_EXIT="2")

    assert result.returncode != 0
    assert "make install failed" in result.stderr
    assert project.calls("func") == []
    assert project.calls("serve") == []


def test_missing_azurite_after_install_says_npm_ci(project: Project) -> None:
    (project.root / "node_modules" / ".bin" / "azurite").unlink()

    result = project.run()

    assert result.returncode != 0
    assert "npm ci" in result.stderr
    assert project.calls("func") == []


def test_every_missing_prerequisite_is_reported_at_once_before_installing(
    project: Project,
) -> None:
    for tool in ("node", "make", "python3"):
        (project.bin / tool).unlink()

    result = project.run()

    assert result.returncode != 0, result.stderr
    assert "3 prerequisite(s) missing" in result.stderr
    for remedy in ("Python 3.11", "Node.js", "make is not on PATH"):
        assert remedy in result.stderr
    assert_nothing_started(project)
    assert project.settings.exists()


def test_port_in_use_is_a_missing_prerequisite(project: Project) -> None:
    with socket.create_server(("127.0.0.1", int(project.env["RUN_LOCAL_PORT"]))):
        result = project.run()

    assert result.returncode != 0
    assert f"Port {project.env['RUN_LOCAL_PORT']} is in use" in result.stderr
    assert_nothing_started(project)


# --- local.settings.json ----------------------------------------------------------------------


def test_creates_local_settings_from_the_sample_when_missing(
    project: Project, healthy_emulator: str
) -> None:
    result = project.run(SERVICEBUS_EMULATOR_HEALTH_URL=healthy_emulator)

    assert result.returncode == 0, result.stderr
    assert project.settings.read_bytes() == SAMPLE.read_bytes()
    assert "created local.settings.json" in result.stderr


def test_never_overwrites_existing_local_settings(project: Project) -> None:
    project.write_settings(ServiceBusConnection="Endpoint=sb://mine.servicebus.windows.net/;x=y")
    before = project.settings.read_bytes()

    result = project.run()

    assert result.returncode == 0, result.stderr
    assert project.settings.read_bytes() == before
    assert "created" not in result.stderr


def test_invalid_local_settings_is_named(project: Project) -> None:
    project.settings.write_text("{not json", encoding="utf-8")

    result = project.run()

    assert result.returncode != 0
    assert "local.settings.json is not a valid settings file" in result.stderr
    assert_nothing_started(project)


# --- Service Bus --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("docker", "said"),
    [
        ("absent", "Docker is not installed"),
        ("daemon not running", "Docker is installed but its daemon is not running"),
        ("no compose plugin", "its Compose plugin ('docker compose') is missing"),
    ],
)
def test_no_usable_docker_runs_the_embedded_host_and_says_which(
    project: Project, docker: str, said: str
) -> None:
    if docker == "absent":
        (project.bin / "docker").unlink()

    result = project.run(
        FAKE_DOCKER_INFO_EXIT="1" if docker == "daemon not running" else "0",
        FAKE_COMPOSE_EXIT="1" if docker == "no compose plugin" else "0",
    )

    assert result.returncode == 0, result.stderr
    assert said in result.stderr
    assert len(project.calls("serve")) == 1
    assert project.calls("func") == []
    assert not any(c["argv"][:2] == ["compose", "-f"] for c in project.calls("docker"))


@pytest.mark.parametrize("docker", ["absent", "daemon not running"])
def test_core_tools_without_a_service_bus_names_both_remedies(project: Project, docker: str):
    if docker == "absent":
        (project.bin / "docker").unlink()

    result = project.run(RUN_LOCAL_HOST="func", FAKE_DOCKER_INFO_EXIT="1")

    assert result.returncode != 0
    assert ("Docker is not installed" if docker == "absent" else "daemon is not running") in (
        result.stderr
    )
    assert "ServiceBusConnection" in result.stderr
    assert "ServiceBusConnection__fullyQualifiedNamespace" in result.stderr
    assert "sessions and duplicate detection" in result.stderr
    assert_nothing_started(project)


def test_docker_starts_the_emulator_then_azurite_and_func(
    project: Project, healthy_emulator: str
) -> None:
    result = project.run(
        "--verbose", "--port", "7072", SERVICEBUS_EMULATOR_HEALTH_URL=healthy_emulator
    )

    assert result.returncode == 0, result.stderr
    compose = str(project.root / "docker-compose.yml")
    assert [c["argv"] for c in project.calls("docker")] == [
        ["info"],
        ["compose", "version"],
        ["compose", "-f", compose, "up", "-d"],
    ]
    [func] = project.calls("func")
    assert func["argv"] == ["start", "--verbose", "--port", "7072"]
    assert func["cwd"] == str(project.root)
    assert func["virtual_env"] == str(project.root / ".venv")


def test_unhealthy_emulator_stops_before_starting_anything_else(project: Project) -> None:
    result = project.run()  # the health URL answers nothing, and the timeout is 0 s

    assert result.returncode != 0
    assert "not healthy" in result.stderr
    assert "docker compose logs" in result.stderr
    assert project.calls("azurite") == []
    assert project.calls("func") == []
    assert project.calls("serve") == []


@pytest.mark.parametrize(
    "values",
    [
        {"ServiceBusConnection": "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKey=k"},
        {
            "ServiceBusConnection": "",
            "ServiceBusConnection__fullyQualifiedNamespace": "ns.servicebus.windows.net",
        },
    ],
    ids=["connection string", "namespace"],
)
def test_real_servicebus_in_settings_does_not_touch_docker(
    project: Project, values: dict[str, str]
) -> None:
    project.write_settings(**values)

    result = project.run()

    assert result.returncode == 0, result.stderr
    assert project.calls("docker") == []
    assert [c["argv"] for c in project.calls("func")] == [["start"]]


def test_namespace_next_to_the_emulator_connection_is_refused(project: Project) -> None:
    # The Functions host would use the connection string and ignore the namespace.
    project.write_settings(
        ServiceBusConnection=EMULATOR_CONNECTION,
        ServiceBusConnection__fullyQualifiedNamespace="ns.servicebus.windows.net",
    )

    result = project.run(RUN_LOCAL_HOST="func")

    assert result.returncode != 0
    assert 'set ServiceBusConnection to ""' in result.stderr
    assert project.calls("docker") == []
    assert_nothing_started(project)


# --- Azurite and the Functions host -----------------------------------------------------------


def test_azurite_runs_from_node_modules_and_stops_on_exit(project: Project) -> None:
    project.write_settings(ServiceBusConnection="Endpoint=sb://ns.servicebus.windows.net/;x=y")

    result = project.run(FAKE_FUNC_EXIT="3")

    assert result.returncode == 3  # func's status is the script's
    [azurite] = project.calls("azurite")
    for flag in ("--silent", "--disableTelemetry", "--inMemoryPersistence"):
        assert flag in azurite["argv"]
    assert (
        azurite["argv"][azurite["argv"].index("--tablePort") + 1]
        == (project.env["AZURITE_TABLE_PORT"])
    )
    assert {"signal": "TERM"} in read_log(project.logs / "azurite.jsonl")
    assert "stopped Azurite" in result.stderr


def test_running_azurite_is_reused(project: Project) -> None:
    project.write_settings(ServiceBusConnection="Endpoint=sb://ns.servicebus.windows.net/;x=y")
    port = int(project.env["AZURITE_TABLE_PORT"])

    with socket.create_server(("127.0.0.1", port)):
        result = project.run()

    assert result.returncode == 0, result.stderr
    assert "already listens" in result.stderr
    assert project.calls("azurite") == []
    assert len(project.calls("func")) == 1


# --- make help ---------------------------------------------------------------------------------


def test_make_help_lists_every_target_with_one_line() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    # Command targets: a plain word before the colon (file rules hold a dot or a slash).
    targets = set(re.findall(r"^([a-z][a-z0-9_-]*):(?!=)", makefile, flags=re.MULTILINE))
    phony = set(makefile.split(".PHONY:", 1)[1].splitlines()[0].split())

    result = subprocess.run(  # noqa: S603 - fixed arguments
        [shutil.which("make") or "make", "--no-print-directory", "-C", str(ROOT), "help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )

    listed = {}
    for line in result.stdout.splitlines():
        word, target, description = line.split(maxsplit=2)
        assert word == "make"
        listed[target] = description
    assert set(listed) == targets == phony
    assert all(description.strip() for description in listed.values())


# --- the files the script relies on ---------------------------------------------------------------


def test_sample_settings_hold_every_setting_and_validate() -> None:
    doc = json.loads(SAMPLE.read_text(encoding="utf-8"))
    values = doc["Values"]

    assert doc["IsEncrypted"] is False
    assert doc["Host"] == {"LocalHttpPort": 7071}
    assert set(values) == set(setting_names()) | set(HOST_SETTINGS)
    assert all(isinstance(v, str) for v in values.values())
    assert values["ServiceBusConnection"] == EMULATOR_CONNECTION
    settings = Settings.from_env(values)
    assert settings.trial_mode is True
    assert settings.flux_allow_unsigned is False
    assert settings.servicebus_queue == "flux-events"
    assert set(settings.environments) == {settings.default_env}
    assert settings.default_cluster in settings.environments[settings.default_env].clusters


def test_emulator_queue_matches_what_the_connector_needs() -> None:
    config = json.loads((ROOT / "deploy/servicebus-emulator/Config.json").read_text("utf-8"))
    [namespace] = config["UserConfig"]["Namespaces"]
    queues = {q["Name"]: q["Properties"] for q in namespace["Queues"]}

    assert namespace["Name"] == "sbemulatorns"
    props = queues["flux-events"]
    assert props["RequiresSession"] is True
    assert props["RequiresDuplicateDetection"] is True
    assert props["DeadLetteringOnMessageExpiration"] is True
    # The same maximum as the Azure queue (infra/main.bicep), so that a message is dead-lettered
    # after as many deliveries locally as in Azure.
    bicep = (ROOT / "infra" / "main.bicep").read_text(encoding="utf-8")
    assert f"param maxDeliveryCount int = {props['MaxDeliveryCount']}" in bicep
    assert props["LockDuration"] == "PT1M"
    # The emulator accepts at most PT5M here (Azure: up to 7 days).
    assert props["DuplicateDetectionHistoryTimeWindow"] == "PT5M"
