"""`doctor`'s Azure DevOps checks, made with the app's own client and identity.

One read of the manifests repository's newest commit (Commits - Get Commits, top 1) resolves the
organisation, the credential, the project and the repository in turn; the first that fails is
named, and the ones after it are reported as not verified. Then, each on its own: the commit's
statuses (Statuses - List), a pull request query for a random commit (Pull Request Query), a plan
look-up of a random plan, which must answer 404 ("unknown": route, api-version and permission
accepted), and the service hook's secret.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Final

from azure.core.exceptions import ClientAuthenticationError

from connector.app.doctor.check import Check, skip
from connector.app.doctor.links import hld_link
from connector.core.gates import PlanRef
from connector.devops.client import (
    AzureDevOpsClient,
    AzureDevOpsError,
    PermanentAzureDevOpsError,
    TransientAzureDevOpsError,
)

if TYPE_CHECKING:
    from connector.app.root.bootstrap import Container
    from connector.settings import Settings

# Resolved in this order by the first read; a failure blames exactly one of them.
ORGANIZATION, CREDENTIAL, PROJECT, REPOSITORY, COMMITS = (
    "devops.organization",
    "devops.credential",
    "devops.project",
    "devops.repository",
    "devops.commits",
)
RESOLUTION: Final = (ORGANIZATION, CREDENTIAL, PROJECT, REPOSITORY, COMMITS)

_RESOLVED: Final = {
    ORGANIZATION: "answers",
    CREDENTIAL: "accepted",
    PROJECT: "found",
    REPOSITORY: "found",
}
_REMEDIES: Final = {
    ORGANIZATION: "set AZDO_ORG_URL to https://dev.azure.com/<organisation>/ and check that "
    "the app can reach it",
    CREDENTIAL: "renew AZDO_PAT (scopes Code: read & status, Build: read & execute) or add the "
    "app's managed identity (AZURE_CLIENT_ID) to the organisation; a PAT is valid in one "
    "organisation only",
    PROJECT: "set AZDO_PROJECT to the project's name or id",
    REPOSITORY: "set AZDO_GITOPS_REPO to the manifests repository's name or id in AZDO_PROJECT",
    COMMITS: "give the identity Read on the repository",
}
_PIPELINE_REMEDY: Final = (
    "give the identity access to pipelines (PAT scope Build: read & execute); a 400 naming the "
    "api-version means this connector's plan route is refused: upgrade it"
)


def devops_checks(container: Container) -> list[Check]:
    s = container.settings
    if not (s.azdo_org_url and s.azdo_project and s.azdo_gitops_repo):
        detail = "AZDO_ORG_URL, AZDO_PROJECT and AZDO_GITOPS_REPO must all be set"
        return [Check(ORGANIZATION, False, detail, "set them"), hook_secret(s)]
    if s.trial_mode and s.azdo_pat is None and not s.azure_client_id:
        return _trial_skips(s)
    client, note = _reader(container)
    resolution, newest = _resolve(client, s.azdo_gitops_repo)
    if note:
        first = resolution[0]
        resolution[0] = Check(first.check, first.ok, f"{first.detail}; {note}", first.remedy)
    resolved = all(c.ok for c in resolution)
    blocked = next((c.check for c in resolution[:2] if not c.ok), None)
    try:
        if blocked:  # nothing else can answer: do not wait for each call's retries
            rest = [_unverified(name, blocked) for name in _LATER]
        else:
            rest = [
                _statuses(client, s.azdo_gitops_repo, newest, resolved=resolved),
                _pull_requests(client, s.pr_repo),
                _plan_route(client, s),
                *hld_link(client, s, newest),
            ]
        return [*resolution, *rest, hook_secret(s)]
    finally:
        if note:  # a client of our own, not the app's
            client.close()


_LATER: Final = ("devops.statuses", "devops.pull-requests", "devops.plan-route")
_TRIAL: Final = (
    "trial mode without AZDO_PAT or AZURE_CLIENT_ID: the app neither sends to nor reads from "
    "Azure DevOps (set AZDO_PAT to check the reads it would make)"
)


def _trial_skips(s: Settings) -> list[Check]:
    checks = [skip(ORGANIZATION, _TRIAL)]
    checks += [skip(name, "trial mode, as above") for name in (*RESOLUTION[1:], *_LATER)]
    if s.azdo_hook_secret is None:  # service hooks come from Azure DevOps, unused in a trial
        return [*checks, skip("devops.hook-secret", "trial mode: no service hook calls in")]
    return [*checks, hook_secret(s)]


def _unverified(name: str, failing: str) -> Check:
    return Check(name, False, f"not verified: {failing} failed", f"fix {failing}")


def _reader(container: Container) -> tuple[AzureDevOpsClient, str]:
    """The app's client; in trial mode (which sends nothing) a real one built the same way,
    since these checks only read."""
    devops = container.devops
    if isinstance(devops, AzureDevOpsClient):
        return devops, ""
    s = container.settings
    note = "trial mode: checked with a real client, reads only"
    if s.azdo_pat is not None:
        pat = s.azdo_pat.get_secret_value()
        client = AzureDevOpsClient(
            s.azdo_org_url, s.azdo_project, pat=pat, api_version=s.azdo_api_version
        )
        return client, note
    client = AzureDevOpsClient(
        s.azdo_org_url,
        s.azdo_project,
        credential=container.credential,
        api_version=s.azdo_api_version,
    )
    return client, note


def _resolve(client: AzureDevOpsClient, repository: str) -> tuple[list[Check], str | None]:
    try:
        commits = client.list_commits(repository, 1)
    except AzureDevOpsError as exc:
        if isinstance(exc.__cause__, ClientAuthenticationError):
            return _no_token(), None
        return _blamed(blame(exc), describe(exc)), None
    checks = [Check(name, True, f"{name.split('.')[1]} {_RESOLVED[name]}") for name in _RESOLVED]
    newest = commits[0].commit_id if commits else None
    shown = f"newest commit {newest[:12]}" if newest else "the repository has no commits yet"
    checks.append(Check(COMMITS, True, f"can read commits ({shown})"))
    return checks, newest


def _no_token() -> list[Check]:
    """No token: nothing was sent, so the organisation was not reached (not "answers"), and
    the credential's error is one line (DefaultAzureCredential's lists every source it tried)."""
    detail = "no Azure credential gave a token, so nothing was sent to AZDO_ORG_URL"
    remedy = (
        "on a workstation run `az login` (an account in the organisation), or set AZDO_PAT; "
        "in Azure set AZURE_CLIENT_ID to the app's identity"
    )
    checks = [
        skip(ORGANIZATION, "not reached: no token was obtained"),
        Check(CREDENTIAL, False, detail, remedy),
    ]
    return checks + [_unverified(name, CREDENTIAL) for name in RESOLUTION[2:]]


def blame(exc: AzureDevOpsError) -> str:
    """Which step of the resolution a refused read of the repository's commits points at."""
    if isinstance(exc.__cause__, ClientAuthenticationError):
        return CREDENTIAL  # the identity could not get a token: nothing was sent
    if isinstance(exc, TransientAzureDevOpsError):
        return ORGANIZATION  # unreachable, or throttled / failing after retries
    if not isinstance(exc, PermanentAzureDevOpsError):
        return COMMITS
    if exc.status_code in {203, 401}:  # 203: a sign-in page, the service's answer to a bad token
        return CREDENTIAL
    if exc.status_code != 404:
        return COMMITS
    return _not_found(exc.message.lower())


def _not_found(message: str) -> str:
    # TF200016: "The following project does not exist"; TF401019: "The Git repository with name
    # or identifier … does not exist or you do not have permissions …".
    if "tf200016" in message or "project" in message:
        return PROJECT
    if "tf401019" in message or "repository" in message:
        return REPOSITORY
    return ORGANIZATION


def describe(exc: AzureDevOpsError) -> str:
    if isinstance(exc, PermanentAzureDevOpsError):
        return f"Azure DevOps answered {exc.status_code}: {exc.message}"
    return str(exc)


def _blamed(failing: str, detail: str) -> list[Check]:
    checks = []
    for name in RESOLUTION:
        if RESOLUTION.index(name) < RESOLUTION.index(failing):
            checks.append(Check(name, True, f"{name.split('.')[1]} {_RESOLVED[name]}"))
        elif name == failing:
            checks.append(Check(name, False, detail, _REMEDIES[name]))
        else:
            checks.append(_unverified(name, failing))
    return checks


def _statuses(
    client: AzureDevOpsClient, repository: str, commit: str | None, *, resolved: bool
) -> Check:
    name = "devops.statuses"
    if not resolved:
        return Check(name, False, "not verified: the repository did not resolve", "see above")
    if commit is None:
        return skip(name, "the repository has no commit to read statuses of")
    try:
        client.count_commit_statuses(repository, commit, 1)
    except AzureDevOpsError as exc:
        return Check(name, False, describe(exc), "give the identity Read on the repository")
    return Check(name, True, f"can read the statuses of {commit[:12]}")


def _pull_requests(client: AzureDevOpsClient, repository: str) -> Check:
    name = "devops.pull-requests"
    random_commit = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    try:
        found = client.pull_requests_for_merge_commit(repository, random_commit)
    except AzureDevOpsError as exc:
        remedy = "check AZDO_PR_REPO (default AZDO_GITOPS_REPO) and the identity's Read on it"
        return Check(name, False, describe(exc), remedy)
    return Check(name, True, f"pull request query answers in {repository} ({len(found)} found)")


def _plan_route(client: AzureDevOpsClient, s: Settings) -> Check:
    name = "devops.plan-route"
    plan = PlanRef(
        plan_url=s.azdo_org_url,
        project_id=str(uuid.uuid4()),
        hub_name="build",
        plan_id=str(uuid.uuid4()),
        job_id=str(uuid.uuid4()),
        timeline_id="",
        task_instance_id=str(uuid.uuid4()),
    )
    try:
        state = client.get_plan_state(plan)
    except AzureDevOpsError as exc:
        return Check(name, False, f"plan look-up: {describe(exc)}", _PIPELINE_REMEDY)
    if state.plan_state != "unknown":
        detail = f"a random plan id answered {state.plan_state!r}, not 404"
        return Check(name, False, detail, "report this: the plan route is not the expected one")
    detail = "a random plan id answers 404: route, api-version and permission accepted"
    return Check(name, True, detail)


def hook_secret(s: Settings) -> Check:
    name = "devops.hook-secret"
    if s.azdo_hook_secret is None:
        detail = "AZDO_HOOK_SECRET is not set: /api/devops/events refuses every service hook (503)"
        remedy = "set AZDO_HOOK_SECRET and the same basic-auth password in the service hook"
        return Check(name, False, detail, remedy)
    return Check(name, True, "AZDO_HOOK_SECRET is set")
