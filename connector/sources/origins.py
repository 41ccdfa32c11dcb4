"""Which cluster and environment a webhook may speak for (docs/security.md).

A credential bound to clusters (a Flux cluster key, an Argo CD instance secret) decides the
cluster: naming another one is a 403 and nothing is queued. A cluster that `ENVIRONMENTS` lists
reports only for the environments that list it, whoever signed. Where the request names a value
twice (the signed body and the unsigned query string), they must agree: the query never
overrides the body. Each refusal names the mismatch, never a secret.
"""

from __future__ import annotations

from collections.abc import Set

from connector.settings import Settings
from connector.sources import http
from connector.sources.http import RejectedError


def agreed(key: str, body: str | None, query: str | None) -> str | None:
    """The value the body and the query name (the body's); 403 when they name different ones."""
    if body and query and body != query:
        raise RejectedError(
            403,
            f"the event names {key} {body!r} but ?{key}= names {query!r}: the query string never "
            "overrides the event",
            fields=[{"field": f"?{key}", "problem": "contradicts the event"}],
        )
    return body or query


def bound_cluster(named: str | None, bound: Set[str], credential: str) -> None:
    """403 unless `named` (when there is one) is a cluster `credential` may speak for."""
    if named and named not in bound:
        allowed = ", ".join(sorted(bound))
        raise RejectedError(
            403,
            f"{credential} speaks for cluster(s) {allowed}, not for {named!r}",
            fields=[{"field": "cluster", "problem": "not bound to this credential"}],
        )


def environment(settings: Settings, cluster: str, named: str | None, field: str, hint: str) -> str:
    """The environment of an event from `cluster`: a cluster `ENVIRONMENTS` lists reports only
    for the environments that list it (403 for another); without a name, the one it is listed
    in, else `DEFAULT_ENV` (`http.environment_of`)."""
    listed = sorted(n for n, spec in settings.environments.items() if cluster in spec.clusters)
    if named and listed and named not in listed:
        raise RejectedError(
            403,
            f"cluster {cluster!r} reports only for env {', '.join(listed)} (ENVIRONMENTS), "
            f"not for {named!r}",
            fields=[{"field": field, "problem": "not an environment of this cluster"}],
        )
    return named or http.environment_of(settings, cluster, field, hint)


def listed(settings: Settings, cluster: str) -> bool:
    return any(cluster in spec.clusters for spec in settings.environments.values())


def credential_warnings(settings: Settings) -> list[str]:
    """What weakens the webhooks' credentials, said at start (`ingest.credential_warning`) and by
    `doctor`: a shared key lets any cluster speak for every other one."""
    warnings = []
    if settings.hmac_keys:
        warnings.append(
            "FLUX_HMAC_KEY is one key shared by every cluster: whoever holds it (any cluster's "
            "Flux Secret) can report for any cluster and environment and release its gates; "
            "give each cluster its own key in FLUX_CLUSTER_KEYS (docs/security.md)"
        )
    if settings.argocd_secrets:
        warnings.append(
            "ARGOCD_WEBHOOK_SECRET is shared: whoever holds it can report for any cluster; give "
            "each Argo CD instance its own secret in ARGOCD_INSTANCES (docs/argocd.md)"
        )
    unlisted = sorted(c for c in settings.cluster_keys if not listed(settings, c))
    if unlisted:
        warnings.append(
            f"cluster(s) {', '.join(unlisted)} have a key but no environment in ENVIRONMENTS: "
            "their signed events may name any env (an unlisted environment expects the clusters "
            "seen so far); list each cluster in ENVIRONMENTS"
        )
    if settings.flux_allow_unsigned and (settings.hmac_keys or settings.cluster_keys):
        warnings.append(
            "FLUX_ALLOW_UNSIGNED=true is ignored while a Flux key is set: unsigned events get "
            "401; remove the setting"
        )
    return warnings
