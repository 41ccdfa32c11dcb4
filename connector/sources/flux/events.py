"""The Flux notification-controller event, as `generic` and `generic-hmac` providers post it.

Parsing is lenient where Flux varies between versions (unknown fields, missing `metadata`, `uid`,
`reportingInstance`, any kind or reason) and strict where we depend on a value (object identity,
timestamp, reason, severity).
"""

from __future__ import annotations

import re

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from connector.core.names import ObjectPart

_SHA1 = re.compile(r"[0-9a-f]{40}")

# Kinds that describe where manifests come from, not what runs in the cluster.
SOURCE_KINDS = frozenset(
    {"GitRepository", "OCIRepository", "Bucket", "HelmChart", "HelmRepository", "ExternalArtifact"}
)


class InvolvedObject(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    kind: ObjectPart
    namespace: ObjectPart
    name: ObjectPart
    uid: str | None = None
    api_version: str | None = Field(default=None, alias="apiVersion")
    resource_version: str | None = Field(default=None, alias="resourceVersion")


class FluxEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    involved_object: InvolvedObject = Field(alias="involvedObject")
    severity: str = Field(min_length=1)
    timestamp: AwareDatetime
    message: str
    reason: str = Field(min_length=1)
    metadata: dict[str, str] = Field(default_factory=dict)
    reporting_controller: str = Field(default="", alias="reportingController")
    reporting_instance: str = Field(default="", alias="reportingInstance")

    def meta(self, key: str) -> str | None:
        """A metadata value by plain key, else by any group-prefixed key (`…/key`)."""
        if key in self.metadata:
            return self.metadata[key]
        suffix = "/" + key
        return next((v for k, v in self.metadata.items() if k.endswith(suffix)), None)

    @property
    def is_error(self) -> bool:
        return self.severity.lower() == "error"

    @property
    def is_source(self) -> bool:
        return self.involved_object.kind in SOURCE_KINDS

    @property
    def commit(self) -> str | None:
        """The Git commit this event is about, or None. The controller's own revision wins
        (`originRevision`, the Git revision stamped on an OCI artifact, then `revision`); the
        `commit` key, which any object annotation `event.toolkit.fluxcd.io/commit` sets, counts
        only for an event that carries no revision: an annotation must not say that a commit
        was applied when the controller applied another one."""
        revisions = [v for v in (self.meta("originRevision"), self.meta("revision")) if v]
        if not revisions:
            return self.claimed_commit
        return next((c for c in map(commit_from_revision, revisions) if c), None)

    @property
    def claimed_commit(self) -> str | None:
        """The commit the `commit` metadata names (an annotation), whatever the revision says."""
        value = self.meta("commit")
        return commit_from_revision(value) if value else None


def commit_from_revision(revision: str) -> str | None:
    """Extract a SHA-1 from a Flux revision: `main@sha1:<sha>`, legacy `main/<sha>`, `sha1:<sha>`.

    After the last `:` if there is one, else after the last `/`; only exactly 40 lowercase hex
    characters count (OCI digests, chart versions and truncated suffixes are not commits).
    """
    tail = revision.rsplit(":", 1)[-1] if ":" in revision else revision.rsplit("/", 1)[-1]
    return tail if _SHA1.fullmatch(tail) else None


def first_line(text: str, limit: int = 200) -> str:
    """The first non-empty line of a message, capped with an ellipsis."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"
