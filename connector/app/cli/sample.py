"""`python -m connector send-sample`: signed Flux events to a running connector (a smoke test).

The events are what kustomize-controller sends through notification-controller's `generic-hmac`
provider for one rollout of a Kustomization, byte for byte in its encoding (Go `json.Marshal`:
compact, struct field order, metadata keys sorted, `<>&` escaped) and with its headers
(`Content-Type`, `Gotk-Component`, `X-Signature`, Go's `User-Agent`). Sources:
notification-controller `internal/notifier/forwarder.go` (headers, signature) and
fluxcd/pkg `apis/event/v1beta1/event.go` (field order); see tests/events/*.json for real ones.
The function key goes in the `x-functions-key` header, never in a printed URL.
"""

from __future__ import annotations

import argparse
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from connector.app.views import commits
from connector.settings import Settings, SettingsError
from connector.sources.flux.signature import sign

if TYPE_CHECKING:
    from connector.app.root.bootstrap import Container

DEFAULT_URL = "http://localhost:7071/api/flux"  # local.settings.sample.json: Host.LocalHttpPort
PHASES = ("progressing", "succeeded", "failed")
FUNCTION_KEY_SETTING = "FLUX_FUNCTION_KEY"
TIMEOUT_SECONDS = 30  # the Flux Provider's `timeout` in deploy/flux
FAILED = 3
TRIAL_NOTE = (
    "trial mode (AZDO_DRY_RUN=true): these statuses and the gate's TaskCompleted are what would "
    "be posted; the app's log shows each as `azure_devops.trial POST ...`"
)

CONTROLLER = "kustomize-controller"
_OBJECT = {
    "kind": "Kustomization",
    "namespace": "flux-system",
    "name": "apps",
    "uid": "fb27538a-f850-4981-87f5-3cbdde200363",
    "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
    "resourceVersion": "48213402",
}


class Step(NamedTuple):
    """One event of a rollout, as kustomize-controller words it."""

    reason: str
    severity: str
    message: str
    metadata: dict[str, str]


_PROGRESSING = Step(
    "Progressing",
    "info",
    "Service/apps/podinfo configured\nDeployment/apps/podinfo configured",
    {},
)
_SUCCEEDED = Step(
    "ReconciliationSucceeded",
    "info",
    "Reconciliation finished in 43.901774125s, next run in 10m0s",
    {"commit_status": "update"},
)
_FAILED = Step(
    "HealthCheckFailed",
    "error",
    "health check failed after 4m59.98201176s: timeout waiting for: "
    "[Deployment/apps/podinfo status: 'InProgress']",
    {},
)
_ROLLOUTS = {
    "progressing": (_PROGRESSING,),
    "succeeded": (_PROGRESSING, _SUCCEEDED),
    "failed": (_PROGRESSING, _FAILED),
}


@dataclass(frozen=True)
class Sample:
    cluster: str
    env: str
    commit: str
    phase: str


@dataclass(frozen=True)
class Answer:
    reason: str
    status: int  # 0: no answer (connection refused, timeout)
    body: str


def random_commit() -> str:
    """A fresh commit id, so that a repeated smoke test is not dropped as a duplicate."""
    return secrets.token_hex(20)


def events(sample: Sample, now: datetime) -> list[tuple[str, bytes]]:
    """(reason, body) per event of the rollout, one second apart, the last at `now`."""
    steps = _ROLLOUTS[sample.phase]
    start = now.astimezone(UTC).replace(microsecond=0) - timedelta(seconds=len(steps) - 1)
    return [
        (step.reason, encode(_event(sample, step, start + timedelta(seconds=i))))
        for i, step in enumerate(steps)
    ]


def _event(sample: Sample, step: Step, when: datetime) -> dict[str, Any]:
    # cluster and env arrive as the Alert's eventMetadata, merged into the event's metadata.
    metadata = {"revision": f"main@sha1:{sample.commit}", **step.metadata}
    metadata |= {k: v for k, v in (("cluster", sample.cluster), ("env", sample.env)) if v}
    return {
        "involvedObject": _OBJECT,
        "severity": step.severity,
        "timestamp": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "message": step.message,
        "reason": step.reason,
        "metadata": dict(sorted(metadata.items())),
        "reportingController": CONTROLLER,
        "reportingInstance": f"{CONTROLLER}-7b9c5f6d4-x8k2p",
    }


def encode(event: dict[str, Any]) -> bytes:
    """Go's `json.Marshal`: compact, in the given (struct) order, HTML characters escaped."""
    text = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


def signing_key(settings: Settings, cluster: str = "") -> bytes | None:
    """The cluster's first key in FLUX_CLUSTER_KEYS, else the first of the shared FLUX_HMAC_KEY
    (the one Flux signs with during a rotation), or None when the app accepts unsigned events;
    SettingsError when there is none to sign with."""
    own = settings.cluster_keys.get(cluster)
    if own:
        return own[0]
    if settings.hmac_keys:
        return settings.hmac_keys[0]
    if settings.flux_allow_unsigned and not settings.cluster_keys:
        return None
    raise SettingsError(
        f"no key for cluster {cluster!r} in FLUX_CLUSTER_KEYS, and no FLUX_HMAC_KEY "
        "(needed to sign the sample events)"
    )


def headers(body: bytes, key: bytes | None, function_key: str | None) -> dict[str, str]:
    values = {
        "Content-Type": "application/json",
        "Gotk-Component": CONTROLLER,
        "User-Agent": "Go-http-client/1.1",
    }
    if function_key:
        values["x-functions-key"] = function_key
    if key is not None:
        values["X-Signature"] = sign(key, body)
    return values


def post(url: str, body: bytes, header_values: dict[str, str]) -> tuple[int, str]:
    """Status and body text; status 0 with the reason when nothing answered."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise SettingsError(f"--url must be http(s)://…, not {scheme or 'a bare path'}")
    request = urllib.request.Request(url, body, header_values, method="POST")  # noqa: S310 - checked
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return int(response.status), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        return 0, f"no answer: {reason}"


def send(
    sample: Sample,
    *,
    url: str,
    key: bytes | None,
    function_key: str | None,
    now: datetime | None = None,
    transport: Callable[[str, bytes, dict[str, str]], tuple[int, str]] = post,
) -> list[Answer]:
    """Send the rollout's events in order; stop at the first one not accepted (Flux would retry
    it, and the next would only be refused the same way)."""
    answers: list[Answer] = []
    for reason, body in events(sample, now or datetime.now(UTC)):
        status, text = transport(url, body, headers(body, key, function_key))
        answers.append(Answer(reason, status, text.strip()))
        if not 200 <= status < 300:
            break
    return answers


def describe(answers: Sequence[Answer]) -> list[str]:
    return [f"{a.reason}: {a.status or 'no answer'} {a.body}".rstrip() for a in answers]


# --- the CLI subcommand -------------------------------------------------------------------------


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "send-sample",
        parents=[common],
        help="send signed sample Flux events to a running connector (smoke test)",
        description="Send one Kustomization rollout (Progressing, then ReconciliationSucceeded or "
        "HealthCheckFailed) as Flux's generic-hmac provider would, signed with the cluster's first "
        "key in FLUX_CLUSTER_KEYS (else the shared FLUX_HMAC_KEY), and print each answer; then "
        "follow the commit in the deployments view. "
        f"Function key: --code or {FUNCTION_KEY_SETTING}, else that of a running `serve`. "
        "Exit 0 when every event was accepted (2xx) (and, with --gate, the gate completed), "
        "3 otherwise.",
    )
    parser.add_argument(
        "--url", help=f"the flux endpoint (a running `serve`'s, else {DEFAULT_URL})"
    )
    parser.add_argument("--cluster", help="cluster metadata (default DEFAULT_CLUSTER)")
    parser.add_argument("--env", help="environment metadata (default DEFAULT_ENV)")
    parser.add_argument("--commit", type=_commit, help="40-hex commit (default: a random one)")
    parser.add_argument("--phase", choices=PHASES, default="succeeded", help="(succeeded)")
    parser.add_argument("--code", help=f"function key of a deployed app ({FUNCTION_KEY_SETTING})")
    parser.add_argument(
        "--gate", action="store_true", help="register a gate first; see the rollout complete it"
    )
    parser.set_defaults(run=command)


def _commit(text: str) -> str:
    try:
        return commits.parse(text, shortest=commits.FULL)
    except commits.InvalidCommitError as exc:
        raise argparse.ArgumentTypeError(f"a full commit id: {exc}") from None


def command(container: Container, args: argparse.Namespace) -> int:
    from connector.app.cli import sample_follow as follow

    settings = container.settings
    sample = Sample(
        cluster=args.cluster or settings.default_cluster,
        env=args.env or settings.default_env,
        commit=args.commit or random_commit(),
        phase=args.phase,
    )
    key = signing_key(settings, sample.cluster)
    url, function_key = _target(args)
    base = follow.api_base(url)
    if args.gate:
        print(f"registering a gate on environment {sample.env}, commit {sample.commit} (POST "
              "/api/gates, as a pipeline's agentless task would)")  # fmt: skip
        status, answer = follow.register_gate(
            base, function_key, settings.azdo_org_url, sample.env, sample.commit
        )
        print(f"  {status or 'no answer'} {json.dumps(answer)}")
        if not 200 <= status < 300:
            return _refused(status, url)
    print(f"sending a {sample.phase} rollout of commit {sample.commit} to {_safe_url(url)}")
    answers = send(sample, url=url, key=key, function_key=function_key)
    print("\n".join(describe(answers)))
    accepted = len(answers) == len(_ROLLOUTS[sample.phase]) and all(
        200 <= a.status < 300 for a in answers
    )
    if not accepted:
        return _refused(answers[-1].status, url)
    return _follow(follow, base, function_key, sample, gated=args.gate, trial=settings.trial_mode)


def _follow(
    follow: Any, base: str, key: str | None, sample: Sample, *, gated: bool, trial: bool
) -> int:
    """Show what the app made of the rollout. Informational (the events were accepted) unless
    a gate was asked for: then it fails when the gate did not complete."""
    end_phase = {"progressing": "pending"}.get(sample.phase, sample.phase)
    print(f"following GET /api/deployments/{sample.commit} until it settles")
    status, view = follow.follow(
        base, key, sample.commit, lambda v: follow.settled(v, end_phase, gated)
    )
    if status != 200:
        print(f"  the deployments view answered {status or 'nothing'}: {json.dumps(view)}")
        return FAILED if gated else 0
    print("\n".join(follow.describe(view)))
    if trial:
        print(TRIAL_NOTE)
    if not follow.settled(view, end_phase, gated):
        print(f"not settled after {follow.FOLLOW_TIMEOUT_SECONDS:.0f} s: see the app's log")
        return FAILED if gated else 0
    return 0


def _target(args: argparse.Namespace) -> tuple[str, str | None]:
    """The URL and function key: as given, else those of a local host that these settings
    started (`python -m connector serve` writes them), else Core Tools' default URL."""
    from connector.app.local import serve as local_serve

    function_key = args.code or getattr(args, "environ", {}).get(FUNCTION_KEY_SETTING) or None
    if args.url:
        return args.url, function_key
    running = local_serve.running_host(getattr(args, "settings", None))
    if running is None:
        return DEFAULT_URL, function_key
    return running["url"] + "/api/flux", function_key or running["function_key"]


def _refused(status: int, url: str) -> int:
    if status == 0:
        print(
            f"no app answers at {_safe_url(url)}. Start one: `make run` (or "
            "`.venv/bin/python -m connector serve --settings local.settings.json`), "
            "then send again."
        )
    return FAILED


def _safe_url(url: str) -> str:
    """The URL without its query (a `?code=` function key must not be printed)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
