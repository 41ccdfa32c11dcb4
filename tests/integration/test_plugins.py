"""Sources and outputs are registered plug-ins: a throwaway source and a throwaway output
(tests/plugins/), added to the registry and nowhere else in production, get a Functions route,
warm-up modules, a handler from the container, and one event end to end: ingest → the recording
queue → the processor → the output (Azurite tables, the fake Azure DevOps).

Also: the registry's descriptions of the shipped plug-ins agree with what used to be written out
by hand (routes, listeners, ledger keys, sink names)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import azure.functions as func
import pytest

from connector.app.functions import warmup
from connector.app.root import registry
from connector.app.root.registry import Registered
from connector.core.tracking import ObjectRef
from connector.outputs import sinks
from connector.storage import tables
from tests.plugins import probe_output, probe_source
from tests.world import REPO, statuses_by_context

pytestmark = pytest.mark.azurite

ROOT = Path(__file__).resolve().parents[2]
COMMIT = "a" * 40


@pytest.fixture
def plugged(monkeypatch: pytest.MonkeyPatch) -> probe_output.ProbeOutput:
    """The registry with the probe source and the probe output (told last) added."""
    output = probe_output.ProbeOutput()
    monkeypatch.setattr(registry, "SOURCES", (*registry.SOURCES, probe_source.SOURCE))
    entry = Registered(probe_output.OUTPUT, lambda c: output)
    monkeypatch.setattr(registry, "OUTPUTS", (*registry.OUTPUTS, entry))
    return output


def fresh_function_app() -> ModuleType:
    """`function_app.py` imported again, as the host would index it now (its own app object)."""
    spec = importlib.util.spec_from_file_location("function_app_plugged", ROOT / "function_app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        module.warm_up.join()  # its warm-up thread reads the (patched) registry too
    finally:
        del sys.modules[spec.name]
    return module


def probe_request(body: dict, token: str = probe_source.TOKEN) -> func.HttpRequest:
    return func.HttpRequest(
        method="POST",
        url="http://localhost/api/probe",
        headers={"X-Probe-Token": token},
        params={},
        body=json.dumps(body).encode(),
    )


def probe_event(name: str = "web", phase: str = "succeeded") -> dict:
    return {
        "cluster": "dev-1",
        "env": "dev",
        "namespace": "apps",
        "name": name,
        "commit": COMMIT,
        "phase": phase,
        "time": "2026-05-14T09:12:50Z",
    }


def test_function_app_indexes_the_new_source_route(plugged) -> None:
    app = fresh_function_app()
    indexed = {f.get_function_name(): f for f in app.app.get_functions()}
    assert {"flux", "argocd", "probe"} <= set(indexed)
    [trigger] = [
        b
        for b in json.loads(indexed["probe"].get_function_json())["bindings"]
        if b["direction"] == "IN"
    ]
    assert (trigger["type"], trigger["route"], trigger["authLevel"]) == (
        "httpTrigger",
        "probe",
        "FUNCTION",
    )
    assert callable(app.probe)


def test_the_warm_up_lists_the_new_modules(plugged) -> None:
    listed = list(warmup.modules())
    assert probe_source.__name__ in listed
    assert probe_output.__name__ in listed
    assert len(listed) == len(set(listed))  # each once
    # the sources' modules before the processor's and the outputs': the first request's first
    assert listed.index(probe_source.__name__) < listed.index("connector.core.processing")
    assert listed.index("connector.core.processing") < listed.index(probe_output.__name__)


def test_the_container_builds_the_new_handler_and_listener(plugged, world) -> None:
    container = world.configure()
    handler = container.webhook("probe")
    assert handler is container.webhook("probe")  # built once
    assert getattr(handler, "source", None) == "probe"
    assert plugged in container.listeners
    assert container.listeners[-1] is plugged  # told in registry order, after the shipped ones
    with pytest.raises(KeyError, match="no source named 'nope'"):
        container.webhook("nope")


def test_an_event_of_the_new_source_reaches_the_new_output(plugged, world) -> None:
    world.configure()
    world.azdo.add_commit(REPO, COMMIT, "Merged PR 7: web")
    app = fresh_function_app()
    reply = app.probe(probe_request(probe_event()))
    assert reply.status_code == 202, reply.get_body()
    [message] = world.sender.drain()
    assert json.loads(message.body)["source"] == "probe"
    world.process(message)
    [change] = plugged.changes
    assert (change.obs.cluster, change.obs.env, str(change.obs.obj)) == (
        "dev-1",
        "dev",
        "Probe/apps/web",
    )
    assert change.obs.commit == COMMIT
    # the shipped outputs ran on the same change: statuses on the manifests commit
    assert statuses_by_context(world.azdo, COMMIT) == {
        "dev-1/Probe/apps/web": ["succeeded"],
        "env/dev": ["succeeded"],
    }


def test_the_new_source_refuses_as_every_source_does(plugged, world) -> None:
    world.configure()
    app = fresh_function_app()
    refused = app.probe(probe_request(probe_event(), token="wrong"))
    assert (refused.status_code, json.loads(refused.get_body())["error"]) == (
        401,
        "unauthorized: send X-Probe-Token",
    )
    # a name every shipped key can hold, but not the probe output's ledger row: refused, with
    # the probe source's own fields of that row's parts (cluster, object)
    too_long = app.probe(probe_request(probe_event(name="n" * 253)))
    assert too_long.status_code == 422
    fields = json.loads(too_long.get_body())["fields"]
    assert [f["field"] for f in fields] == ["cluster", "namespace", "name"]
    assert all(f["problem"].startswith("probe status row: a Table key of") for f in fields)
    assert world.sender.drain() == []


def test_the_new_output_ledger_keys_join_the_checked_keys(plugged) -> None:
    keys = registry.observation_keys()
    assert keys.parts["probe status row"] == ("cluster", "object")
    built = keys("dev", "dev-1", ObjectRef("Probe", "apps", "web"))
    assert (
        built["probe status row"]
        == "status|probe-out|dev-1%3DProbe%2Fapps%2Fweb%3DProbe%2Fapps%2Fweb"
    )


# --- the shipped plug-ins, as the registry describes them -----------------------------------------


def test_the_shipped_sources_keep_their_names_and_routes() -> None:
    assert [(s.name, s.route) for s in registry.SOURCES] == [("flux", "flux"), ("argocd", "argocd")]
    assert set(registry.translators()) == {"flux", "argocd"}


def test_the_shipped_listeners_are_told_in_the_order_they_always_were() -> None:
    names = [entry.output.name for entry in registry.OUTPUTS]
    assert names == [sinks.COMMIT_STATUS_SINK, "gates", "board", "spektate", "subscribers"]


def test_only_the_commit_statuses_write_ledger_rows_per_observation() -> None:
    keys = registry.observation_keys()
    assert list(keys.parts) == [
        "object row",
        "pointer partition",
        "pointer row",
        "object status row",
        "environment status row",
    ]


def test_unnamed_status_rows_count_as_the_commit_statuses() -> None:
    assert tables.DEFAULT_SINK == sinks.COMMIT_STATUS_SINK


def test_two_outputs_cannot_name_the_same_key(monkeypatch: pytest.MonkeyPatch) -> None:
    twice = Registered(sinks.COMMIT_STATUSES, lambda c: None)
    monkeypatch.setattr(registry, "OUTPUTS", (*registry.OUTPUTS, twice))
    with pytest.raises(ValueError, match="two keys named 'object status row'"):
        registry.observation_keys()


def test_the_descriptions_are_cheap_to_import() -> None:
    """`function_app` reads the registry when the host indexes the app: importing it must not
    import what the plug-ins describe (pydantic models, the SDKs, the outputs)."""
    code = (
        "import sys, connector.app.root.registry as r; "
        "print(sorted(m for m in sys.modules if m.startswith(('connector.', 'pydantic', "
        "'azure.core', 'azure.data'))))"
    )
    out = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.replace("'", '"')) == [
        "connector.app",
        "connector.app.root",
        "connector.app.root.registry",
        "connector.core",
        "connector.core.errors",  # the error base: imports nothing
        "connector.outputs",
        "connector.outputs.plugin",
        "connector.outputs.sinks",
        "connector.sources",
        "connector.sources.argocd",
        "connector.sources.flux",
        "connector.sources.plugin",
        "connector.storage",
        "connector.storage.keys",
    ]


def test_a_source_names_its_field_of_every_key_part() -> None:
    from connector.sources.http import KeyCheck

    with pytest.raises(ValueError, match="no key fields for object"):
        KeyCheck(registry.observation_keys(), {"env": ("env",), "cluster": ("cluster",)})
