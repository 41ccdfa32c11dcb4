"""The functions of `function_app.py`, as the Functions host indexes them: read from the
`azure.functions.FunctionApp` object's own binding metadata (`get_raw_bindings()`, the JSON the
Python worker hands the host), never from a copy of the routes. Used by the embedded local host
(connector/app/local/host.py).

Host behaviour mirrored (Learn, "Azure Functions HTTP trigger": route templates, `methods`
absent = every method, `authLevel`; host.json `extensions.http.routePrefix`, default `api`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_ROUTE_PREFIX = "api"
# `{name}`, `{name?}`, `{name:constraint}`: the parts of an ASP.NET route template we use.
_PARAMETER = re.compile(r"\{(\w+)(?::[^}]*)?(\?)?\}")
_SETTING_REFERENCE = re.compile(r"%([^%]+)%")


@dataclass(frozen=True)
class HttpFunction:
    name: str
    route: str  # the template, e.g. `deployments/{commit}`
    methods: frozenset[str]  # empty: every method
    auth_level: str  # anonymous | function | admin
    call: Callable[..., Any]
    pattern: re.Pattern[str]

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        return None if found is None else {k: v for k, v in found.groupdict().items() if v}


@dataclass(frozen=True)
class QueueFunction:
    name: str
    queue_name: str
    sessions: bool
    call: Callable[..., Any]


@dataclass(frozen=True)
class TimerFunction:
    name: str
    schedule: str
    run_on_startup: bool
    call: Callable[..., Any]


@dataclass(frozen=True)
class Functions:
    route_prefix: str
    http: tuple[HttpFunction, ...]
    queues: tuple[QueueFunction, ...]
    timers: tuple[TimerFunction, ...]

    def resolve(self, path: str) -> tuple[HttpFunction, dict[str, str]] | None:
        """The function whose route matches `/api/...`, with its route parameters."""
        prefix = f"/{self.route_prefix}/" if self.route_prefix else "/"
        if not path.startswith(prefix):
            return None
        rest = path[len(prefix) :].rstrip("/")
        for function in self.http:
            params = function.match(rest)
            if params is not None:
                return function, params
        return None


def route_pattern(template: str) -> re.Pattern[str]:
    parts, last = [], 0
    for found in _PARAMETER.finditer(template):
        parts.append(re.escape(template[last : found.start()]))
        parts.append(f"(?P<{found.group(1)}>[^/]+){'?' if found.group(2) else ''}")
        last = found.end()
    parts.append(re.escape(template[last:]))
    return re.compile("".join(parts), re.IGNORECASE)  # the host matches routes case-blind


def resolve_setting(value: str, environ: Mapping[str, str]) -> str:
    """`%SERVICEBUS_QUEUE%` → the app setting's value, as the host resolves binding values."""
    return _SETTING_REFERENCE.sub(lambda m: environ.get(m.group(1), ""), value)


def route_prefix(host_json: Path) -> str:
    try:
        data = json.loads(host_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return DEFAULT_ROUTE_PREFIX
    http = (data.get("extensions") or {}).get("http") or {}
    return str(http.get("routePrefix", DEFAULT_ROUTE_PREFIX)).strip("/")


def discover(app: Any, host_json: Path, environ: Mapping[str, str] | None = None) -> Functions:
    """Every function of `app` (an `azure.functions.FunctionApp`) by its trigger binding."""
    env = os.environ if environ is None else environ
    http: list[HttpFunction] = []
    queues: list[QueueFunction] = []
    timers: list[TimerFunction] = []
    for function in app.get_functions():
        name, call = function.get_function_name(), function.get_user_function()
        trigger = _trigger(function)
        kind = trigger["type"]
        if kind == "httpTrigger":
            route = trigger.get("route") or name
            http.append(
                HttpFunction(
                    name=name,
                    route=route,
                    methods=frozenset(m.upper() for m in trigger.get("methods") or ()),
                    auth_level=str(trigger.get("authLevel", "function")).lower(),
                    call=call,
                    pattern=route_pattern(route),
                )
            )
        elif kind == "serviceBusTrigger":
            queue = resolve_setting(trigger.get("queueName", ""), env)
            queues.append(QueueFunction(name, queue, bool(trigger.get("isSessionsEnabled")), call))
        elif kind == "timerTrigger":
            timers.append(
                TimerFunction(name, trigger["schedule"], bool(trigger.get("runOnStartup")), call)
            )
        else:
            raise ValueError(f"function {name}: the local host has no {kind} trigger")
    # Literal routes before templated ones, as the host's router orders them.
    http.sort(key=lambda f: len(_PARAMETER.findall(f.route)))
    return Functions(route_prefix(host_json), tuple(http), tuple(queues), tuple(timers))


def _trigger(function: Any) -> dict[str, Any]:
    for raw in function.get_raw_bindings():
        binding: dict[str, Any] = json.loads(raw)
        if str(binding.get("type", "")).endswith("Trigger"):
            return binding
    raise ValueError(f"function {function.get_function_name()}: no trigger binding")
