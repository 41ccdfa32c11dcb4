"""`python -m connector …` against Azurite: status, gates, dlq; settings and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import azure.functions as func
import pytest

import function_app
from connector.app.cli.main import LOGIN_HINT, main
from connector.app.root import bootstrap
from connector.app.root.bootstrap import Container
from connector.core.gates import GateState
from connector.core.tracking import Phase
from connector.settings import Settings
from connector.storage.rows import connect
from connector.storage.tables import TableStore
from tests.integration.test_deployments_view import ENVIRONMENTS, A, add_gate, populate, record
from tests.unit.test_deadletters import InMemoryDeadLetterQueue, letters

pytestmark = pytest.mark.azurite

ROOT = Path(__file__).resolve().parents[2]
UNKNOWN = "c3" * 20
SETTINGS = {"ENVIRONMENTS": ENVIRONMENTS, "SERVICEBUS_QUEUE": "flux-events"}


@pytest.fixture
def prefix() -> str:
    return "cli" + uuid.uuid4().hex[:12]


@pytest.fixture
def store(azurite_connection: str, prefix: str) -> TableStore:
    return TableStore(connect(connection_string=azurite_connection), prefix=prefix)


@pytest.fixture
def dlq() -> InMemoryDeadLetterQueue:
    return InMemoryDeadLetterQueue(letters(3))


@pytest.fixture
def run(store, dlq, capsys):
    """Run the CLI with a container on the test's store and fake dead-letter queue."""

    def _run(*argv: str) -> tuple[int, str, str]:
        code = main(
            list(argv),
            environ=SETTINGS,
            make_container=lambda s: Container(s, store=store, dead_letters=dlq),
        )
        out, err = capsys.readouterr()
        return code, out, err

    return _run


# --- status --------------------------------------------------------------------------------------


def test_status_table(run, store):
    populate(store)
    code, out, err = run("status", A)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"commit {A}"
    assert "environment dev: failed" in lines
    assert "  cluster dev-1: failed" in lines
    assert "  cluster dev-2: progressing" in lines
    [podinfo] = [line for line in lines if "HelmRelease/apps/podinfo" in line]
    assert podinfo.split()[:3] == ["HelmRelease/apps/podinfo", "failed", "UpgradeFailed"]
    assert "2026-05-14 09:01:00Z" in podinfo
    assert any(line.split()[:3] == ["flux/dev", "failed", "yes"] for line in lines)
    gate_line = lines[lines.index("gates") + 2]
    assert gate_line.split()[:3] == ["dev", "waiting", A[:12]]


def test_status_json_is_the_endpoint_view(run, store):
    populate(store)
    code, out, _ = run("status", A.upper(), "--json")
    assert code == 0
    req = func.HttpRequest(
        method="GET", url=f"/api/deployments/{A}", route_params={"commit": A}, body=b""
    )
    bootstrap.override(Container(Settings.from_env(SETTINGS), store=store))
    try:
        resp = function_app.deployments(req)
    finally:
        bootstrap.override(None)
    assert json.loads(out) == json.loads(resp.get_body())


def test_json_flag_is_accepted_before_the_command(run, store):
    populate(store)
    code, out, _ = run("--json", "status", A)
    assert code == 0
    assert json.loads(out)["commit"] == A


def test_status_strips_control_characters_from_tables(run, store):
    record(store, A, Phase.FAILED, reason="HealthCheckFailed", summary="bad\x1b[31mred\x07")
    code, out, _ = run("status", A)
    assert code == 0
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "bad [31mred" in out


def test_unknown_commit_exits_1(run, store):
    populate(store)
    code, out, err = run("status", UNKNOWN)
    assert code == 1
    assert out == ""
    assert UNKNOWN in err


def test_invalid_commit_exits_2_naming_commit(run):
    for text in ("main", "abc"):  # not hex; too short to be a prefix
        code, _, err = run("status", text)
        assert code == 2
        assert err.startswith("error: commit: a commit id or a unique prefix of at least 4 hex")


def test_status_accepts_a_unique_short_sha(run, store):
    populate(store)
    code, out, err = run("status", A[:7].upper())
    assert code == 0, err
    assert out.splitlines()[0] == f"commit {A}"


def test_short_sha_of_a_gate_only_commit_resolves(run, store):
    gate_commit = "abcd" + "0" * 36
    add_gate(store, gate_commit, minutes=1)
    code, out, err = run("status", "abcd00")
    assert code == 0, err
    assert out.splitlines()[0] == f"commit {gate_commit}"


def test_ambiguous_short_sha_lists_the_candidates(run, store):
    twins = [A[:8] + "1" * 32, A[:8] + "2" * 32]
    for commit in twins:
        record(store, commit, Phase.SUCCEEDED)
    code, out, err = run("status", A[:8])
    assert code == 2
    assert out == ""
    assert "ambiguous: 2 commits match" in err
    assert all(commit in err for commit in twins)


def test_unknown_short_sha_exits_1(run, store):
    populate(store)
    code, _, err = run("status", "ffff0000")
    assert code == 1
    assert "no recorded commit starts with ffff0000" in err


def test_no_working_credential_says_az_login_in_two_lines(capsys):
    from azure.identity import EnvironmentCredential

    settings = {**SETTINGS, "STATE_STORAGE__accountUrl": "https://127.0.0.1:9/devstoreaccount1"}
    code = main(
        ["gates"],
        environ=settings,
        # No AZURE_CLIENT_ID/SECRET in this environment: the credential cannot get a token, as
        # DefaultAzureCredential on a workstation without `az login`.
        make_container=lambda s: Container(s, credential=EnvironmentCredential()),
    )
    err = capsys.readouterr().err
    assert code == 3
    assert err.splitlines() == [
        "error: no Azure credential worked for storage or Service Bus",
        f"hint: {LOGIN_HINT}",
    ]
    assert "az login" in err


def test_help_says_where_settings_come_from_and_the_exit_codes(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--settings FILE" in out
    assert "environment variables" in out
    for code in ("0 ok", "1 not found", "2 usage or configuration error", "3 a service failed"):
        assert code in out


# --- gates ---------------------------------------------------------------------------------------


@pytest.fixture
def gates(store):
    add_gate(store, A, minutes=1)
    add_gate(store, A, env="prod", state=GateState.COMPLETING, result="succeeded", minutes=2)
    add_gate(
        store,
        A,
        state=GateState.SUCCEEDED,
        result="succeeded",
        reason="dev healthy on a1a1a1a1 in dev-1",
        minutes=3,
        pull_request_id=42,
    )
    add_gate(
        store,
        UNKNOWN,
        env="prod",
        state=GateState.FAILED,
        result="failed",
        reason="timed out",
        minutes=4,
    )


def test_gates_lists_waiting_then_completed(run, gates):
    code, out, _ = run("gates")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "waiting (2)"
    assert lines[1].split() == [
        "ENVIRONMENT",
        "STATE",
        "RESULT",
        "COMMIT",
        "PR",
        "CREATED",
        "DEADLINE",
        "REASON",
    ]
    assert [line.split()[1] for line in lines[2:4]] == ["completing", "waiting"]  # newest first
    completed = lines.index("completed (2)")
    assert [line.split()[:3] for line in lines[completed + 2 :]] == [
        ["prod", "failed", "failed"],
        ["dev", "succeeded", "succeeded"],
    ]
    assert "42" in lines[-1].split()
    assert lines[-1].endswith("dev healthy on a1a1a1a1 in dev-1")


def test_gates_open_and_env_filters(run, gates):
    code, out, _ = run("gates", "--open", "--env", "dev", "--json")
    assert code == 0
    data = json.loads(out)
    assert [(g["environment"], g["state"]) for g in data["waiting"]] == [("dev", "waiting")]
    assert data["completed"] == []


def test_gates_json(run, gates):
    code, out, _ = run("gates", "--env", "prod", "--json")
    assert code == 0
    data = json.loads(out)
    assert [g["state"] for g in data["waiting"]] == ["completing"]
    assert [g["reason"] for g in data["completed"]] == ["timed out"]
    assert set(data["completed"][0]) >= {"id", "commit", "created_at", "deadline", "result"}


def test_no_gates(run):
    code, out, _ = run("gates")
    assert code == 0
    assert out.splitlines() == ["waiting (0)", "  (none)", "", "completed (0)", "  (none)"]


# --- dlq -----------------------------------------------------------------------------------------


def test_dlq_peek_table(run, dlq):
    code, out, _ = run("dlq", "peek", "--max", "2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "2 dead-lettered message(s) in flux-events/$deadletterqueue"
    assert lines[1].split()[:3] == ["MESSAGE", "ID", "SESSION"]
    assert lines[2].split()[:3] == [
        f"{1:064x}",
        "dev-1/Kustomization/flux-system/app1",
        "MaxDeliveryCountExceeded",
    ]
    assert len(dlq.dead) == 3


def test_dlq_peek_json(run):
    code, out, _ = run("dlq", "peek", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["count"] == 3
    assert data["messages"][0] == {
        "message_id": f"{1:064x}",
        "session_id": "dev-1/Kustomization/flux-system/app1",
        "reason": "MaxDeliveryCountExceeded",
        "description": "Message could not be consumed after 5 delivery attempts.",
        "enqueued_time": "2026-05-14T09:00:00+00:00",
        "delivery_count": 5,
        "body_preview": '{"v":1,"n":1}',
        "sequence_number": 1,
    }


@pytest.mark.parametrize("flag", ["--preview", "--dry-run"])  # --dry-run: the former name
def test_dlq_replay_preview_moves_nothing(run, dlq, flag):
    code, out, _ = run("dlq", "replay", flag)
    assert code == 0
    assert out.strip() == "preview: 3 dead-lettered message(s) would go back to flux-events"
    assert len(dlq.dead) == 3
    assert dlq.queue == []


def test_dlq_replay_help_names_preview_only(run):
    code, out, _ = run("dlq", "replay", "--help")
    assert code == 0
    assert "--preview" in out
    assert "--dry-run" not in out


def test_dlq_replay_moves_back_to_the_queue(run, dlq):
    code, out, _ = run("dlq", "replay", "--max", "2")
    assert code == 0
    assert out.strip() == (
        "2 of 2 dead-lettered message(s) replayed to flux-events; 0 left in the dead-letter queue"
    )
    assert [m.message_id for m in dlq.queue] == [f"{1:064x}#replay1", f"{2:064x}#replay1"]
    assert len(dlq.dead) == 1


def test_dlq_replay_json(run):
    code, out, _ = run("dlq", "replay", "--json")
    assert code == 0
    assert json.loads(out) == {
        "queue": "flux-events",
        "count": 3,
        "replayed": 3,
        "skipped": 0,
        "preview": False,
        "dry_run": False,  # the former name of preview, kept for scripts
        "error": "",
    }


def test_dlq_replay_stopped_early_exits_3(run, dlq):
    dlq.fail_sends_after = 1
    code, out, err = run("dlq", "replay")
    assert code == 3
    assert "1 of 3" in out
    assert "replay stopped: sending to the queue failed" in err


def test_dlq_without_service_bus_settings_exits_2_naming_them(store, capsys):
    code = main(["dlq", "peek"], environ={}, make_container=lambda s: Container(s, store=store))
    assert code == 2
    assert "ServiceBusConnection" in capsys.readouterr().err


# --- settings and usage --------------------------------------------------------------------------


def write_settings(tmp_path: Path, values: dict, **extra) -> str:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": values, **extra}))
    return str(path)


def test_settings_file_is_loaded(tmp_path, azurite_connection, store, prefix, capsys):
    populate(store)
    path = write_settings(
        tmp_path,
        {
            "STATE_STORAGE": azurite_connection,
            "STATE_TABLE_PREFIX": prefix,
            "ENVIRONMENTS": ENVIRONMENTS,
            "GATE_USE_JOB_TOKEN": False,  # non-string values are taken as JSON text
            "AZDO_PAT": "",
        },
    )
    code = main(["status", A, "--settings", path, "--json"], environ={})
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["environments"]["dev"]["phase"] == "failed"


def test_settings_file_wins_over_the_environment(
    tmp_path, azurite_connection, store, prefix, capsys
):
    populate(store)
    path = write_settings(
        tmp_path, {"STATE_STORAGE": azurite_connection, "STATE_TABLE_PREFIX": prefix}
    )
    environ = {"STATE_STORAGE": "UseDevelopmentStorage=true", "STATE_TABLE_PREFIX": "other"}
    code = main(["--settings", path, "status", A], environ=environ)
    assert code == 0, capsys.readouterr().err


def test_missing_storage_setting_exits_2_naming_it(capsys):
    code = main(["status", A], environ={})
    assert code == 2
    err = capsys.readouterr().err
    assert "AzureWebJobsStorage" in err
    assert "STATE_STORAGE" in err


@pytest.mark.parametrize(
    ("argv", "setting"),
    [(["gates"], "STATE_STORAGE"), (["dlq", "peek"], "ServiceBusConnection")],
)
def test_malformed_connection_string_exits_2_naming_it(capsys, argv, setting):
    environ = {"STATE_STORAGE": "garbage", "ServiceBusConnection": "garbage"}
    assert main(argv, environ=environ) == 2
    err = capsys.readouterr().err
    assert f"error: configuration: {setting}: Connection string is either blank or malformed" in err


def test_an_unexpected_error_exits_3_with_a_traceback(store, capsys):
    class Broken:
        def peek(self, max_count):
            raise RuntimeError("bug")

    make = lambda s: Container(s, store=store, dead_letters=Broken())  # noqa: E731
    assert main(["dlq", "peek"], environ={}, make_container=make) == 3
    assert "RuntimeError: bug" in capsys.readouterr().err


def test_invalid_setting_exits_2_naming_it_without_its_value(tmp_path, capsys):
    path = write_settings(tmp_path, {"GATE_TIMEOUT_MINUTES": "0", "AZDO_PAT": "secret-pat-value"})
    code = main(["--settings", path, "gates"], environ={})
    err = capsys.readouterr().err
    assert code == 2
    assert "GATE_TIMEOUT_MINUTES" in err
    assert "secret-pat-value" not in err


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON"),
        ('{"Values": []}', "no Values object"),
        ('{"IsEncrypted": true, "Values": {}}', "encrypted"),
    ],
)
def test_bad_settings_file_exits_2(tmp_path, capsys, content, problem):
    path = tmp_path / "local.settings.json"
    path.write_text(content)
    assert main(["--settings", str(path), "gates"], environ={}) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    assert problem in err


def test_missing_settings_file_exits_2(tmp_path, capsys):
    assert main(["--settings", str(tmp_path / "nope.json"), "gates"], environ={}) == 2
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [[], ["nope"], ["status"], ["dlq"], ["dlq", "peek", "--max", "0"], ["gates", "--bogus"]],
)
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv, environ={}) == 2
    assert "usage:" in capsys.readouterr().err


def test_help_exits_0(capsys):
    assert main(["--help"], environ={}) == 0
    assert "status" in capsys.readouterr().out


def test_python_dash_m_runs_the_cli():
    result = subprocess.run(
        [sys.executable, "-m", "connector", "status", "not-a-commit"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "commit" in result.stderr
