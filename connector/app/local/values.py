"""The `Values` of a `local.settings.json`, read as the Functions host reads them: for the CLI's
`--settings FILE` and for `serve`."""

from __future__ import annotations

import json

from connector.settings import SettingsError


def read_values(path: str) -> dict[str, str]:
    """The `Values` of a `local.settings.json`, as strings (as the Functions host passes them)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise SettingsError(f"--settings {path}: cannot read: {exc.strerror}") from None
    except ValueError:
        raise SettingsError(f"--settings {path}: not valid JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("Values"), dict):
        raise SettingsError(f"--settings {path}: no Values object")
    if data.get("IsEncrypted"):
        raise SettingsError(f"--settings {path}: encrypted; run `func settings decrypt` first")
    return {k: _setting_text(v) for k, v in data["Values"].items() if v is not None}


def _setting_text(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)  # true/false, numbers, and JSON settings written as objects
