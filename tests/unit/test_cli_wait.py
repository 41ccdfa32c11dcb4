"""The CLI on a bad day: long waits say what they wait for and the likely cause, and `--json`
prints JSON whatever happens (errors too)."""

from __future__ import annotations

import json
import time

from connector.app.cli import wait as cli_wait
from connector.app.cli.main import main
from connector.settings import Settings


def test_a_long_wait_names_what_it_waits_for_and_the_likely_cause(capsys) -> None:
    with cli_wait.progress("Service Bus", "nothing answers there", first=0.05):
        time.sleep(0.3)
    err = capsys.readouterr().err
    assert err.startswith("waiting for Service Bus... if this lasts: nothing answers there")


def test_a_quick_answer_says_nothing(capsys) -> None:
    with cli_wait.progress("Service Bus", "nothing answers there", first=5):
        pass
    assert capsys.readouterr().err == ""


def test_each_waiting_command_names_its_service() -> None:
    emulator = Settings.from_env(
        {"ServiceBusConnection": "Endpoint=sb://localhost;UseDevelopmentEmulator=true;"}
    )
    target = cli_wait.target("dlq", emulator)
    assert target is not None
    what, cause = target
    assert what == "the Service Bus emulator"
    assert "docker compose up -d" in cause
    status = cli_wait.target("status", Settings())
    assert status is not None
    assert "Azurite" in status[1]
    assert cli_wait.target("send-sample", Settings()) is None  # it says what it does itself


def test_json_errors_are_json(capsys) -> None:
    code = main(["status", "abcd1234", "--json"], environ={})
    out, err = capsys.readouterr()
    assert code == 2
    assert json.loads(out) == {
        "error": "configuration: state storage not configured: set AzureWebJobsStorage, "
        "STATE_STORAGE or STATE_STORAGE__accountUrl",
        "hint": "",
        "exit": 2,
    }
    assert err.startswith("error: configuration")


def test_json_usage_errors_are_json(capsys) -> None:
    code = main(["no-such-command", "--json"], environ={})
    assert code == 2
    assert json.loads(capsys.readouterr().out)["exit"] == 2


def test_without_json_errors_stay_off_stdout(capsys) -> None:
    assert main(["status", "abcd1234"], environ={}) == 2
    assert capsys.readouterr().out == ""
