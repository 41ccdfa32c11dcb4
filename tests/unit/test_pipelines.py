"""The pipeline templates and examples, checked against the Azure Pipelines schema and the task
definitions it carries (input names, aliases, allowed values, required inputs).

The schema is the one microsoft/azure-pipelines-vscode generates from the service's task
definitions, as vendored by the `check-jsonschema` package (`vendor.azure-pipelines`), whose
transform also unnests compile-time `${{ }}` blocks the way the language server does. Whole-file
validation is not used: the schema types template values (`${{ parameters.x }}`) as literals and
would reject every template. Instead each stage, job and step is checked key by key, and each task
against its definition. Tasks the schema does not list are checked against their Learn page."""

from __future__ import annotations

import importlib.resources
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from check_jsonschema.transforms import TRANSFORM_LIBRARY
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "pipelines").rglob("*.yml"))
EXPRESSION = re.compile(r"\$\(|\$\{\{|\$\[")  # macro, template or runtime expression

# Not in the vendored schema. Learn, "AzureFunction@2 - Invoke Azure Function v2 task": inputs,
# their aliases and allowed values.
EXTRA_TASKS: dict[str, dict[str, Any]] = {
    "AzureFunction@2": {
        "inputs": {
            "azureSubscription": None,
            "function": None,
            "key": None,
            "method": ["OPTIONS", "GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "PATCH"],
            "headers": None,
            "queryParameters": None,
            "body": None,
            "waitForCompletion": ["true", "false"],
            "successCriteria": None,
        },
        "aliases": {
            "azureServiceConnection": "azureSubscription",
            "connectedServiceARM": "azureSubscription",
        },
        "required": ["function", "method", "waitForCompletion"],
    }
}


@cache
def schema() -> dict[str, Any]:
    path = importlib.resources.files("check_jsonschema") / "builtin_schemas" / "vendor"
    return json.loads((path / "azure-pipelines.json").read_text(encoding="utf-8"))


def load(path: Path) -> Any:
    transform = TRANSFORM_LIBRARY["azure-pipelines"]
    return transform(YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8")))


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node and "properties" not in node:
        node = schema()["definitions"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def alternatives(name: str) -> Iterator[dict[str, Any]]:
    definition = schema()["definitions"][name]
    for alternative in definition.get("anyOf") or definition.get("oneOf") or [definition]:
        yield resolve(alternative)


def allowed_keys(name: str, node: dict[str, Any]) -> set[str] | None:
    """The keys the schema allows for `node` as a `name` (stage, job, step): those of the
    alternative whose first property the node has."""
    for alternative in alternatives(name):
        first = alternative.get("firstProperty") or alternative.get("required") or []
        if first and first[0] in node and "properties" in alternative:
            return set(alternative["properties"])
    return None


def task_definition(task: str) -> dict[str, Any] | None:
    for alternative in alternatives("task"):
        pattern = alternative.get("properties", {}).get("task", {}).get("pattern", "")
        if pattern and re.match(pattern, task, re.IGNORECASE):
            inputs = alternative["properties"]["inputs"]
            return {
                "inputs": {k: v.get("enum") for k, v in inputs.get("properties", {}).items()},
                "aliases": {
                    alias: k
                    for k, v in inputs.get("properties", {}).items()
                    for alias in v.get("aliases", [])
                },
                "required": inputs.get("required", []),
            }
    return EXTRA_TASKS.get(task)


def problems_of_task(where: str, step: dict[str, Any]) -> list[str]:
    definition = task_definition(str(step["task"]))
    if definition is None:
        return [f"{where}: task {step['task']} is in neither the schema nor EXTRA_TASKS"]
    found = []
    inputs = {definition["aliases"].get(k, k): v for k, v in (step.get("inputs") or {}).items()}
    for name, value in inputs.items():
        if name not in definition["inputs"]:
            found.append(f"{where}: {step['task']} has no input {name!r}")
            continue
        allowed = definition["inputs"][name]
        text = str(value)
        if allowed and not EXPRESSION.search(text) and text.lower() not in map(str.lower, allowed):
            found.append(f"{where}: {step['task']} {name}={text!r} is not one of {allowed}")
    found += [
        f"{where}: {step['task']} needs input {name!r}"
        for name in definition["required"]
        if name not in inputs
    ]
    return found


def problems(node: Any, kind: str, where: str) -> list[str]:
    """Every key the schema does not allow, in a stage / job / step list, recursively."""
    if not isinstance(node, list):
        return []
    found = []
    for index, item in enumerate(node):
        here = f"{where}[{index}]"
        if not isinstance(item, dict) or "template" in item:
            continue  # a template reference: its own file is checked
        name = "job" if kind == "jobs" else kind[:-1]
        keys = allowed_keys(name, item)
        if keys is None:
            found.append(f"{here}: not a {name} the schema knows ({sorted(item)})")
            continue
        found += [f"{here}: {name} has no key {k!r}" for k in sorted(set(item) - keys)]
        if "task" in item:
            found += problems_of_task(here, item)
        found += problems(item.get("jobs"), "jobs", f"{here}.jobs")
        found += problems(item.get("steps"), "steps", f"{here}.steps")
        deploy = ((item.get("strategy") or {}).get("runOnce") or {}).get("deploy") or {}
        found += problems(deploy.get("steps"), "steps", f"{here}.strategy.runOnce.deploy.steps")
    return found


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_every_pipeline_file_keeps_the_schema_and_the_task_definitions(path: Path) -> None:
    document = load(path)
    top = set(schema()["definitions"]["pipeline"]["anyOf"][0].get("properties", {}))
    top |= {p for a in alternatives("pipeline") for p in a.get("properties", {})}
    found = [f"root has no key {k!r}" for k in sorted(set(document) - top)]
    for kind in ("stages", "jobs", "steps"):
        found += problems(document.get(kind), kind, kind)
    assert found == []


def test_the_checks_refuse_what_the_service_refuses() -> None:
    """The checker itself: a misspelt key, an unknown input, a bad value, a missing input."""
    steps = [
        {"bash": "echo", "workingDir": "x"},
        {"task": "AzureFunction@1", "inputs": {"function": "u", "methd": "POST"}},
        {"task": "InvokeRESTAPI@1", "inputs": {"method": "FETCH", "serviceConnection": "s"}},
        {"task": "AzureFunction@2", "inputs": {"function": "u", "method": "POST"}},
    ]
    found = problems(steps, "steps", "steps")
    assert any("no key 'workingDir'" in p for p in found)
    assert any("no input 'methd'" in p for p in found)
    assert any("needs input 'key'" in p for p in found)
    assert any("method='FETCH'" in p for p in found)
    assert any("AzureFunction@2 needs input 'waitForCompletion'" in p for p in found)


def test_the_generation_pipeline_writes_the_trailer_the_connector_follows() -> None:
    from connector.core.links import trailer_commit

    text = (ROOT / "pipelines/templates/generate-manifests-steps.yml").read_text()
    assert 'trailers="HLD-Commit: ${HLD_COMMIT}"' in text
    # The message the template builds (subject, the HLD subject, the trailer block) parses.
    sha = "1" * 40
    message = f"Render manifests from HLD 1111111\n\nMerged PR 42: x\n\nHLD-Commit: {sha}\n"
    assert trailer_commit(message) == sha
