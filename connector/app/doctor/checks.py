"""The checks of `doctor` for settings, state storage, Service Bus and Spektate (Azure DevOps:
`connector.app.doctor.devops`; the cluster roster: `connector.app.doctor.clusters`), and
`GROUPS`, the order `connector.app.doctor.report` runs them in. Each group takes the app's
`Container` and returns its checks."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Final

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)

from connector.app.doctor.check import Check, CheckGroup, skip
from connector.app.doctor.clusters import stopped_reporting
from connector.app.doctor.devops import devops_checks
from connector.devops.organization import is_organization_url
from connector.queue.admin import emulator_management_port
from connector.settings import Settings, SettingsError
from connector.sources.origins import credential_warnings

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableServiceClient

    from connector.app.root.bootstrap import Container

PROBE_PARTITION: Final = "doctor"
# The state table every event writes; the probe row (partition "doctor", never a commit) lives
# only between its create and delete.
PROBE_TABLE: Final = "deployments"


# --- settings ------------------------------------------------------------------------------------


def settings_checks(container: Container) -> list[Check]:
    s = container.settings
    return [_complete(s), _consistent(s), _credentials(s)]


def _complete(s: Settings) -> Check:
    required = {
        "AZDO_ORG_URL": bool(s.azdo_org_url),
        "AZDO_PROJECT": bool(s.azdo_project),
        "AZDO_GITOPS_REPO": bool(s.azdo_gitops_repo),
        "AzureWebJobsStorage (or STATE_STORAGE, or their __accountName/__accountUrl forms)": bool(
            s.webjobs_storage
            or s.webjobs_storage_account
            or s.state_storage
            or s.state_storage_account_url
        ),
        "ServiceBusConnection (or ServiceBusConnection__fullyQualifiedNamespace)": bool(
            s.servicebus_connection or s.servicebus_namespace or s.local_queue_path
        ),
        "FLUX_CLUSTER_KEYS (or the shared FLUX_HMAC_KEY, or FLUX_ALLOW_UNSIGNED=true)": bool(
            s.cluster_keys or s.hmac_keys or s.flux_allow_unsigned
        ),
    }
    missing = [name for name, present in required.items() if not present]
    if missing:
        return Check(
            "settings.complete",
            False,
            "missing: " + "; ".join(missing),
            "set them as app settings (README, Configuration)",
        )
    return Check("settings.complete", True, "every required setting is set")


def _consistent(s: Settings) -> Check:
    problems = _inconsistencies(s)
    if problems:
        return Check(
            "settings.consistent", False, "; ".join(problems), "correct the named settings"
        )
    notes = []
    if s.trial_mode:
        notes.append("trial mode (AZDO_DRY_RUN): Azure DevOps writes are logged, not sent")
    if s.flux_allow_unsigned and not (s.cluster_keys or s.hmac_keys):
        notes.append("FLUX_ALLOW_UNSIGNED=true: unsigned webhooks are accepted (local trials only)")
    return Check("settings.consistent", True, "; ".join(notes) or "no conflicting settings")


def _credentials(s: Settings) -> Check:
    """Passes with a warning for what keeps working but weakens the gates (shared secrets)."""
    warnings = credential_warnings(s)
    if warnings:
        return Check("settings.credentials", True, "warning: " + "; warning: ".join(warnings))
    clusters, instances = len(s.cluster_keys), len(s.argocd_instances)
    return Check(
        "settings.credentials",
        True,
        f"one key per cluster ({clusters} in FLUX_CLUSTER_KEYS), one secret per Argo CD "
        f"instance ({instances} in ARGOCD_INSTANCES)",
    )


def _inconsistencies(s: Settings) -> list[str]:
    problems = []
    if s.azdo_org_url and not is_organization_url(s.azdo_org_url):
        problems.append("AZDO_ORG_URL is not an https organisation URL (http only to loopback)")
    if s.state_storage is not None and s.state_storage_account_url:
        problems.append("STATE_STORAGE and STATE_STORAGE__accountUrl are both set: choose one")
    if s.spektate_storage is not None and s.spektate_storage_account_url:
        problems.append("SPEKTATE_STORAGE and SPEKTATE_STORAGE__accountUrl are both set")
    spektate = s.spektate_storage is not None or bool(s.spektate_storage_account_url)
    if spektate and not s.spektate_partition_key:
        problems.append("Spektate is configured but SPEKTATE_PARTITION_KEY is not set")
    for index, pattern in enumerate(s.pr_number_patterns):
        try:
            groups = re.compile(pattern).groups
        except re.error:
            problems.append(f"PR_NUMBER_PATTERNS[{index}] is not a valid regular expression")
            continue
        if groups < 1:
            problems.append(f"PR_NUMBER_PATTERNS[{index}] has no group for the PR number")
    return problems


# --- state storage -------------------------------------------------------------------------------


def storage_checks(container: Container) -> list[Check]:
    return [_reachable(container), _writable(container), stopped_reporting(container)]


def _state_table(container: Container) -> TableClient:
    return container.store.table(PROBE_TABLE)  # created here on a first deployment


def _reachable(container: Container) -> Check:
    name = "storage.reachable"
    try:
        table = _state_table(container)
        table.get_entity(PROBE_PARTITION, "absent-" + uuid.uuid4().hex)
    except ResourceNotFoundError:
        return Check(name, True, f"state table {table.table_name} answers")
    except SettingsError as exc:
        return Check(name, False, str(exc), "set AzureWebJobsStorage or STATE_STORAGE")
    except AzureError as exc:
        return Check(name, False, f"state storage: {azure_error(exc)}", _storage_remedy(exc))
    return Check(name, True, f"state table {table.table_name} answers")


def _storage_remedy(exc: AzureError) -> str:
    if isinstance(exc, ServiceRequestError) and re.search(r"127\.0\.0\.1|localhost", str(exc)):
        return "start Azurite (make run starts it; or npx azurite-table) on the port named"
    return _STORAGE_REMEDY


def _writable(container: Container) -> Check:
    name = "storage.write"
    row = "probe-" + uuid.uuid4().hex
    try:
        table = _state_table(container)
        table.create_entity({"PartitionKey": PROBE_PARTITION, "RowKey": row, "by": "doctor"})
        table.get_entity(PROBE_PARTITION, row)
        table.delete_entity(PROBE_PARTITION, row)
    except SettingsError as exc:
        return Check(name, False, str(exc), "set AzureWebJobsStorage or STATE_STORAGE")
    except AzureError as exc:
        detail = f"probe row not written: {azure_error(exc)}"
        return Check(name, False, detail, _storage_remedy(exc))
    return Check(name, True, f"probe row created, read and deleted in {table.table_name}")


_STORAGE_REMEDY: Final = (
    "check the connection string's account key, or grant the app's identity "
    "'Storage Table Data Contributor' on the account, and that the network allows the app"
)


def azure_error(exc: AzureError) -> str:
    """Status, service error code and the message's first line: enough to act on."""
    if isinstance(exc, HttpResponseError):
        code = _error_code(exc) or (exc.reason or "")
        message = (exc.message or "").strip().splitlines()[:1]
        return " ".join([str(exc.status_code), code, *(f"({m})" for m in message)]).strip()
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"


def _error_code(exc: AzureError) -> str:
    # Set by azure-core's HttpResponseError from the `x-ms-error-code` header or the body.
    code = getattr(exc, "error_code", None) or ""
    return str(getattr(code, "value", code))  # azure-data-tables gives a `TableErrorCode`


# --- Service Bus ---------------------------------------------------------------------------------


def servicebus_checks(container: Container) -> list[Check]:
    name = "servicebus.queue"
    queue = container.settings.servicebus_queue
    if path := container.settings.local_queue_path:
        return [_local_queue(path)]
    connection = container.settings.servicebus_connection
    emulator = emulator_management_port(connection.get_secret_value()) if connection else None
    try:
        properties = container.queue_admin.get_queue(queue)
    except (SettingsError, AzureError) as exc:
        return [_queue_refusal(queue, exc, emulator)]
    missing = [
        what
        for what, on in (
            ("sessions", properties.requires_session),
            ("duplicate detection", properties.requires_duplicate_detection),
        )
        if not on
    ]
    if missing:
        detail = f"queue {queue} lacks {' and '.join(missing)}"
        return [Check(name, False, detail, "recreate the queue as infra/main.bicep declares it")]
    return [Check(name, True, f"queue {queue} has sessions and duplicate detection")]


def _queue_refusal(queue: str, exc: SettingsError | AzureError, emulator: int | None) -> Check:
    name = "servicebus.queue"
    if isinstance(exc, SettingsError):
        return Check(name, False, str(exc), "set ServiceBusConnection")
    if isinstance(exc, ResourceNotFoundError):
        return Check(name, False, f"queue {queue} does not exist", _QUEUE_REMEDY)
    if isinstance(exc, HttpResponseError) and exc.status_code in {401, 403}:
        # Reading queue settings needs Manage; the app only needs Send and Listen.
        return skip(name, f"no Manage right to read {queue}'s settings")
    if emulator is not None and isinstance(exc, ServiceRequestError):
        detail = f"the Service Bus emulator's management endpoint (port {emulator}) does not answer"
        return Check(name, False, detail, _EMULATOR_REMEDY)
    return Check(name, False, f"queue {queue}: {azure_error(exc)}", _QUEUE_REMEDY)


def _local_queue(path: str) -> Check:
    from connector.queue.local import LocalQueue
    from connector.queue.sender import QueueUnavailableError

    name = "servicebus.queue"
    try:
        queue = LocalQueue(path)
        waiting = queue.pending()
        queue.close()
    except QueueUnavailableError as exc:
        return Check(name, False, str(exc), "check LOCAL_QUEUE_PATH (a writable file path)")
    detail = f"local queue {path} opens ({waiting} waiting); sessions, duplicates, dead letters"
    return Check(name, True, detail + " as connector/queue/local.py keeps them")


_EMULATOR_REMEDY: Final = (
    "start the emulator: docker compose up -d (Docker running; emulator 2.0 or later answers "
    "management requests); or run the embedded host instead: make run without Docker"
)
_QUEUE_REMEDY: Final = (
    "check SERVICEBUS_QUEUE and the Service Bus connection; deploy infra/main.bicep to create it"
)


# --- Spektate ------------------------------------------------------------------------------------


def spektate_checks(container: Container) -> list[Check]:
    s = container.settings
    if s.spektate_storage is None and not s.spektate_storage_account_url:
        return [skip("spektate.table", "not configured: no Spektate writes")]
    service = _spektate_service(container)
    tables = [("spektate.table", s.spektate_table)]
    if s.spektate_deployments_table:
        tables.append(("spektate.deployments-table", s.spektate_deployments_table))
    return [_table_answers(name, service.get_table_client(table)) for name, table in tables]


def _spektate_service(container: Container) -> TableServiceClient:
    from connector.storage.rows import connect

    s = container.settings
    if s.spektate_storage is not None:
        return connect(connection_string=s.spektate_storage.get_secret_value())
    return connect(account_url=s.spektate_storage_account_url, credential=container.credential)


def _table_answers(name: str, table: TableClient) -> Check:
    """A read of a row that is not there: 404 with `TableNotFound` means no table."""
    try:
        table.get_entity(PROBE_PARTITION, "absent-" + uuid.uuid4().hex)
    except ResourceNotFoundError as exc:
        if _error_code(exc) == "TableNotFound":
            return Check(name, False, f"table {table.table_name} does not exist", _SPEKTATE_REMEDY)
        return Check(name, True, f"table {table.table_name} answers")
    except AzureError as exc:
        return Check(name, False, f"{table.table_name}: {azure_error(exc)}", _SPEKTATE_REMEDY)
    return Check(name, True, f"table {table.table_name} answers")


_SPEKTATE_REMEDY: Final = (
    "check SPEKTATE_STORAGE (or grant the identity 'Storage Table Data Contributor') and the "
    "table names SPEKTATE_TABLE / SPEKTATE_DEPLOYMENTS_TABLE"
)


GROUPS: Final[tuple[tuple[str, CheckGroup], ...]] = (
    ("settings", settings_checks),
    ("storage", storage_checks),
    ("servicebus", servicebus_checks),
    ("devops", devops_checks),
    ("spektate", spektate_checks),
)
