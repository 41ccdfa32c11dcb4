"""The connector's configuration: every app setting it reads, typed and read once.

App settings arrive as environment variables (Azure Functions app settings, or
`local.settings.json` under Core Tools). The names below are the contract with
`local.settings.sample.json`, the Bicep template and the README.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Json,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from connector.core.environments import EnvironmentSpec
from connector.core.errors import ConnectorError
from connector.keyrings import ArgoInstance, argocd_instances, cluster_keys

# Names of settings read by the Functions host itself (bindings, storage), not by our code.
HOST_SETTINGS = (
    "AzureWebJobsStorage",
    "FUNCTIONS_WORKER_RUNTIME",
    "ServiceBusConnection__credential",  # `managedidentity` for the trigger's identity connection
)


class SettingsError(ConnectorError, ValueError):
    """A setting is missing or malformed; the message names it and never echoes its value."""


class Settings(BaseModel):
    """All settings. Field aliases are the app setting names."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    # --- Ingest -------------------------------------------------------------------------
    # One key per cluster (docs/security.md): JSON {"<cluster>": "<key>" | ["<key>", ...]}.
    flux_cluster_keys: SecretStr | None = Field(default=None, alias="FLUX_CLUSTER_KEYS")
    # The shared key of older installs: any holder may speak for any cluster (a warning says so).
    flux_hmac_keys: SecretStr | None = Field(default=None, alias="FLUX_HMAC_KEY")
    flux_allow_unsigned: bool = Field(default=False, alias="FLUX_ALLOW_UNSIGNED")
    default_cluster: str = Field(default="", alias="DEFAULT_CLUSTER")
    default_env: str = Field(default="", alias="DEFAULT_ENV")
    # Argo CD's webhook: Bearer token or basic-auth password (comma-separated for rotation).
    argocd_webhook_secret: SecretStr | None = Field(default=None, alias="ARGOCD_WEBHOOK_SECRET")
    # One secret per Argo CD instance, bound to the clusters it may speak for (docs/argocd.md).
    argocd_instances_json: SecretStr | None = Field(default=None, alias="ARGOCD_INSTANCES")

    # --- Service Bus --------------------------------------------------------------------
    servicebus_queue: str = Field(default="flux-events", alias="SERVICEBUS_QUEUE")
    servicebus_connection: SecretStr | None = Field(default=None, alias="ServiceBusConnection")
    servicebus_namespace: str = Field(
        default="", alias="ServiceBusConnection__fullyQualifiedNamespace"
    )
    servicebus_client_id: str = Field(default="", alias="ServiceBusConnection__clientId")
    # The embedded local host's queue file (connector/queue/local.py) instead of Service Bus;
    # set by `python -m connector serve`, never in Azure.
    local_queue_path: str = Field(default="", alias="LOCAL_QUEUE_PATH")

    # --- State store (Azure Table) ------------------------------------------------------
    webjobs_storage: SecretStr | None = Field(default=None, alias="AzureWebJobsStorage")
    webjobs_storage_account: str = Field(default="", alias="AzureWebJobsStorage__accountName")
    state_storage: SecretStr | None = Field(default=None, alias="STATE_STORAGE")
    state_storage_account_url: str = Field(default="", alias="STATE_STORAGE__accountUrl")
    state_table_prefix: str = Field(default="gitops", alias="STATE_TABLE_PREFIX")
    # Days before finished state expires (connector.storage.retention; the daily `cleanup`).
    state_retention_days: int = Field(default=30, ge=1, le=3650, alias="STATE_RETENTION_DAYS")
    # Days a cluster of an environment not in ENVIRONMENTS stays expected after its last report
    # (connector.storage.clusters).
    cluster_report_window_days: float = Field(
        default=3, gt=0, le=365, alias="CLUSTER_REPORT_WINDOW_DAYS"
    )

    # --- Identity -----------------------------------------------------------------------
    azure_client_id: str = Field(default="", alias="AZURE_CLIENT_ID")

    # --- Azure DevOps -------------------------------------------------------------------
    azdo_org_url: str = Field(default="", alias="AZDO_ORG_URL")
    azdo_project: str = Field(default="", alias="AZDO_PROJECT")
    azdo_gitops_repo: str = Field(default="", alias="AZDO_GITOPS_REPO")
    azdo_pr_repo: str = Field(default="", alias="AZDO_PR_REPO")
    azdo_pat: SecretStr | None = Field(default=None, alias="AZDO_PAT")
    trial_mode: bool = Field(default=False, alias="AZDO_DRY_RUN")  # writes logged, not sent
    azdo_hook_secret: SecretStr | None = Field(default=None, alias="AZDO_HOOK_SECRET")
    azdo_api_version: str = Field(default="7.1", alias="AZDO_API_VERSION")
    status_genre: str = Field(default="flux", alias="STATUS_GENRE")
    status_target_url: str = Field(default="", alias="STATUS_TARGET_URL")

    # --- Environments and gates ---------------------------------------------------------
    environments: Json[dict[str, EnvironmentSpec]] = Field(
        default_factory=dict, alias="ENVIRONMENTS"
    )
    gate_timeout_minutes: int = Field(default=60, ge=1, le=72 * 60, alias="GATE_TIMEOUT_MINUTES")
    gate_failure_grace_seconds: int = Field(
        default=0, ge=0, le=24 * 3600, alias="GATE_FAILURE_GRACE_SECONDS"
    )
    # Extra patterns: `Merged PR N:` and `Merge pull request N from` are always recognised,
    # anywhere in the message (connector/core/links.py); every claim is verified.
    pr_number_patterns: Json[list[str]] = Field(
        default_factory=list,
        alias="PR_NUMBER_PATTERNS",
    )
    legacy_callback_environment: str = Field(default="", alias="LEGACY_CALLBACK_ENVIRONMENT")
    gate_use_job_token: bool = Field(default=False, alias="GATE_USE_JOB_TOKEN")
    # Keyless pipelines: the only caller of the pipeline routes; empty: function keys.
    pipeline_client_id: str = Field(default="", alias="PIPELINE_CLIENT_ID")
    # Keyless mode: the app registration people sign in to for the on-call pages (/api/ui).
    ui_client_id: str = Field(default="", alias="UI_CLIENT_ID")

    # --- Spektate and subscribers -------------------------------------------------------
    spektate_storage: SecretStr | None = Field(default=None, alias="SPEKTATE_STORAGE")
    spektate_storage_account_url: str = Field(default="", alias="SPEKTATE_STORAGE__accountUrl")
    spektate_table: str = Field(default="flux", alias="SPEKTATE_TABLE")
    spektate_deployments_table: str = Field(default="", alias="SPEKTATE_DEPLOYMENTS_TABLE")
    spektate_partition_key: str = Field(default="", alias="SPEKTATE_PARTITION_KEY")
    subscribers: Json[list[str]] = Field(default_factory=list, alias="SUBSCRIBERS")
    subscribers_hmac_key: SecretStr | None = Field(default=None, alias="SUBSCRIBERS_HMAC_KEY")

    # --- Telemetry ----------------------------------------------------------------------
    appinsights_connection_string: str = Field(
        default="", alias="APPLICATIONINSIGHTS_CONNECTION_STRING"
    )
    otlp_endpoint: str = Field(default="", alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    # Read by connector.console_logs before the settings are; declared here to be validated.
    log_format: Literal["text", "json"] | None = Field(default=None, alias="LOG_FORMAT")
    # Read by connector.telemetry before the settings are; declared here to be validated.
    azure_sdk_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="WARNING", alias="AZURE_SDK_LOG_LEVEL"
    )
    connector_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="WARNING", alias="CONNECTOR_LOG_LEVEL"
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        source = os.environ if environ is None else environ
        # Empty strings mean "not set", as in the portal where a setting can exist but be blank.
        values = {k: v for k, v in source.items() if v != ""}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise SettingsError(_describe(exc)) from None

    @field_validator("flux_cluster_keys", "argocd_instances_json")
    @classmethod
    def _keyring_shape(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        """Checked when the settings are read, so a malformed keyring stops the app at start
        (naming the setting, never a key) instead of refusing every event later."""
        if value is not None:
            text = value.get_secret_value()
            if info.field_name == "flux_cluster_keys":
                cluster_keys(text)
            else:
                argocd_instances(text)
        return value

    @model_validator(mode="after")
    def _own_keys_are_not_shared(self) -> Settings:
        """A cluster's key also in the shared FLUX_HMAC_KEY would let it sign unbound."""
        shared = set(self.hmac_keys)
        clusters = sorted(c for c, keys in self.cluster_keys.items() if shared & set(keys))
        if clusters:
            raise ValueError(
                f"FLUX_HMAC_KEY holds the key of cluster(s) {', '.join(clusters)} of "
                "FLUX_CLUSTER_KEYS: a cluster's key must be its own"
            )
        return self

    @property
    def cluster_keys(self) -> dict[str, tuple[bytes, ...]]:
        """FLUX_CLUSTER_KEYS: each cluster's accepted keys (more than one while rotating)."""
        if self.flux_cluster_keys is None:
            return {}
        return cluster_keys(self.flux_cluster_keys.get_secret_value())

    @property
    def argocd_instances(self) -> dict[str, ArgoInstance]:
        """ARGOCD_INSTANCES: each Argo CD instance's secrets and the clusters it speaks for."""
        if self.argocd_instances_json is None:
            return {}
        return argocd_instances(self.argocd_instances_json.get_secret_value())

    @property
    def hmac_keys(self) -> tuple[bytes, ...]:
        """The accepted HMAC keys (rotation: comma-separated). Keys are raw bytes, not trimmed."""
        if self.flux_hmac_keys is None:
            return ()
        return tuple(k.encode() for k in self.flux_hmac_keys.get_secret_value().split(",") if k)

    @property
    def argocd_secrets(self) -> tuple[bytes, ...]:
        """The accepted Argo CD webhook secrets (rotation: comma-separated), as raw bytes."""
        if self.argocd_webhook_secret is None:
            return ()
        text = self.argocd_webhook_secret.get_secret_value()
        return tuple(k.encode() for k in text.split(",") if k)

    @property
    def pr_repo(self) -> str:
        return self.azdo_pr_repo or self.azdo_gitops_repo


def _describe(exc: ValidationError) -> str:
    """Name each bad setting and the problem, without echoing the (possibly secret) value."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        name = ".".join(str(p) for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{name}: {message}" if name else message)  # a check across settings
    return "invalid settings: " + "; ".join(parts)


def setting_names() -> frozenset[str]:
    """Every app setting name the connector's code reads (used by the infra tests)."""
    return frozenset(f.alias for f in Settings.model_fields.values() if f.alias)
