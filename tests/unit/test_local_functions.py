"""The embedded host's view of function_app.py (discovered from the FunctionApp object), its
HTTP dispatch (routes, methods, keys as the Functions host applies them) and NCRONTAB."""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime
from pathlib import Path

import azure.functions as func
import pytest

from connector.app.local.functions import Functions, HttpFunction, discover, route_pattern
from connector.app.local.host import HttpDispatcher, Keys
from connector.app.local.schedule import Schedule
from tests.unit.test_function_metadata import bindings

ROOT = Path(__file__).resolve().parents[2]
KEYS = Keys(function="fk", master="mk")


def fresh_app() -> func.FunctionApp:
    """Another load of function_app.py: `get_functions()` runs once per FunctionApp, and
    tests/unit/test_function_metadata.py reads the imported one."""
    spec = importlib.util.spec_from_file_location("function_app_again", ROOT / "function_app.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def test_every_function_of_the_app_is_discovered_with_its_binding_metadata() -> None:
    functions = discover(fresh_app(), ROOT / "host.json", {"SERVICEBUS_QUEUE": "q1"})
    http = {f.name: (f.route, sorted(f.methods), f.auth_level) for f in functions.http}
    raw = {name: triggers[0] for name, triggers in bindings().items()}
    assert set(http) | {q.name for q in functions.queues} | {t.name for t in functions.timers} == (
        set(raw)
    )
    for name, (route, methods, level) in http.items():
        binding = raw[name]
        assert route == binding["route"]
        assert methods == sorted(binding.get("methods", []))
        assert level == binding["authLevel"].lower()
    assert http["doctor"][2] == "admin"
    assert http["health"][2] == "anonymous"
    assert [(q.name, q.queue_name, q.sessions) for q in functions.queues] == [
        ("process", "q1", True)
    ]
    assert {t.name: t.schedule for t in functions.timers} == {
        "sweep": "0 */5 * * * *",
        "cleanup": "0 30 2 * * *",
    }
    assert functions.route_prefix == "api"


def _echo(req: func.HttpRequest) -> func.HttpResponse:
    body = {"route": dict(req.route_params), "params": dict(req.params), "method": req.method}
    return func.HttpResponse(json.dumps(body), status_code=202, mimetype="application/json")


def _fn(name: str, route: str, level: str, methods: tuple[str, ...] = ()) -> HttpFunction:
    return HttpFunction(name, route, frozenset(methods), level, _echo, route_pattern(route))


@pytest.fixture
def dispatcher() -> HttpDispatcher:
    http = (
        _fn("literal", "deployments/latest", "anonymous"),
        _fn("open", "health", "anonymous", ("GET",)),
        _fn("keyed", "deployments/{commit}", "function", ("GET",)),
        _fn("admin", "doctor", "admin", ("GET",)),
    )
    return HttpDispatcher(Functions("api", http, (), ()), KEYS)


def call(d: HttpDispatcher, method: str, target: str, **headers: str) -> tuple[int, object]:
    status, _, body = d.dispatch(method, target, headers, b"", "http://127.0.0.1:1")
    return status, json.loads(body) if body else None


def test_routes_methods_and_parameters(dispatcher: HttpDispatcher) -> None:
    assert call(dispatcher, "GET", "/api/health")[0] == 202
    assert call(dispatcher, "POST", "/api/health")[0] == 404  # the host: no such route
    assert call(dispatcher, "GET", "/api/nothing")[0] == 404
    assert call(dispatcher, "GET", "/health")[0] == 404  # the route prefix is required
    status, body = call(dispatcher, "GET", "/api/deployments/abc?code=fk&format=html")
    assert status == 202
    assert body == {"route": {"commit": "abc"}, "params": {"code": "fk", "format": "html"},
                    "method": "GET"}  # fmt: skip
    assert call(dispatcher, "GET", "/api/deployments/latest")[0] == 202  # literal first


def test_keys_as_the_functions_host_takes_them(dispatcher: HttpDispatcher) -> None:
    assert call(dispatcher, "GET", "/api/deployments/abc")[0] == 401
    assert call(dispatcher, "GET", "/api/deployments/abc?code=nope")[0] == 401
    assert call(dispatcher, "GET", "/api/deployments/abc", **{"x-functions-key": "fk"})[0] == 202
    assert call(dispatcher, "GET", "/api/deployments/abc?code=mk")[0] == 202  # master: any route
    assert call(dispatcher, "GET", "/api/doctor?code=fk")[0] == 401  # admin: the master key only
    assert call(dispatcher, "GET", "/api/doctor", **{"X-Functions-Key": "mk"})[0] == 202


def test_an_unhandled_exception_is_a_bare_500() -> None:
    def boom(_: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("secret detail")

    fn = HttpFunction("boom", "boom", frozenset(), "anonymous", boom, route_pattern("boom"))
    d = HttpDispatcher(Functions("api", (fn,), (), ()), KEYS)
    assert d.dispatch("POST", "/api/boom", {}, b"", "http://x") == (500, {}, b"")


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        ("0 */5 * * * *", datetime(2026, 1, 1, 10, 3, 7), datetime(2026, 1, 1, 10, 5)),
        ("0 */5 * * * *", datetime(2026, 1, 1, 10, 5), datetime(2026, 1, 1, 10, 10)),
        ("0 30 2 * * *", datetime(2026, 1, 1, 10, 3), datetime(2026, 1, 2, 2, 30)),
        ("0 0 9 * * 1-5", datetime(2026, 1, 2, 10, 0), datetime(2026, 1, 5, 9, 0)),  # Fri → Mon
        ("15,45 * * * * *", datetime(2026, 1, 1, 0, 0, 20), datetime(2026, 1, 1, 0, 0, 45)),
    ],
)
def test_ncrontab_next_run(schedule: str, after: datetime, expected: datetime) -> None:
    got = Schedule.parse(schedule).next_after(after.replace(tzinfo=UTC))
    assert got == expected.replace(tzinfo=UTC)


@pytest.mark.parametrize("bad", ["0 */5 * * *", "0 61 * * * *", "00:05:00", "0 5-1 * * * *"])
def test_ncrontab_refuses_what_it_cannot_read(bad: str) -> None:
    with pytest.raises(ValueError, match=r"NCRONTAB|six"):
        Schedule.parse(bad)
