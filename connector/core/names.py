"""Names that travel everywhere (session ids, table keys, status contexts): which clusters,
environments and object references the connector accepts, whatever the source. Pure."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

# Cluster and environment names end up in session ids, table keys and status names; ingest and
# gate registration apply this one rule.
ORIGIN_NAME_LIMIT = 63
ORIGIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")

# A part of a Kubernetes object reference (kind, namespace, name). Kubernetes caps names at 253
# characters (DNS-1123 subdomain) and no object name may contain '/' (apimachinery
# `path.IsValidPathSegmentName`); control characters appear in none. Nothing stricter, so that
# every event Flux can send is accepted; the Table key limits are checked at ingest separately.
OBJECT_PART_LIMIT = 253
_NOT_IN_OBJECT_PART = re.compile(r"[/\x00-\x1f\x7f-\x9f]")


def _object_part(value: str) -> str:
    if _NOT_IN_OBJECT_PART.search(value):
        raise ValueError("must not contain '/' or control characters")
    return value


ObjectPart = Annotated[
    str, Field(min_length=1, max_length=OBJECT_PART_LIMIT), AfterValidator(_object_part)
]


def parse_object_reference(text: str) -> tuple[str, str, str]:
    """`Kind/namespace/name` by the rules of an event's involved object; ValueError otherwise."""
    parts = text.split("/")
    if len(parts) != 3:
        raise ValueError("must be Kind/namespace/name")
    for part in parts:
        if not part or len(part) > OBJECT_PART_LIMIT:
            raise ValueError(f"Kind, namespace and name must be 1-{OBJECT_PART_LIMIT} characters")
        _object_part(part)
    kind, namespace, name = parts
    return kind, namespace, name
