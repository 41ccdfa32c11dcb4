"""Per-origin credentials from one app setting each, so that each can be one Key Vault reference.

- `FLUX_CLUSTER_KEYS`: `{"<cluster>": "<key>" | ["<key>", ...]}`; the key that verifies a Flux
  event decides its cluster. A list holds the keys accepted while one is rotated.
- `ARGOCD_INSTANCES`: `{"<instance>": {"secrets": "<secret>" | [...], "clusters": [...]}}`; an
  Argo CD instance speaks only for the clusters listed with its secret.

A key or secret given to two owners would make the owner ambiguous, so it is refused. Errors name
the setting and the owner, never a key.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# A cluster name as events carry it: `connector.core.names.ORIGIN_NAME`, which this base module
# cannot import (tests/unit/test_keyrings.py keeps the two equal).
CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


@dataclass(frozen=True)
class ArgoInstance:
    secrets: tuple[bytes, ...]
    clusters: frozenset[str]


def cluster_keys(text: str) -> dict[str, tuple[bytes, ...]]:
    """FLUX_CLUSTER_KEYS as cluster → keys (raw bytes, not trimmed, as Flux's Secret `token`)."""
    data = _object(text, "FLUX_CLUSTER_KEYS", '{"<cluster>": "<key>" or ["<key>", ...]}')
    _cluster_names(data, "FLUX_CLUSTER_KEYS")
    keys = {name: _secrets(value, f"FLUX_CLUSTER_KEYS[{name!r}]") for name, value in data.items()}
    _unshared(keys, "FLUX_CLUSTER_KEYS", "key")
    return keys


def argocd_instances(text: str) -> dict[str, ArgoInstance]:
    """ARGOCD_INSTANCES as instance → its secrets and the clusters it may speak for."""
    shape = '{"<instance>": {"secrets": ["<secret>", ...], "clusters": ["<cluster>", ...]}}'
    data = _object(text, "ARGOCD_INSTANCES", shape)
    instances = {}
    for name, value in data.items():
        where = f"ARGOCD_INSTANCES[{name!r}]"
        if not isinstance(value, dict) or set(value) != {"secrets", "clusters"}:
            raise ValueError(f"{where} must be an object with exactly 'secrets' and 'clusters'")
        clusters = value["clusters"]
        if not isinstance(clusters, list) or not clusters:
            raise ValueError(f"{where}.clusters must be a non-empty list of cluster names")
        if not all(isinstance(c, str) and c for c in clusters):
            raise ValueError(f"{where}.clusters must hold non-empty strings")
        _cluster_names(clusters, f"{where}.clusters")
        instances[name] = ArgoInstance(
            _secrets(value["secrets"], f"{where}.secrets"), frozenset(clusters)
        )
    _unshared({n: i.secrets for n, i in instances.items()}, "ARGOCD_INSTANCES", "secret")
    return instances


def _object(text: str, setting: str, shape: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError(f"{setting} is not valid JSON: use {shape}") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{setting} must be a non-empty JSON object: {shape}")
    if not all(name for name in data):
        raise ValueError(f"{setting} has an empty name")
    return data


def _cluster_names(names: Any, where: str) -> None:
    bad = sorted(n for n in names if not CLUSTER_NAME.fullmatch(n))
    if bad:
        raise ValueError(
            f"{where}: {', '.join(map(repr, bad))} is no cluster name (letters, digits, '.', '_' "
            "or '-', starting with a letter or digit, at most 63 characters)"
        )


def _secrets(value: object, where: str) -> tuple[bytes, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values:
        raise ValueError(f"{where} must be a string or a non-empty list of strings")
    if not all(isinstance(v, str) and v for v in values):
        raise ValueError(f"{where} must hold non-empty strings")
    return tuple(v.encode() for v in values)


def _unshared(owned: dict[str, tuple[bytes, ...]], setting: str, what: str) -> None:
    owners: dict[bytes, str] = {}
    for owner, secrets in owned.items():
        for secret in secrets:
            other = owners.setdefault(secret, owner)
            if other != owner:
                raise ValueError(
                    f"{setting}: {other!r} and {owner!r} share a {what}; give each its own"
                )
