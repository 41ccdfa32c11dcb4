"""What the Functions host indexes: names, routes, methods, auth levels, bindings, host.json."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import function_app

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def bindings() -> dict[str, list[dict]]:
    # get_functions() validates names as the host does and can only run once per process.
    return {
        str(f.get_function_name()): json.loads(f.get_function_json())["bindings"]
        for f in function_app.app.get_functions()
    }


def trigger(name: str) -> dict:
    return next(b for b in bindings()[name] if b["direction"] == "IN")


def test_flux_webhook_route_requires_a_function_key_and_accepts_any_method():
    t = trigger("flux")
    assert t["type"] == "httpTrigger"
    assert t["route"] == "flux"
    assert t["authLevel"] == "FUNCTION"
    # All methods reach the code, which answers 405 with a JSON body instead of the host's 404.
    assert "methods" not in t


def test_health_is_anonymous_get():
    t = trigger("health")
    assert (t["route"], t["authLevel"], t["methods"]) == ("health", "ANONYMOUS", ["GET"])


def test_deployments_view_is_a_keyed_get():
    t = trigger("deployments")
    assert (t["route"], t["authLevel"], t["methods"]) == (
        "deployments/{commit}",
        "FUNCTION",
        ["GET"],
    )


def test_gate_and_hook_routes_need_a_function_key():
    assert (trigger("gates")["route"], trigger("gates")["authLevel"]) == ("gates", "FUNCTION")
    hook = trigger("devops_events")
    assert (hook["route"], hook["authLevel"]) == ("devops/events", "FUNCTION")


def test_sweep_runs_every_five_minutes():
    t = trigger("sweep")
    assert t["type"] == "timerTrigger"
    assert t["schedule"] == "0 */5 * * * *"
    assert not t.get("runOnStartup", False)


def test_cleanup_runs_daily_off_peak_and_not_on_startup():
    t = trigger("cleanup")
    assert t["type"] == "timerTrigger"
    assert t["schedule"] == "0 30 2 * * *"
    assert not t.get("runOnStartup", False)


def test_processor_listens_on_the_configured_queue_with_sessions():
    t = trigger("process")
    assert t["type"] == "serviceBusTrigger"
    assert t["queueName"] == "%SERVICEBUS_QUEUE%"
    assert t["connection"] == "ServiceBusConnection"
    assert t["isSessionsEnabled"] is True
    assert t.get("autoCompleteMessages", True) is True


def test_host_json_bundle_and_service_bus_ordering():
    host = json.loads((ROOT / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"]["version"] == "[4.*, 5.0.0)"
    sb = host["extensions"]["serviceBus"]
    assert sb["maxConcurrentCallsPerSession"] == 1  # per-object order
    assert sb["autoCompleteMessages"] is True


def test_importing_the_app_builds_no_clients():
    from connector.app.root import bootstrap

    assert bootstrap._container is None or not {"sender", "store", "devops"} & set(
        vars(bootstrap._container)
    )


def test_sample_settings_name_every_setting():
    from connector.settings import setting_names

    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    assert setting_names() <= set(sample)
