"""`doctor`: check a deployment end to end with the app's own settings and identity.

One line per check, OK, SKIP (what these settings do not use, e.g. in trial mode) or FAIL with
the remedy (`python -m connector doctor`), or a JSON list of `{"check", "ok", "detail",
"remedy", "skipped"}` (`--json`, `GET /api/doctor`). Every check runs on its own:
one that fails, or raises, never stops the others. Nothing the checks say can carry a secret:
every output passes through `redact` with the values of every secret setting.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Final

from pydantic import SecretStr

from connector.app.doctor.check import Check, CheckGroup
from connector.app.doctor.checks import GROUPS
from connector.settings import Settings, SettingsError
from connector.web import Reply

if TYPE_CHECKING:
    from connector.app.root.bootstrap import Container

logger = logging.getLogger(__name__)

MASK: Final = "***"
# Shorter secret values are not masked: replacing them everywhere would garble the report.
_MIN_SECRET: Final = 4
# Parts of a connection string that are credentials on their own.
_KEY_PARTS: Final = ("accountkey", "sharedaccesskey", "sharedaccesssignature")


def diagnose(container: Container) -> list[Check]:
    """Every check, in order; settings that do not parse are the one failing check."""
    try:
        settings = container.settings
    except SettingsError as exc:
        return [settings_failure(exc)]
    checks: list[Check] = []
    for name, group in GROUPS:
        checks.extend(_isolated(name, group, container))
    return redact(checks, secret_values(settings))


def settings_failure(exc: SettingsError) -> Check:
    # SettingsError names the setting and never its value.
    return Check(
        "settings.complete", False, str(exc), "fix the named app setting(s) and restart the app"
    )


def _isolated(name: str, group: CheckGroup, container: Container) -> list[Check]:
    try:
        return group(container)
    except Exception as exc:  # a check that raises is a failing check, never a stopped doctor
        logger.warning("doctor.check_raised", extra={"check": name, "error": type(exc).__name__})
        return [Check(name, False, f"{type(exc).__name__}: {exc}", "see the detail")]


def failed(checks: Iterable[Check]) -> bool:
    return any(not check.ok for check in checks)


# --- secrets -------------------------------------------------------------------------------------


def secret_values(settings: Settings) -> list[str]:
    """Every secret setting's value, and the forms it can take on the wire or in a message:
    each comma-separated key, each key part of a connection string, a PAT's basic-auth form."""
    values: list[str] = []
    for name in type(settings).model_fields:
        field = getattr(settings, name)
        if isinstance(field, SecretStr):
            values.extend(_forms(field.get_secret_value()))
    # The keyrings are JSON: each key or secret in them is a secret of its own.
    values.extend(k.decode() for keys in settings.cluster_keys.values() for k in keys)
    values.extend(k.decode() for i in settings.argocd_instances.values() for k in i.secrets)
    return sorted({v for v in values if len(v) >= _MIN_SECRET}, key=len, reverse=True)


def _forms(value: str) -> list[str]:
    forms = [value, *value.split(",")]
    forms.append(base64.b64encode(f":{value}".encode()).decode("ascii"))
    for part in value.split(";"):
        key, _, item = part.partition("=")
        if key.strip().lower() in _KEY_PARTS:
            forms.append(item)
    return forms


def redact(checks: Sequence[Check], secrets: Sequence[str]) -> list[Check]:
    def clean(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, MASK)
        return text

    return [replace(c, detail=clean(c.detail), remedy=clean(c.remedy)) for c in checks]


# --- output --------------------------------------------------------------------------------------


def render_json(checks: Sequence[Check]) -> str:
    return json.dumps([asdict(check) for check in checks], indent=2)


def render_text(checks: Sequence[Check]) -> str:
    width = max((len(check.check) for check in checks), default=0)
    lines = []
    for check in checks:
        verdict = "SKIP" if check.skipped else "OK  " if check.ok else "FAIL"
        lines.append(f"{verdict}  {check.check.ljust(width)}  {_line(check.detail)}")
        if not check.ok and check.remedy:
            lines.append(f"      {' ' * width}  remedy: {_line(check.remedy)}")
    failures = sum(not check.ok for check in checks)
    skipped = sum(check.skipped for check in checks)
    verdict = f"{failures} of {len(checks)} checks failed" if failures else "all checks passed"
    lines.append("")
    lines.append(verdict + (f" ({skipped} skipped)" if skipped else ""))
    return "\n".join(lines)


def _line(text: str) -> str:
    return " ".join(text.split())


# --- entry points --------------------------------------------------------------------------------


def command(build: Callable[[], Container], *, as_json: bool) -> int:
    """The CLI: print the report; 0 when every check passed, 3 otherwise."""
    try:
        checks = diagnose(build())
    except SettingsError as exc:  # settings (or --settings FILE) that do not load
        checks = [settings_failure(exc)]
    print(render_json(checks) if as_json else render_text(checks))
    return 3 if failed(checks) else 0


def report(container: Container) -> Reply:
    """`GET /api/doctor`: the JSON list; 200 when every check passed, 503 otherwise."""
    checks = diagnose(container)
    return Reply(503 if failed(checks) else 200, render_json(checks))
