"""How log records read on a console: `ingest.rejected reason="signature mismatch" status=401`.

Our records carry a stable event name as the message and their facts in `extra`. Application
Insights shows those facts as customDimensions, but a console (`func start`, the CLI) prints only
the message, so locally the event's fields are rendered after its name.

`LOG_FORMAT` chooses: `text` (that line), `json` (one JSON object per record, for log shippers);
unset means `text` when running locally and nothing changed in Azure, where the worker forwards
the bare event name and Azure Monitor records the fields (the README's queries rely on
`message == "gate.registered"`). Azure is recognised by `WEBSITE_INSTANCE_ID`, which App Service
sets on every instance and Core Tools does not (Learn: "Environment variables and app settings in
Azure App Service").
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from typing import Any

FORMATS = ("text", "json")
CLI_HANDLER = "connector.cli.stderr"
# Attributes every LogRecord has (plus those our telemetry adds): not fields of the event.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "trace_id",
    "span_id",
    "taskName",
}


def event_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra` a record was logged with, in the order given."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class TextFormatter(logging.Formatter):
    """`event key=value …`; strings quoted when they hold spaces or quotes, one line always."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [record.getMessage()]
        parts += [f"{k}={_text(v)}" for k, v in event_fields(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {"event": record.getMessage(), "level": record.levelname}
        doc |= event_fields(record)
        trace_id = getattr(record, "trace_id", "")
        if trace_id:
            doc["trace_id"] = trace_id
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def _text(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or any(c.isspace() or c in "\"'=" for c in text):
        return json.dumps(text)  # quoted, with newlines escaped: one record, one line
    return text


def chosen_format(environ: Mapping[str, str]) -> str | None:
    """`text`, `json`, or None (leave the records as they are: Azure's default)."""
    wanted = environ.get("LOG_FORMAT", "").strip().lower()
    if wanted in FORMATS:
        return wanted
    return None if environ.get("WEBSITE_INSTANCE_ID") else "text"


def formatter(kind: str) -> logging.Formatter:
    return JsonFormatter() if kind == "json" else TextFormatter()


def install(environ: Mapping[str, str], root: logging.Logger | None = None) -> str | None:
    """Give the console handlers already on the root logger (the Functions worker's, which
    forwards to the host's console) our formatter. OpenTelemetry's handler is left alone: it
    exports the fields as attributes and the message as the event name."""
    kind = chosen_format(environ)
    if kind is None:
        return None
    for handler in (root or logging.getLogger()).handlers:
        if not _is_exporter(handler):
            handler.setFormatter(formatter(kind))
    return kind


def _is_exporter(handler: logging.Handler) -> bool:
    return type(handler).__module__.startswith("opentelemetry")


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time (tests and shells swap it)."""

    name = CLI_HANDLER

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def install_for_cli(environ: Mapping[str, str]) -> None:
    """Warnings and errors of the connector's modules on stderr, in the chosen format (text by
    default: a person is reading), once per process."""
    logger = logging.getLogger("connector")
    if any(h.name == CLI_HANDLER for h in logger.handlers):
        return
    if not environ.get("AZURE_SDK_LOG_LEVEL"):
        # Without a handler of their own, the SDK's warnings reach Python's last-resort handler:
        # azure-identity's lists every credential it tried, with a traceback, above the CLI's
        # one-line error. AZURE_SDK_LOG_LEVEL brings them back for debugging.
        logging.getLogger("azure").addHandler(logging.NullHandler())
    handler = _Stderr()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(formatter(chosen_format(environ) or "text"))
    logger.addHandler(handler)
