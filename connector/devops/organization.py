"""Where credentials may go: the configured Azure DevOps organisation, and nothing else.

URLs are compared by identity, never as string prefixes: both Services forms
(`dev.azure.com/{org}`, `{org}.visualstudio.com`) name one organisation; Server collections compare
host, port and path segments; https is required except on loopback hosts (tests, local fakes).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit

_LOOPBACK_NAMES: Final = frozenset({"localhost"})
_SERVICES_HOSTS: Final = frozenset({"dev.azure.com", "vsrm.dev.azure.com"})
_LEGACY_HOST: Final = re.compile(r"([a-z0-9][a-z0-9-]*)(?:\.vsrm)?\.visualstudio\.com")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


@dataclass(frozen=True)
class _Collection:
    """Where credentials may go: scheme, host, port and the collection's path segments."""

    scheme: str
    host: str
    port: int
    path: tuple[str, ...]

    def contains(self, other: _Collection) -> bool:
        # Segment-wise prefix, so ".../fabrikam-evil" never matches ".../fabrikam".
        return (self.scheme, self.host, self.port) == (
            other.scheme,
            other.host,
            other.port,
        ) and other.path[: len(self.path)] == self.path


def is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _path_segments(path: str) -> tuple[str, ...] | None:
    """Lower-cased, decoded segments; None if any could make a client or server leave the path."""
    segments = []
    for raw in path.split("/"):
        segment = unquote(raw)
        if segment in {".", ".."} or "/" in segment or "\\" in segment:
            return None
        if segment:
            segments.append(segment.lower())
    return tuple(segments)


def _collection_of(url: str) -> _Collection | None:
    """Canonical identity of the organisation/collection a URL points into, or None if unsafe."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    scheme = parts.scheme.lower()
    segments = _path_segments(parts.path)
    if not host or parts.username is not None or parts.password is not None or segments is None:
        return None
    # Credentials travel in clear over http, tolerable only to this machine (tests, local fakes).
    if scheme != "https" and not (scheme == "http" and is_loopback(host)):
        return None
    port = port or _DEFAULT_PORTS[scheme]
    legacy = _LEGACY_HOST.fullmatch(host)
    if host in _SERVICES_HOSTS or legacy:
        # Both Services URL forms name the same organisation: map them to dev.azure.com/{org}.
        organization = legacy.group(1) if legacy else (segments[0] if segments else None)
        if port != 443 or not organization:
            return None
        return _Collection("https", "dev.azure.com", 443, (organization,))
    return _Collection(scheme, host, port, segments)


def same_organization(url: str, org_url: str) -> bool:
    """Whether `url` lies inside the organisation (or Server collection) at `org_url`.

    Both Services forms (dev.azure.com/{org}, {org}.visualstudio.com) are recognised and the
    organisation compared case-insensitively; https is required except on loopback hosts.
    """
    org = _collection_of(org_url)
    target = _collection_of(url)
    return org is not None and target is not None and org.contains(target)


def is_organization_url(url: str) -> bool:
    """Whether `url` can name an organisation we may send credentials to."""
    return _collection_of(url) is not None
