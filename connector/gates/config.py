"""What gates need to know of the configuration, and nothing more."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from connector.core.rollup import EnvironmentSpecs
from connector.devops.links import CommitLinks, Facts, Repositories
from connector.devops.types import RepositoryReader
from connector.settings import Settings


@dataclass(frozen=True)
class GatePolicy:
    org_url: str  # plan URLs and legacy callbacks must be in this organisation
    gitops_repo: str  # the manifests repository: ancestry and merge messages
    pr_repo: str  # where pull requests of gates live (default: the manifests repository)
    status_genre: str
    failure_grace: timedelta  # a failure shorter than this does not fail a gate
    timeout: timedelta  # a gate registered without its own timeout
    pr_number_patterns: tuple[re.Pattern[str], ...]
    legacy_environment: str  # for PR-property callbacks that name none
    environments: EnvironmentSpecs
    trial: bool  # AZDO_DRY_RUN: decide and log, send nothing

    @classmethod
    def from_settings(cls, settings: Settings) -> GatePolicy:
        return cls(
            org_url=settings.azdo_org_url,
            gitops_repo=settings.azdo_gitops_repo,
            pr_repo=settings.pr_repo,
            status_genre=settings.status_genre,
            failure_grace=timedelta(seconds=settings.gate_failure_grace_seconds),
            timeout=timedelta(minutes=settings.gate_timeout_minutes),
            pr_number_patterns=tuple(
                re.compile(p, re.MULTILINE) for p in settings.pr_number_patterns
            ),
            legacy_environment=settings.legacy_callback_environment,
            environments=settings.environments,
            trial=settings.trial_mode,
        )

    def commit_links(self, reader: RepositoryReader, facts: Facts) -> CommitLinks:
        """What each manifests commit carries, verified in these repositories."""
        repositories = Repositories(self.gitops_repo, self.pr_repo)
        return CommitLinks(reader, facts, repositories, self.pr_number_patterns)
