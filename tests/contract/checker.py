"""Checks one HTTP request against the Azure DevOps REST specification subset (the contract).

Source of truth: `azure-devops-rest-7.1-subset.json` next to this file (MicrosoftDocs/
vsts-rest-api-specs, commit in its `source` block) and, for resources the specification omits,
its `undocumented` block - accepted only for operations `connector.devops.routes.API_VERSIONS`
lists. A request must match an operation by method and path template, send an api-version the
specification documents for it (or the one our table gives with a non-specification source, such
as a Learn page), carry the required parameters in the declared formats, no undeclared query
parameters, and a body that validates against the operation's schema.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from connector.devops.routes import API_VERSIONS, GIT_SOURCE, ApiVersion

SPEC_PATH = Path(__file__).with_name("azure-devops-rest-7.1-subset.json")
UNDOCUMENTED = " (undocumented)"
# The table's sources that cite the specification itself; any other source (Learn, the clients)
# is what lets a version outside `documentedApiVersions` through.
_SPEC_SOURCE_PREFIX = "REST spec"
# The version `None` entries of API_VERSIONS send: the client's default AZDO_API_VERSION.
CONFIGURED_GIT_VERSION = "7.1"


@dataclass(frozen=True)
class Operation:
    operation_id: str  # without the " (undocumented)" suffix
    method: str
    path: str
    pattern: re.Pattern[str]
    parameters: tuple[Mapping[str, Any], ...]
    documented_versions: tuple[str, ...] | None  # None: not in the specification
    consumes: tuple[str, ...]

    @property
    def undocumented(self) -> bool:
        return self.documented_versions is None


@dataclass(frozen=True)
class Spec:
    operations: tuple[Operation, ...]
    definitions: Mapping[str, Any]


def _pattern(template: str) -> re.Pattern[str]:
    # Azure DevOps routes are case-insensitive (pullRequests == pullrequests).
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return re.compile(f"^{regex}/?$", re.IGNORECASE)


def _operation(raw: Mapping[str, Any], documented: bool) -> Operation:
    versions = raw.get("documentedApiVersions")
    return Operation(
        operation_id=str(raw["operationId"]).removesuffix(UNDOCUMENTED),
        method=str(raw["method"]).upper(),
        path=str(raw["path"]),
        pattern=_pattern(str(raw["path"])),
        parameters=tuple(raw.get("parameters") or ()),
        documented_versions=tuple(versions or ()) if documented else None,
        consumes=tuple(raw.get("consumes") or ("application/json",)),
    )


@cache
def load_spec() -> Spec:
    data = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    undocumented = data["undocumented"]
    operations = [_operation(op, True) for op in data["operations"]]
    operations += [_operation(op, False) for op in undocumented["operations"]]
    definitions = {**data["definitions"], **undocumented.get("definitions", {})}
    return Spec(tuple(operations), definitions)


def allowed_versions(operation: Operation) -> set[str]:
    """What the contract accepts for an operation: its documented versions, plus our table's
    version when the table cites something other than the specification for it."""
    allowed = set(operation.documented_versions or ())
    entry = API_VERSIONS.get(operation.operation_id)
    if isinstance(entry, ApiVersion) and not entry.source.startswith(_SPEC_SOURCE_PREFIX):
        allowed.add(entry.version)
    return allowed


def table_version(operation_id: str) -> tuple[str, str]:
    """(api-version, source) our table gives for an operation."""
    entry = API_VERSIONS[operation_id]
    if entry is None:
        return CONFIGURED_GIT_VERSION, GIT_SOURCE
    return entry.version, entry.source


def find_operation(method: str, path: str) -> Operation | None:
    """The operation whose method and path template match; an undocumented operation counts
    only when our table lists it."""
    for operation in load_spec().operations:
        if operation.method != method.upper() or not operation.pattern.match(path):
            continue
        if operation.undocumented and operation.operation_id not in API_VERSIONS:
            continue
        return operation
    return None


def check_request(
    method: str,
    path: str,
    query: Mapping[str, str],
    body: bytes,
    content_type: str,
) -> list[str]:
    """Every way this request breaks the contract ([] when it keeps it)."""
    operation = find_operation(method, path)
    if operation is None:
        return [f"{method} {path}: no operation in the REST spec or our table matches"]
    where = f"{method} {path} ({operation.operation_id})"
    match = operation.pattern.match(path)
    assert match is not None  # found by this pattern
    problems = _check_version(operation, query.get("api-version"))
    problems += _check_path(operation, match.groupdict())
    problems += _check_query(operation, query)
    problems += _check_body(operation, body, content_type)
    return [f"{where}: {problem}" for problem in problems]


def _check_version(operation: Operation, version: str | None) -> list[str]:
    allowed = allowed_versions(operation)
    if version in allowed:
        return []
    return [f"api-version {version!r} is not documented for it (allowed: {sorted(allowed)})"]


def _parameters(operation: Operation, where: str) -> dict[str, Mapping[str, Any]]:
    return {str(p["name"]): p for p in operation.parameters if p.get("in") == where}


def _check_path(operation: Operation, values: Mapping[str, str]) -> list[str]:
    problems = []
    for name, parameter in _parameters(operation, "path").items():
        problem = _scalar_problem(parameter, values.get(name))
        if problem:
            problems.append(f"path parameter {name}: {problem}")
    return problems


def _check_query(operation: Operation, query: Mapping[str, str]) -> list[str]:
    declared = _parameters(operation, "query")
    problems = [
        f"query parameter {name!r} is not declared" for name in query if name not in declared
    ]
    for name, parameter in declared.items():
        if name not in query:
            if parameter.get("required"):
                problems.append(f"required query parameter {name} is missing")
            continue
        problem = _scalar_problem(parameter, query[name])
        if problem:
            problems.append(f"query parameter {name}: {problem}")
    return problems


def _scalar_problem(parameter: Mapping[str, Any], raw: str | None) -> str | None:
    """A path or query value (always text on the wire) against its declared type and format."""
    if raw is None or raw == "":
        return "missing" if parameter.get("required") else None
    kind, fmt = parameter.get("type"), parameter.get("format")
    if kind == "integer" and not re.fullmatch(r"-?\d+", raw):
        return f"{raw!r} is not an integer"
    if kind == "boolean" and raw.lower() not in {"true", "false"}:
        return f"{raw!r} is not a boolean"
    if fmt == "uuid" and not _is_uuid(raw):
        return f"{raw!r} is not a UUID"
    if fmt == "date-time" and not _is_datetime(raw):
        return f"{raw!r} is not a date-time"
    return None


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _check_body(operation: Operation, body: bytes, content_type: str) -> list[str]:
    parameter = next(iter(_parameters(operation, "body").values()), None)
    if parameter is None:
        return ["the operation takes no body"] if body else []
    if not body:
        return ["the required body is missing"] if parameter.get("required") else []
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in operation.consumes:
        return [f"content type {media!r} is not one it consumes {list(operation.consumes)}"]
    schema = parameter.get("schema") or {}
    if media == "application/octet-stream":
        return []  # a Stream body: any bytes
    try:
        value = json.loads(body)
    except ValueError:
        return ["the body is not valid JSON"]
    return [f"body{problem}" for problem in validate(value, schema, load_spec().definitions)]


def validate(value: Any, schema: Mapping[str, Any], definitions: Mapping[str, Any]) -> list[str]:
    """The swagger subset the specification uses: $ref, allOf, type, format, enum, properties,
    required, additionalProperties, items. Undeclared properties are allowed, as in swagger
    (TaskCompleted carries TaskCompletedEvent's fields under JobEvent)."""
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return validate(value, definitions[name], definitions)
    problems = [p for part in schema.get("allOf", ()) for p in validate(value, part, definitions)]
    if schema.get("format") == "T":  # a generic wrapper's payload: anything goes
        return problems
    problems += _type_problems(value, schema)
    if problems:
        return problems
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f": {value!r} is not one of {schema['enum']}")
    if isinstance(value, dict):
        problems += _object_problems(value, schema, definitions)
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            problems += [f"[{index}]{p}" for p in validate(item, schema["items"], definitions)]
    return problems


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def _type_problems(value: Any, schema: Mapping[str, Any]) -> list[str]:
    kind = schema.get("type")
    if kind is None:
        return []
    is_bool = isinstance(value, bool)
    if not isinstance(value, _TYPES[kind]) or (is_bool and kind in {"integer", "number"}):
        return [f": {value!r} is not of type {kind}"]
    if schema.get("format") == "uuid" and not (isinstance(value, str) and _is_uuid(value)):
        return [f": {value!r} is not a UUID"]
    return []


def _object_problems(
    value: Mapping[str, Any], schema: Mapping[str, Any], definitions: Mapping[str, Any]
) -> list[str]:
    problems = [
        f": required property {name!r} is missing"
        for name in schema.get("required", ())
        if name not in value
    ]
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        sub = properties.get(key, extra if isinstance(extra, dict) else None)
        if sub is not None:
            problems += [f".{key}{p}" for p in validate(item, sub, definitions)]
    return problems
