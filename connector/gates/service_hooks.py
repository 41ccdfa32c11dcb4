"""`POST /api/devops/events`: Azure DevOps service hooks ("Pull request updated").

Protected by the function key and by `AZDO_HOOK_SECRET`, which the service hook sends as the
basic-auth password (any user name). An abandoned PR fails the gates still waiting for it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging

from connector.gates.keeper import GateKeeper
from connector.settings import Settings
from connector.web import Reply, Request

logger = logging.getLogger(__name__)


class ServiceHooks:
    def __init__(self, settings: Settings, keeper: GateKeeper) -> None:
        self._settings = settings
        self._keeper = keeper

    def handle(self, request: Request) -> Reply:
        if request.method.upper() != "POST":
            return Reply(405, {"error": "method not allowed: use POST"})
        secret = self._settings.azdo_hook_secret
        if secret is None:
            return Reply(
                503,
                {"error": "service hooks not configured: set AZDO_HOOK_SECRET"},
                {"Retry-After": "30"},  # a setting must change first
            )
        if not _password_matches(request.headers.get("Authorization"), secret.get_secret_value()):
            return Reply(
                401,
                {"error": "unauthorized: wrong or missing basic-auth password"},
                {"WWW-Authenticate": 'Basic realm="gitops-connector"'},
            )
        try:
            event = json.loads(request.body)
        except ValueError:
            return Reply(400, {"error": "body is not valid JSON"})
        if not isinstance(event, dict):
            return Reply(400, {"error": "body must be a JSON object"})
        return self._on_event(event)

    def _on_event(self, event: dict[str, object]) -> Reply:
        resource = event.get("resource")
        if not isinstance(resource, dict) or not str(event.get("eventType", "")).startswith(
            "git.pullrequest."
        ):
            return Reply(200, {"ignored": "not a pull request event"})
        if resource.get("status") != "abandoned":
            return Reply(200, {"ignored": f"pull request status {resource.get('status')!r}"})
        pr = resource.get("pullRequestId")
        if not isinstance(pr, int) or isinstance(pr, bool):  # JSON true is no PR 1
            return Reply(400, {"error": "resource.pullRequestId must be a number"})
        repo = resource.get("repository")
        names = [str(repo.get(k, "")) for k in ("id", "name")] if isinstance(repo, dict) else []
        failed = self._keeper.abandon(names, pr)
        logger.info("hook.pull_request_abandoned", extra={"pull_request": pr, "gates": failed})
        return Reply(200, {"pullRequestId": pr, "gatesFailed": failed})


def _password_matches(header: str | None, secret: str) -> bool:
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    _, _, password = decoded.partition(":")
    return hmac.compare_digest(password.encode(), secret.encode())
