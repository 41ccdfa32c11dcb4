"""Console log lines: the event name and its fields locally, untouched in Azure, never a secret."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler

import function_app
from connector import console_logs
from connector.app.cli.main import main
from connector.console_logs import JsonFormatter, TextFormatter
from tests.conftest import HMAC_KEY, event_bytes, flux_request


def record(message: str, **fields: object) -> logging.LogRecord:
    logger = logging.getLogger("connector.test")
    return logger.makeRecord(
        logger.name, logging.WARNING, __file__, 1, message, (), None, extra=fields
    )


def test_text_line_is_the_event_and_its_fields() -> None:
    line = TextFormatter().format(
        record("ingest.rejected", reason="signature mismatch", status=401)
    )

    assert line == 'ingest.rejected reason="signature mismatch" status=401'


def test_text_line_stays_one_line_and_renders_structures() -> None:
    line = TextFormatter().format(
        record("x.y", message_id="a=b", summary="two\nlines", fields=["a", "b"], empty="")
    )

    assert "\n" not in line
    assert line == 'x.y message_id="a=b" summary="two\\nlines" fields="[\\"a\\", \\"b\\"]" empty=""'


def test_json_line_holds_event_level_and_fields() -> None:
    doc = json.loads(
        JsonFormatter().format(record("gate.completed", gate="g1", result="succeeded"))
    )

    assert doc == {
        "event": "gate.completed",
        "level": "WARNING",
        "gate": "g1",
        "result": "succeeded",
    }


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "text"),
        ({"FUNCTIONS_WORKER_RUNTIME": "python"}, "text"),  # Core Tools sets it too
        ({"WEBSITE_INSTANCE_ID": "abc"}, None),
        ({"WEBSITE_INSTANCE_ID": "abc", "LOG_FORMAT": "text"}, "text"),
        ({"LOG_FORMAT": "JSON"}, "json"),
    ],
)
def test_format_follows_log_format_else_where_it_runs(environ, expected) -> None:
    assert console_logs.chosen_format(environ) == expected


@pytest.mark.filterwarnings("ignore:`LoggingHandler` in `opentelemetry-sdk` is deprecated")
def test_install_formats_console_handlers_but_not_the_exporter() -> None:
    root = logging.Logger("isolated-root")
    console = logging.StreamHandler()
    exporter = LoggingHandler(logger_provider=LoggerProvider())
    root.addHandler(console)
    root.addHandler(exporter)

    assert console_logs.install({}, root) == "text"
    assert isinstance(console.formatter, TextFormatter)
    assert not isinstance(exporter.formatter, TextFormatter | JsonFormatter)

    assert console_logs.install({"WEBSITE_INSTANCE_ID": "1"}, root) is None


def test_the_apps_rejection_reads_with_its_reason_and_no_secret(install, caplog) -> None:
    install()
    body = event_bytes("kustomization-succeeded")
    request = flux_request(body, key=b"wrong key")

    with caplog.at_level(logging.DEBUG, logger="connector"):
        function_app.flux(request)

    lines = [TextFormatter().format(r) for r in caplog.records]
    [rejected] = [line for line in lines if line.startswith("ingest.rejected ")]
    assert "status=401" in rejected
    assert 'error="unauthorized: X-Signature does not match the body"' in rejected
    signature = request.headers["x-signature"].split("=", 1)[1]
    for secret in (HMAC_KEY.decode(), signature):
        assert all(secret not in line for line in lines)


def test_cli_prints_connector_warnings_as_text(capsys) -> None:
    main(["--help"])  # argparse exits before the CLI sets up logging
    main(["gates"], environ={"AzureWebJobsStorage": "not a connection string"})
    capsys.readouterr()

    logging.getLogger("connector.dlq").warning("dlq.skipped", extra={"message_id": "m 1"})

    assert capsys.readouterr().err == 'dlq.skipped message_id="m 1"\n'
