"""`doctor` end to end: Azurite, the loopback Azure DevOps, the CLI and `GET /api/doctor`.

Green against a healthy set-up; red, naming the failing check, with a wrong PAT, an unknown
organisation, project or repository, a storage key that cannot write, a queue without sessions.
Only the Service Bus administration client is a fake (behind `QueueAdmin`).
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import azure.functions as func
import pytest
from azure.core.exceptions import ClientAuthenticationError, ResourceNotFoundError

import function_app
from connector.app.cli.main import main
from connector.app.root import bootstrap
from connector.app.root.bootstrap import Container
from connector.settings import Settings
from tests.azurite import KEY
from tests.conftest import BASE_SETTINGS, assert_contract_kept
from tests.fakes.azdo_server import FakeAzureDevOps
from tests.unit.test_function_metadata import trigger
from tests.world import PAT, PROJECT, REPO

pytestmark = pytest.mark.azurite

COMMIT = "ab" * 20
HOOK_SECRET = "hook-secret-value-5150"
SB_KEY = "servicebus-shared-access-key-4242="
SB_CONNECTION = (
    "Endpoint=sb://fabrikam.servicebus.windows.net/;SharedAccessKeyName=app;"
    f"SharedAccessKey={SB_KEY}"
)
PREFIXES = ("settings.", "storage.", "servicebus.", "devops.", "spektate.")


@dataclass
class Queue:
    requires_session: bool | None = True
    requires_duplicate_detection: bool | None = True


class FakeQueueAdmin:
    """`QueueAdmin`: answers one queue's settings, or raises what the SDK raises."""

    def __init__(self, queue: Queue | None = None, error: Exception | None = None) -> None:
        self.queue = queue or Queue()
        self.error = error
        self.asked: list[str] = []

    def get_queue(self, queue_name: str) -> Queue:
        self.asked.append(queue_name)
        if self.error is not None:
            raise self.error
        return self.queue


@pytest.fixture
def azdo(request: pytest.FixtureRequest) -> Iterator[FakeAzureDevOps]:
    with FakeAzureDevOps(pat=PAT) as fake:
        fake.projects = frozenset({PROJECT})
        fake.add_repository(REPO)
        fake.add_commit(REPO, COMMIT, "manifests for dev")
        yield fake
    assert_contract_kept(fake, request)


@pytest.fixture
def admin() -> FakeQueueAdmin:
    return FakeQueueAdmin()


@pytest.fixture
def settings(azdo: FakeAzureDevOps, azurite_connection: str) -> dict[str, str]:
    """A healthy deployment's app settings, state tables unique to the test."""
    return {
        **BASE_SETTINGS,
        "AZDO_ORG_URL": azdo.org_url,
        "AZDO_PROJECT": PROJECT,
        "AZDO_GITOPS_REPO": REPO,
        "AZDO_PAT": PAT,
        "AZDO_HOOK_SECRET": HOOK_SECRET,
        "STATE_STORAGE": azurite_connection,
        "STATE_TABLE_PREFIX": "doc" + uuid.uuid4().hex[:12],
        "ServiceBusConnection": SB_CONNECTION,
    }


@pytest.fixture
def doctor(admin: FakeQueueAdmin, capsys: pytest.CaptureFixture[str]):
    """Run `python -m connector doctor --json` in-process; the exit code and the checks by name."""

    def _run(environ: dict[str, str]) -> tuple[int, dict[str, dict]]:
        code = main(
            ["doctor", "--json"],
            environ=environ,
            make_container=lambda s: Container(s, queue_admin=admin),
        )
        out = capsys.readouterr().out
        return code, {c["check"]: c for c in json.loads(out)}

    return _run


def failing(checks: dict[str, dict]) -> list[str]:
    return [name for name, c in checks.items() if not c["ok"]]


# --- green ---------------------------------------------------------------------------------------


def test_green_against_azurite_and_the_loopback_azure_devops(doctor, settings, azdo, admin):
    code, checks = doctor(settings)
    assert failing(checks) == [], checks
    assert code == 0
    assert {
        "settings.complete",
        "settings.consistent",
        "settings.credentials",
        "storage.reachable",
        "storage.write",
        "storage.clusters",
        "servicebus.queue",
        "devops.organization",
        "devops.credential",
        "devops.project",
        "devops.repository",
        "devops.commits",
        "devops.statuses",
        "devops.pull-requests",
        "devops.plan-route",
        "devops.hook-secret",
        "spektate.table",
    } == set(checks)
    assert all(name.startswith(PREFIXES) for name in checks)
    assert admin.asked == ["flux-events"]
    assert COMMIT[:12] in checks["devops.commits"]["detail"]


def test_the_azure_devops_checks_make_the_documented_reads(doctor, settings, azdo):
    doctor(settings)
    [commits] = [c for c in azdo.calls("GET") if c.path.endswith(f"/repositories/{REPO}/commits")]
    assert commits.query["searchCriteria.$top"] == "1"
    assert commits.status == 200
    [statuses] = azdo.calls("GET", f"/commits/{COMMIT}/statuses")
    assert (statuses.query["top"], statuses.status) == ("1", 200)
    [query] = azdo.calls("POST", "/pullrequestquery")
    assert query.status == 200
    assert query.json["queries"][0]["type"] == "lastMergeCommit"
    [plan] = azdo.calls("GET", "/distributedtask/hubs/build/plans/")
    assert plan.status == 404
    assert not azdo.calls("POST", "/statuses")  # doctor writes nothing to Azure DevOps


def test_the_storage_probe_row_is_gone_afterwards(doctor, settings, azurite_connection):
    from connector.storage.rows import connect

    _code, checks = doctor(settings)
    assert checks["storage.write"]["ok"]
    table = connect(connection_string=azurite_connection).get_table_client(
        settings["STATE_TABLE_PREFIX"] + "deployments"
    )
    assert list(table.query_entities("PartitionKey eq 'doctor'")) == []


def test_text_output_one_line_per_check(admin, settings, capsys):
    code = main(
        ["doctor"], environ=settings, make_container=lambda s: Container(s, queue_admin=admin)
    )
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[-1] == "all checks passed (1 skipped)"
    checks = list(lines[:-2])
    assert len(checks) == 17
    assert all(line.split()[1].startswith(PREFIXES) for line in checks)
    verdicts = {line.split()[1]: line.split()[0] for line in checks}
    assert verdicts.pop("spektate.table") == "SKIP"  # not configured: shown, never "OK"
    assert set(verdicts.values()) == {"OK"}


# --- red, naming the failing check ---------------------------------------------------------------


def test_wrong_pat_fails_the_credential(doctor, settings):
    code, checks = doctor({**settings, "AZDO_PAT": "wrong-pat-0000000000"})
    assert code == 3
    assert checks["devops.organization"]["ok"]
    assert not checks["devops.credential"]["ok"]
    assert "401" in checks["devops.credential"]["detail"]
    assert "AZDO_PAT" in checks["devops.credential"]["remedy"]
    assert checks["devops.repository"]["detail"] == "not verified: devops.credential failed"
    assert not checks["devops.plan-route"]["ok"]  # not verified without a credential
    assert checks["storage.write"]["ok"]  # the other checks still ran


def test_unknown_organisation_fails_the_organisation(doctor, settings, azdo):
    other = azdo.org_url.replace(f"/{azdo.organization}/", "/contoso/")
    code, checks = doctor({**settings, "AZDO_ORG_URL": other})
    assert code == 3
    assert failing(checks)[0] == "devops.organization"
    assert "404" in checks["devops.organization"]["detail"]
    assert "AZDO_ORG_URL" in checks["devops.organization"]["remedy"]


def test_unreachable_organisation_fails_the_organisation(settings, admin, capsys):
    import socket

    from connector.devops.client import AzureDevOpsClient

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/fabrikam/"
    # The app's client, without its retries' back-off.
    client = AzureDevOpsClient(url, PROJECT, pat=PAT, retry_total=0)
    code = main(
        ["doctor", "--json"],
        environ={**settings, "AZDO_ORG_URL": url},
        make_container=lambda s: Container(s, queue_admin=admin, devops=client),
    )
    checks = {c["check"]: c for c in json.loads(capsys.readouterr().out)}
    assert code == 3
    assert failing(checks)[0] == "devops.organization"
    assert "ServiceRequestError" in checks["devops.organization"]["detail"]
    # Nothing else can answer: the later checks are not tried (and not waited for).
    assert checks["devops.plan-route"]["detail"] == "not verified: devops.organization failed"


class NoToken:
    """A `TokenCredential` whose identity endpoint refuses, as without an assigned identity."""

    def get_token(self, *scopes: str, **kwargs: object) -> None:
        raise ClientAuthenticationError("ManagedIdentityCredential: no identity assigned")


def test_identity_without_a_token_fails_the_credential(settings, admin, capsys):
    settings.pop("AZDO_PAT")
    code = main(
        ["doctor", "--json"],
        environ=settings,
        make_container=lambda s: Container(s, queue_admin=admin, credential=NoToken()),
    )
    checks = {c["check"]: c for c in json.loads(capsys.readouterr().out)}
    assert code == 3
    assert failing(checks)[0] == "devops.credential"
    assert "no Azure credential gave a token" in checks["devops.credential"]["detail"]
    assert "az login" in checks["devops.credential"]["remedy"]
    assert "\n" not in checks["devops.credential"]["detail"]
    # Nothing was sent, so the organisation is not reported as answering.
    assert checks["devops.organization"]["skipped"]
    assert "not reached" in checks["devops.organization"]["detail"]


def test_trial_mode_without_credentials_skips_azure_devops(doctor, settings, azdo):
    for name in ("AZDO_PAT", "AZDO_HOOK_SECRET"):
        settings.pop(name)
    code, checks = doctor({**settings, "AZDO_DRY_RUN": "true"})
    assert code == 0
    devops = {n: c for n, c in checks.items() if n.startswith("devops.")}
    assert len(devops) == 9
    assert all(c["skipped"] and c["detail"].startswith("skipped: trial") for c in devops.values())
    assert azdo.calls() == []  # nothing reached, nothing claimed


def test_the_local_queue_is_checked_not_service_bus(doctor, settings, admin, tmp_path):
    settings.pop("ServiceBusConnection")
    code, checks = doctor({**settings, "LOCAL_QUEUE_PATH": str(tmp_path / "q.sqlite")})
    assert code == 0
    assert checks["servicebus.queue"]["detail"].startswith(f"local queue {tmp_path}")
    assert admin.asked == []


def test_the_emulator_is_asked_over_plain_http_on_its_management_port(settings, capsys):
    """azure-servicebus's administration client always builds https://<host>; for the
    emulator the connector rewrites it to http on the emulator's management port."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    asked: list[str] = []

    class Emulator(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = EMULATOR_QUEUE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/atom+xml;type=entry;charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Emulator)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    connection = (
        f"Endpoint=sb://127.0.0.1:{server.server_port};SharedAccessKeyName=RootManageSharedAccessKey;"
        "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;"
    )
    try:
        code = main(["doctor", "--json"], environ={**settings, "ServiceBusConnection": connection})
    finally:
        server.shutdown()
        server.server_close()
    checks = {c["check"]: c for c in json.loads(capsys.readouterr().out)}
    assert checks["servicebus.queue"]["ok"], checks["servicebus.queue"]
    assert asked[0].startswith("/flux-events?")
    assert code == 0


# The ATOM entry Service Bus answers for Queues - Get (Learn, Service Bus REST "Get Entity"),
# the two properties doctor reads.
EMULATOR_QUEUE = (
    '<entry xmlns="http://www.w3.org/2005/Atom"><id>https://h/flux-events</id>'
    '<title type="text">flux-events</title><updated>2026-01-01T00:00:00Z</updated>'
    '<content type="application/xml"><QueueDescription xmlns="http://schemas.microsoft.com/'
    'netservices/2010/10/servicebus/connect" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">'
    "<RequiresDuplicateDetection>true</RequiresDuplicateDetection>"
    "<RequiresSession>true</RequiresSession></QueueDescription></content></entry>"
)


def test_unknown_project_fails_the_project(doctor, settings):
    code, checks = doctor({**settings, "AZDO_PROJECT": "no-such-project"})
    assert code == 3
    assert failing(checks)[0] == "devops.project"
    assert "TF200016" in checks["devops.project"]["detail"]
    assert [checks[n]["ok"] for n in ("devops.organization", "devops.credential")] == [True, True]


def test_unknown_repository_fails_the_repository(doctor, settings):
    code, checks = doctor({**settings, "AZDO_GITOPS_REPO": "no-such-repo"})
    assert code == 3
    assert failing(checks)[0] == "devops.repository"
    assert "TF401019" in checks["devops.repository"]["detail"]
    assert "AZDO_GITOPS_REPO" in checks["devops.repository"]["remedy"]


def test_storage_it_cannot_write_fails_storage_and_nothing_else(doctor, settings):
    wrong_key = base64.b64encode(b"not the account key " * 3).decode()
    wrong = settings["STATE_STORAGE"].replace(KEY, wrong_key)
    assert wrong != settings["STATE_STORAGE"]
    code, checks = doctor({**settings, "STATE_STORAGE": wrong})
    assert code == 3
    assert set(failing(checks)) == {"storage.reachable", "storage.write"}
    assert "403" in checks["storage.write"]["detail"]
    assert wrong_key not in json.dumps(checks)


@pytest.mark.parametrize(
    ("queue", "missing"),
    [
        (Queue(requires_session=False), "sessions"),
        (Queue(requires_duplicate_detection=False), "duplicate detection"),
    ],
)
def test_queue_without_sessions_or_duplicate_detection_fails(
    doctor, settings, admin, queue, missing
):
    admin.queue = queue
    code, checks = doctor(settings)
    assert code == 3
    assert failing(checks) == ["servicebus.queue"]
    assert missing in checks["servicebus.queue"]["detail"]


def test_no_manage_right_is_a_named_skip_not_a_failure(doctor, settings, admin):
    refused = ClientAuthenticationError("Unauthorized: Manage,EntityRead claims required")
    refused.status_code = 401
    admin.error = refused
    code, checks = doctor(settings)
    assert code == 0
    assert checks["servicebus.queue"]["ok"]
    assert checks["servicebus.queue"]["skipped"]
    assert checks["servicebus.queue"]["detail"].startswith("skipped: no Manage right")


def test_missing_queue_fails(doctor, settings, admin):
    admin.error = ResourceNotFoundError("queue not found")
    _code, checks = doctor(settings)
    assert failing(checks) == ["servicebus.queue"]
    assert "does not exist" in checks["servicebus.queue"]["detail"]


def test_a_check_that_raises_is_isolated(doctor, settings, admin):
    admin.error = RuntimeError("boom")
    code, checks = doctor(settings)
    assert code == 3
    assert failing(checks) == ["servicebus"]
    assert checks["servicebus"]["detail"] == "RuntimeError: boom"
    assert checks["devops.plan-route"]["ok"]


def test_plan_route_refused_names_status_and_message(doctor, settings, azdo):
    azdo.inject("/plans/", 400, method="GET")
    _code, checks = doctor(settings)
    assert failing(checks) == ["devops.plan-route"]
    assert "400: Injected 400." in checks["devops.plan-route"]["detail"]


def test_missing_hook_secret_fails(doctor, settings):
    settings.pop("AZDO_HOOK_SECRET")
    _code, checks = doctor(settings)
    assert failing(checks) == ["devops.hook-secret"]


def test_incomplete_settings_name_what_is_missing(doctor, settings):
    settings.pop("AZDO_GITOPS_REPO")
    code, checks = doctor(settings)
    assert code == 3
    assert "AZDO_GITOPS_REPO" in checks["settings.complete"]["detail"]
    assert not checks["devops.organization"]["ok"]


def test_settings_that_do_not_parse_are_a_failing_check_not_a_traceback(doctor, settings, capsys):
    code, checks = doctor({**settings, "GATE_TIMEOUT_MINUTES": "0"})
    assert code == 3
    assert list(checks) == ["settings.complete"]
    assert "GATE_TIMEOUT_MINUTES" in checks["settings.complete"]["detail"]
    assert "Traceback" not in capsys.readouterr().err


def test_inconsistent_settings(doctor, settings):
    _code, checks = doctor({**settings, "PR_NUMBER_PATTERNS": '["(unclosed", "no group"]'})
    assert failing(checks) == ["settings.consistent"]
    detail = checks["settings.consistent"]["detail"]
    assert "PR_NUMBER_PATTERNS[0] is not a valid" in detail
    assert "PR_NUMBER_PATTERNS[1] has no group" in detail


def test_trial_mode_still_checks_azure_devops_with_reads(doctor, settings, azdo):
    code, checks = doctor({**settings, "AZDO_DRY_RUN": "true"})
    assert code == 0
    assert "trial mode" in checks["devops.organization"]["detail"]
    assert azdo.calls("GET", "/commits")
    code, checks = doctor({**settings, "AZDO_DRY_RUN": "true", "AZDO_PAT": "wrong-pat-000000"})
    assert failing(checks)[0] == "devops.credential"


# --- Spektate ------------------------------------------------------------------------------------


def test_spektate_table_reachable_when_configured(doctor, settings, azurite_connection):
    from connector.storage.rows import connect

    table = "spk" + uuid.uuid4().hex[:10]
    spektate = {
        "SPEKTATE_STORAGE": azurite_connection,
        "SPEKTATE_PARTITION_KEY": "p",
        "SPEKTATE_TABLE": table,
    }
    code, checks = doctor({**settings, **spektate})
    assert failing(checks) == ["spektate.table"]
    assert f"table {table} does not exist" in checks["spektate.table"]["detail"]
    connect(connection_string=azurite_connection).create_table(table)
    code, checks = doctor({**settings, **spektate})
    assert code == 0
    assert checks["spektate.table"]["detail"] == f"table {table} answers"


# --- secrets -------------------------------------------------------------------------------------


def test_no_secret_is_ever_printed(admin, settings, capsys, caplog):
    # The Service Bus SDK's error carries the key: it must come out masked.
    admin.error = RuntimeError(f"could not connect with {SB_CONNECTION}")
    settings = {**settings, "AZDO_PAT": "wrong-pat-secret-99999"}
    secrets = ["wrong-pat-secret-99999", HOOK_SECRET, SB_KEY, KEY, BASE_SETTINGS["FLUX_HMAC_KEY"]]
    caplog.set_level(logging.DEBUG)
    for argv in (["doctor"], ["doctor", "--json"]):
        main(argv, environ=settings, make_container=lambda s: Container(s, queue_admin=admin))
        out, err = capsys.readouterr()
        printed = out + err + caplog.text
        assert "***" in out
        for secret in secrets:
            assert secret not in printed


# --- HTTP ----------------------------------------------------------------------------------------


def http_get() -> func.HttpRequest:
    return func.HttpRequest(method="GET", url="/api/doctor", route_params={}, body=b"")


def test_route_is_an_admin_get():
    t = trigger("doctor")
    assert (t["route"], t["authLevel"], t["methods"]) == ("doctor", "ADMIN", ["GET"])


def test_http_answer_is_the_json_list_200_when_green(settings, admin):
    bootstrap.override(Container(Settings.from_env(settings), queue_admin=admin))
    try:
        response = function_app.doctor(http_get())
    finally:
        bootstrap.override(None)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = json.loads(response.get_body())
    assert isinstance(body, list)
    assert all(set(item) == {"check", "ok", "detail", "remedy", "skipped"} for item in body)
    assert all(item["ok"] for item in body)


def test_http_answer_503_naming_the_failing_check(settings, admin):
    settings = {**settings, "AZDO_PAT": "wrong-pat-0000000000"}
    bootstrap.override(Container(Settings.from_env(settings), queue_admin=admin))
    try:
        response = function_app.doctor(http_get())
    finally:
        bootstrap.override(None)
    assert response.status_code == 503
    body = json.loads(response.get_body())
    assert next(c["check"] for c in body if not c["ok"]) == "devops.credential"
    assert "wrong-pat-0000000000" not in response.get_body().decode()


def test_http_answer_with_settings_that_do_not_parse(monkeypatch):
    monkeypatch.setenv("GATE_TIMEOUT_MINUTES", "0")
    bootstrap.override(Container())
    try:
        response = function_app.doctor(http_get())
    finally:
        bootstrap.override(None)
    assert response.status_code == 503
    [check] = json.loads(response.get_body())
    assert (check["check"], check["ok"]) == ("settings.complete", False)


# --- three repositories --------------------------------------------------------------------------


def test_an_unlinked_newest_manifests_commit_fails_the_hld_link_check(doctor, settings, azdo):
    azdo.add_repository("hld")
    code, checks = doctor({**settings, "AZDO_PR_REPO": "hld"})
    check = checks["devops.hld-link"]
    assert not check["ok"]
    assert f"manifests commit {COMMIT[:8]} is not linked" in check["detail"]
    assert "HLD-Commit" in check["remedy"]
    assert code != 0


def test_a_linked_newest_manifests_commit_passes_the_hld_link_check(doctor, settings, azdo):
    hld = "1" * 40
    azdo.add_repository("hld")
    azdo.add_commit("hld", hld, "Merged PR 42: x")
    azdo.add_commit(REPO, "2" * 40, f"Render dev\n\nHLD-Commit: {hld}", parents=[COMMIT])
    _code, checks = doctor({**settings, "AZDO_PR_REPO": "hld"})
    assert checks["devops.hld-link"]["ok"], checks["devops.hld-link"]
    assert "rendered from HLD 11111111 (trailer)" in checks["devops.hld-link"]["detail"]
    assert "devops.hld-link" not in doctor(settings)[1]  # one repository: no such check
