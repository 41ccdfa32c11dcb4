"""`doctor`'s check of the three-repository link: whether the manifests repository's newest
commit names the HLD commit it was rendered from, verified as a gate would verify it (nothing is
stored: doctor only reads)."""

from __future__ import annotations

import re
from typing import Any

from connector.app.doctor.check import Check
from connector.devops.client import AzureDevOpsClient, AzureDevOpsError
from connector.devops.links import CommitLinks, Repositories
from connector.settings import Settings

NAME = "devops.hld-link"
REMEDY = (
    "have the generation pipeline add the trailer 'HLD-Commit: <HLD commit SHA>' to each "
    "manifests commit (pipelines/templates/generate-manifests-steps.yml does)"
)


class _Asked(dict[tuple[str, ...], Any]):
    """Facts kept for this check only."""

    def fact(self, kind: str, *parts: str) -> Any:
        return self.get((kind, *parts))

    def remember(self, kind: str, parts: tuple[str, ...], value: Any) -> None:
        self[(kind, *parts)] = value


def hld_link(client: AzureDevOpsClient, s: Settings, newest: str | None) -> list[Check]:
    """No check without an HLD repository (AZDO_PR_REPO equal to, or unset beside, the manifests
    repository)."""
    repositories = Repositories(s.azdo_gitops_repo, s.pr_repo)
    if not repositories.three:
        return []
    if newest is None:
        return [Check(NAME, True, "skipped: the manifests repository has no commit yet")]
    patterns = [re.compile(p, re.MULTILINE) for p in s.pr_number_patterns]
    try:
        link = CommitLinks(client, _Asked(), repositories, patterns).link(newest)
    except AzureDevOpsError as exc:
        return [Check(NAME, False, f"link look-up failed: {exc}", "see the checks above")]
    if not link.linked:
        return [Check(NAME, False, link.problem, REMEDY)]
    shas = ", ".join(c[:8] for c in link.hld_commits)
    detail = f"newest manifests commit {newest[:8]} is rendered from HLD {shas} ({link.via})"
    return [Check(NAME, True, detail)]
