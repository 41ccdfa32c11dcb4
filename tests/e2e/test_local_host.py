"""`python -m connector serve` for real: a subprocess on free ports, with its own Azurite (from
node_modules, data on disk), the app's own function_app.py, signed samples through
`send-sample`, a gate completed in trial mode, a stop and two restarts, one of them with a
message accepted but not yet processed."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from connector.app.cli import sample
from connector.app.cli.main import main
from connector.app.local.azurite import listening

ROOT = Path(__file__).resolve().parents[2]
HMAC = "local-host-test-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    doc = json.loads((ROOT / "local.settings.sample.json").read_text(encoding="utf-8"))
    doc["Values"].update(FLUX_HMAC_KEY=HMAC, AZDO_DRY_RUN="")  # empty: serve's default, trial
    doc["Host"]["LocalHttpPort"] = free_port()
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def clean_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "SYSTEMROOT", "TMPDIR")
    # COVERAGE_*: `make e2e` measures the host's process too (no setting of ours).
    return {k: v for k, v in os.environ.items() if k in keep or k.startswith("COVERAGE_")}


@contextmanager
def host(settings: Path, azurite_port: int, *extra: str) -> Iterator[dict[str, Any]]:
    """A running `serve`; on exit Ctrl-C (SIGINT) and the checks that it stopped cleanly."""
    log = settings.parent / "serve.log"
    with log.open("a", encoding="utf-8") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own CLI
            [
                sys.executable,
                "-m",
                "connector",
                "serve",
                "--settings",
                str(settings),
                "--azurite-port",
                str(azurite_port),
                *extra,
            ],
            cwd=ROOT,
            env=clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    info_path = settings.parent / ".local-run" / "host.json"
    try:
        deadline = time.monotonic() + 60
        while not info_path.exists():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        info = json.loads(info_path.read_text())
        info["log"] = log
        yield info
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    assert code == 0, log.read_text()
    assert not listening(azurite_port), "Azurite outlived the host"
    assert not info_path.exists()


def get(url: str, key: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"x-functions-key": key})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def send_sample(capsys, settings: Path, *argv: str) -> tuple[int, str]:
    code = main(["send-sample", "--settings", str(settings), *argv], environ={})
    out, _ = capsys.readouterr()
    return code, out


def test_serve_runs_the_app_keeps_what_it_accepted_and_stops_everything(settings_file, capsys):
    azurite_port = free_port()
    with host(settings_file, azurite_port) as info:
        code, out = send_sample(capsys, settings_file, "--gate", "--env", "dev")
        assert code == 0, out
        assert "  200 {" in out
        assert '"state": "waiting"' in out
        assert "Progressing: 202 " in out
        assert "ReconciliationSucceeded: 202 " in out
        assert "state: environment dev succeeded" in out
        assert "status env/dev: succeeded 'healthy in 1 of 1 clusters'" in out
        assert "would complete succeeded" in out  # trial mode: what the gate would post
        first = out.split("rollout of commit ", 1)[1].split()[0]
        status, view = get(f"{info['url']}/api/deployments/{first}", info["function_key"])
        assert status == 200
        assert view["gates"][0]["trial"].startswith("would complete succeeded")
        assert get(f"{info['url']}/api/deployments/{first}", "wrong")[0] == 401
        assert get(f"{info['url']}/api/doctor", info["function_key"])[0] == 401  # admin only
        assert "azure_devops.trial POST" in info["log"].read_text()
        assert get(f"{info['url']}/api/doctor", info["master_key"])[0] == 200
        # The CLI with the same settings sees what the host serves: its queue and its Azurite.
        code = main(["doctor", "--json", "--settings", str(settings_file)], environ={})
        checks = {c["check"]: c for c in json.loads(capsys.readouterr().out)}
        assert code == 0, checks
        assert checks["servicebus.queue"]["detail"].startswith("local queue")
        assert checks["devops.organization"]["skipped"]

    # Accepted while the queue is held, then stopped: the message waits on disk.
    held = sample.Sample(cluster="kind-local", env="dev", commit="ab" * 20, phase="succeeded")
    with host(settings_file, azurite_port, "--hold-queue") as info:
        answers = sample.send(
            held,
            url=info["url"] + "/api/flux",
            key=HMAC.encode(),
            function_key=info["function_key"],
        )
        assert [a.status for a in answers] == [202, 202]
    accepted = {json.loads(a.body)["id"] for a in answers}
    with sqlite3.connect(settings_file.parent / ".local-run" / "queue.sqlite") as db:
        waiting = {row[0] for row in db.execute("SELECT message_id FROM messages WHERE dead = 0")}
    assert accepted <= waiting  # the first run's scheduled gate check may wait there too

    with host(settings_file, azurite_port) as info:
        key = info["function_key"]
        deadline = time.monotonic() + 30
        while True:
            status, view = get(f"{info['url']}/api/deployments/{held.commit}", key)
            objects = (
                view["environments"]["dev"]["clusters"]["kind-local"]["objects"]
                if (status == 200 and view["environments"])
                else {}
            )
            if any(o["phase"] == "succeeded" for o in objects.values()):
                break
            assert time.monotonic() < deadline, (status, view)
            time.sleep(0.3)
        # The first run's state survived two restarts (Azurite's data is on disk).
        assert get(f"{info['url']}/api/deployments/{first}", key)[0] == 200


def test_send_sample_without_a_running_app_says_how_to_start_one(settings_file, capsys):
    code, out = send_sample(
        capsys, settings_file, "--url", f"http://127.0.0.1:{free_port()}/api/flux"
    )
    assert code == 3
    assert "no app answers at" in out
    assert "make run" in out
    assert "connector serve" in out
