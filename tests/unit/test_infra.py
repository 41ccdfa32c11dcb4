"""Static checks of the Bicep templates in infra/ that checkov cannot make.

checkov (`.ci/checkov.sh`) has no Service Bus checks at all and knows nothing of this app: these
tests parse the Bicep (pycep-parser) and pin what matters here: the queue's sessions, duplicate
detection and dead-lettering, identity-only access everywhere, the Flex Consumption plan, role
assignments, outputs without secrets, and the contract between the app settings in Bicep and the
settings the code reads (`connector.settings.setting_names()`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, cast

import pytest

try:
    from pycep import BicepParser
except ImportError as exc:  # pragma: no cover - a missing dev dependency, said plainly
    raise ImportError("tests/unit/test_infra.py needs pycep-parser (requirements-dev.txt)") from exc

from connector.settings import setting_names

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"

# --- The app-settings contract ----------------------------------------------------------------

# Settings the code reads that must NOT be set in Azure: connection strings for local runs
# (Azurite, the Service Bus emulator). In Azure the identity-based forms next to them are set.
LOCAL_ONLY = {
    "AzureWebJobsStorage": "connection string (UseDevelopmentStorage=true locally); Azure uses "
    "AzureWebJobsStorage__accountName/__credential/__clientId",
    "ServiceBusConnection": "SAS connection string (emulator); the namespace has local auth "
    "disabled, Azure uses ServiceBusConnection__fullyQualifiedNamespace",
    "STATE_STORAGE": "table connection string (Azurite); Azure uses STATE_STORAGE__accountUrl",
    "SPEKTATE_STORAGE": "table connection string (Azurite); Azure uses "
    "SPEKTATE_STORAGE__accountUrl when a Spektate account is given",
    "LOG_FORMAT": "console formatting; unset in Azure keeps the bare event name as the message "
    "(the README's queries) with the fields as customDimensions",
    "LOCAL_QUEUE_PATH": "the embedded local host's queue file (`python -m connector serve` sets "
    "it); Azure uses Service Bus",
}

# Settings set in Bicep that the code does not read: the Functions host and the Python worker do.
HOST_READ = {
    "AzureWebJobsStorage__credential": "host: identity-based host storage",
    "AzureWebJobsStorage__clientId": "host: which user-assigned identity",
    "ServiceBusConnection__credential": "host: identity-based Service Bus trigger connection",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "host/worker: Entra auth of the exporter",
    "PYTHON_ENABLE_OPENTELEMETRY": "worker: the host's trace context per invocation, OTel logs",
    "OTEL_TRACES_SAMPLER": "the app's trace sampler (connector/telemetry.py)",
    "OTEL_TRACES_SAMPLER_ARG": "traces per second the sampler keeps",
}

# Settings set only when the matching parameter is given.
CONDITIONAL = {
    "FLUX_CLUSTER_KEYS",
    "FLUX_HMAC_KEY",
    "ARGOCD_INSTANCES",
    "AZDO_PAT",
    "AZDO_HOOK_SECRET",
    "ARGOCD_WEBHOOK_SECRET",
    "SUBSCRIBERS_HMAC_KEY",
    "SPEKTATE_STORAGE__accountUrl",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "PR_NUMBER_PATTERNS",
}

# Secrets: only ever Key Vault references.
SECRET_SETTINGS = {
    "FLUX_CLUSTER_KEYS",
    "FLUX_HMAC_KEY",
    "ARGOCD_INSTANCES",
    "AZDO_PAT",
    "AZDO_HOOK_SECRET",
    "ARGOCD_WEBHOOK_SECRET",
    "SUBSCRIBERS_HMAC_KEY",
}

# Never on Flex Consumption (or never with identity-only access).
FORBIDDEN_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "APPINSIGHTS_INSTRUMENTATIONKEY",
    "AzureWebJobsFeatureFlags",
}

# --- Roles (built-in role definition ids) ---------------------------------------------------

ROLES = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Azure Service Bus Data Sender": "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39",
    "Azure Service Bus Data Receiver": "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0",
    "Azure Service Bus Data Owner": "090c5cfd-751d-490a-894a-3ce6f1109419",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
}
BROAD_ROLES = {
    "Owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "Contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "User Access Administrator": "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "Storage Account Contributor": "17d1049b-9a84-46fb-8f53-869881c3d3ab",
    "Key Vault Administrator": "00482a5a-887f-4fb3-b363-3b7fe8e74483",
    "Key Vault Secrets Officer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
}

# Expected role assignments per module: {file: {(role, scope symbol, conditional)}}
EXPECTED_ROLE_ASSIGNMENTS = {
    "modules/storage.bicep": {
        ("Storage Blob Data Owner", "account", False),
        ("Storage Table Data Contributor", "account", False),
    },
    "modules/servicebus.bicep": {
        ("Azure Service Bus Data Sender", "queue", False),
        ("Azure Service Bus Data Receiver", "queue", False),
        ("Azure Service Bus Data Owner", "queue", True),
    },
    "modules/monitoring.bicep": {("Monitoring Metrics Publisher", "appInsights", False)},
    "modules/keyvault.bicep": {("Key Vault Secrets User", "vault", False)},
    "modules/spektate-access.bicep": {("Storage Table Data Contributor", "account", False)},
}

# --- Parsing helpers ----------------------------------------------------------------------


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@cache
def _parser() -> BicepParser:
    return BicepParser()


@cache
def parse(rel: str) -> dict[str, Any]:
    """The pycep JSON of infra/<rel>. Identifiers and string literals are both plain str."""
    return cast("dict[str, Any]", _parser().parse(text=(INFRA / rel).read_text(encoding="utf-8")))


def unwrap(config: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(body, conditional) of a resource or module config (`= if (...) { ... }`)."""
    if set(config) == {"condition", "config"}:
        return config["config"], True
    return config, False


def resources(rel: str, rtype: str) -> list[tuple[str, dict[str, Any], bool]]:
    """(symbol, body, conditional) of every resource of that type in infra/<rel>."""
    found = []
    for symbol, res in parse(rel).get("resources", {}).items():
        if res["type"] == rtype:
            body, conditional = unwrap(res["config"])
            found.append((symbol, body, conditional))
    return found


def the_resource(rel: str, rtype: str) -> dict[str, Any]:
    found = [r for r in resources(rel, rtype) if not parse(rel)["resources"][r[0]]["existing"]]
    assert len(found) == 1, f"expected one {rtype} in {rel}, found {len(found)}"
    return found[0][1]


def module(rel: str, symbol: str) -> tuple[dict[str, Any], bool]:
    mod = parse(rel)["modules"][symbol]
    return unwrap(mod["config"])


def param_default(rel: str, name: str) -> Any:
    return parse(rel)["parameters"][name]["default"]


def decorators(rel: str, name: str) -> set[str]:
    return {d["type"] for d in parse(rel)["parameters"][name]["decorators"]}


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def settings_in(node: Any, conditional: bool = False) -> Iterator[tuple[str, Any, bool]]:
    """(name, value, conditional) of every `{ name: '...', value: ... }` in an expression.

    An entry is conditional when it sits in a branch of a `cond ? a : b` expression.
    """
    if isinstance(node, dict):
        if set(node) == {"name", "value"} and isinstance(node["name"], str):
            yield node["name"], node["value"], conditional
            return
        operator = node.get("operator")
        if isinstance(operator, dict) and operator.get("type") == "conditional":
            operands = operator["operands"]
            for branch in ("true_value", "false_value"):
                yield from settings_in(operands[branch], True)
            return
        for value in node.values():
            yield from settings_in(value, conditional)
    elif isinstance(node, list):
        for value in node:
            yield from settings_in(value, conditional)


@cache
def app_settings() -> dict[str, tuple[Any, bool]]:
    """Every app setting of the function app: {name: (value, conditional)}."""
    host = list(settings_in(parse("modules/functionapp.bicep")["variables"]["hostSettings"]))
    connector = list(settings_in(parse("main.bicep")["variables"]["connectorSettings"]))
    names = [name for name, _, _ in host + connector]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"app settings set twice: {duplicates}"
    return {name: (value, cond) for name, value, cond in host + connector}


def iso_seconds(duration: str) -> int:
    """Seconds in an ISO 8601 duration such as PT1H, P1D, PT20S (no years/months)."""
    m = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?", duration)
    assert m, f"not an ISO 8601 duration: {duration!r}"
    days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


# --- Service Bus --------------------------------------------------------------------------


def test_servicebus_namespace_is_standard_and_entra_only() -> None:
    ns = the_resource("modules/servicebus.bicep", "Microsoft.ServiceBus/namespaces")
    # Basic has neither sessions nor duplicate detection.
    assert ns["sku"] == {"name": "Standard", "tier": "Standard"}
    assert ns["properties"]["disableLocalAuth"] is True
    assert ns["properties"]["minimumTlsVersion"] == "1.2"


def test_queue_sessions_duplicate_detection_and_dead_lettering() -> None:
    props = the_resource("modules/servicebus.bicep", "Microsoft.ServiceBus/namespaces/queues")[
        "properties"
    ]
    assert props["requiresSession"] is True
    assert props["requiresDuplicateDetection"] is True
    assert props["deadLetteringOnMessageExpiration"] is True
    # The tunables come from parameters, wired through from main.bicep.
    wiring = {
        "duplicateDetectionHistoryTimeWindow": "duplicateDetectionWindow",
        "maxDeliveryCount": "maxDeliveryCount",
        "lockDuration": "lockDuration",
        "defaultMessageTimeToLive": "messageTimeToLive",
    }
    sb, _ = module("main.bicep", "serviceBus")
    for prop, param in wiring.items():
        assert props[prop] == param
        assert sb["params"][param] == param
    assert sb["params"]["queueName"] == "serviceBusQueueName"


def test_queue_defaults_are_sensible() -> None:
    assert param_default("main.bicep", "serviceBusQueueName") == "flux-events"
    window = iso_seconds(param_default("main.bicep", "duplicateDetectionWindow"))
    # Covers Flux's retry horizon (~30 s) by far; within the broker's 20 s .. 7 days.
    assert 10 * 60 <= window <= 7 * 24 * 3600
    assert 1 <= param_default("main.bicep", "maxDeliveryCount") <= 10
    lock = iso_seconds(param_default("main.bicep", "lockDuration"))
    assert 30 <= lock <= 5 * 60
    # Dead-lettering on expiration needs a finite TTL; at least the default gate timeout.
    ttl = iso_seconds(param_default("main.bicep", "messageTimeToLive"))
    assert 3600 <= ttl <= 14 * 24 * 3600


# --- Storage -----------------------------------------------------------------------------


def test_storage_account_is_identity_only() -> None:
    account = the_resource("modules/storage.bicep", "Microsoft.Storage/storageAccounts")
    props = account["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    container = the_resource(
        "modules/storage.bicep", "Microsoft.Storage/storageAccounts/blobServices/containers"
    )
    assert container["properties"]["publicAccess"] == "None"


# --- Function app ------------------------------------------------------------------------


def test_plan_is_flex_consumption() -> None:
    plan = the_resource("modules/functionapp.bicep", "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan["properties"]["reserved"] is True  # Linux


def test_function_app_is_locked_down() -> None:
    app = the_resource("modules/functionapp.bicep", "Microsoft.Web/sites")
    props = app["properties"]
    assert app["kind"] == "functionapp,linux"
    assert app["identity"]["type"] == "UserAssigned"
    assert props["httpsOnly"] is True
    assert props["keyVaultReferenceIdentity"] == "identityId"
    site = props["siteConfig"]
    assert site["ftpsState"] == "Disabled"
    assert site["minTlsVersion"] in {"1.2", "1.3"}
    assert site["scmMinTlsVersion"] in {"1.2", "1.3"}
    policies = {
        body["name"]: body["properties"]["allow"]
        for _, body, _ in resources(
            "modules/functionapp.bicep", "Microsoft.Web/sites/basicPublishingCredentialsPolicies"
        )
    }
    assert policies == {"ftp": False, "scm": False}


def test_function_app_config_python_identity_package_and_scale_params() -> None:
    config = the_resource("modules/functionapp.bicep", "Microsoft.Web/sites")["properties"][
        "functionAppConfig"
    ]
    assert config["runtime"] == {"name": "python", "version": "pythonVersion"}
    assert param_default("main.bicep", "pythonVersion") == "3.11"
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityId",
    }
    assert config["scaleAndConcurrency"] == {
        "maximumInstanceCount": "maximumInstanceCount",
        "instanceMemoryMB": "instanceMemoryMB",
    }
    app, _ = module("main.bicep", "functionApp")
    for param in ("pythonVersion", "instanceMemoryMB", "maximumInstanceCount"):
        assert app["params"][param] == param


def test_site_app_settings_are_host_plus_connector_settings() -> None:
    site = the_resource("modules/functionapp.bicep", "Microsoft.Web/sites")["properties"][
        "siteConfig"
    ]
    assert site["appSettings"] == {
        "function": {
            "type": "concat",
            "parameters": {"arg_1": "hostSettings", "arg_2": "connectorSettings"},
        }
    }
    app, _ = module("main.bicep", "functionApp")
    assert app["params"]["connectorSettings"] == "connectorSettings"


# --- App-settings contract ---------------------------------------------------------------


def test_every_setting_the_code_reads_is_set_or_local_only() -> None:
    code = setting_names()
    missing = sorted(code - set(app_settings()) - set(LOCAL_ONLY))
    assert not missing, f"read by the code but not set in infra/: {missing}"


def test_local_only_settings_are_not_set_in_azure_and_still_read() -> None:
    assert not set(LOCAL_ONLY) & set(app_settings())
    stale = sorted(set(LOCAL_ONLY) - setting_names())
    assert not stale, f"LOCAL_ONLY lists names the code no longer reads: {stale}"


def test_every_app_setting_is_read_by_the_code_or_the_host() -> None:
    unread = sorted(set(app_settings()) - setting_names() - set(HOST_READ))
    assert not unread, f"set in infra/ but read by nobody: {unread}"
    stale = sorted(set(HOST_READ) - set(app_settings()))
    assert not stale, f"HOST_READ lists names infra/ no longer sets: {stale}"


def test_no_forbidden_settings() -> None:
    assert not FORBIDDEN_SETTINGS & set(app_settings())


def test_optional_settings_only_when_given() -> None:
    conditional = {name for name, (_, cond) in app_settings().items() if cond}
    assert conditional == CONDITIONAL


def test_identity_based_connections() -> None:
    s = {name: value for name, (value, _) in app_settings().items()}
    assert s["AzureWebJobsStorage__credential"] == "managedidentity"
    assert s["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert s["AzureWebJobsStorage__accountName"] == "storageAccountName"
    assert s["ServiceBusConnection__credential"] == "managedidentity"
    identity_client_id = {
        "operator": {
            "type": "property_accessor",
            "operands": {
                "operand_1": "identity",
                "operand_2": {
                    "operator": {
                        "type": "property_accessor",
                        "operands": {"operand_1": "properties", "operand_2": "clientId"},
                    }
                },
            },
        }
    }
    assert s["ServiceBusConnection__clientId"] == identity_client_id
    assert s["AZURE_CLIENT_ID"] == identity_client_id
    assert "fullyQualifiedNamespace" in json.dumps(
        s["ServiceBusConnection__fullyQualifiedNamespace"]
    )
    assert "queueName" in json.dumps(s["SERVICEBUS_QUEUE"])
    assert "tableEndpoint" in json.dumps(s["STATE_STORAGE__accountUrl"])
    assert s["SPEKTATE_STORAGE__accountUrl"].startswith(
        "https://${spektateStorageAccountName}.table."
    )


def test_telemetry_settings() -> None:
    s = {name: value for name, (value, _) in app_settings().items()}
    assert s["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        "Authorization=AAD;ClientId=${identityClientId}"
    )
    assert s["PYTHON_ENABLE_OPENTELEMETRY"] == "true"
    # The worker's own export needs Azure Monitor's distro, which is not deployed (requirements.in).
    assert "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY" not in s
    assert "ConnectionString" in json.dumps(s["APPLICATIONINSIGHTS_CONNECTION_STRING"])
    appi = the_resource("modules/monitoring.bicep", "Microsoft.Insights/components")
    assert appi["properties"]["DisableLocalAuth"] is True


def test_unsigned_flux_events_are_refused_in_azure() -> None:
    value, conditional = app_settings()["FLUX_ALLOW_UNSIGNED"]
    assert value == "false"
    assert not conditional


# --- Key Vault and secrets ---------------------------------------------------------------


def test_key_vault_rbac_soft_delete_purge_protection() -> None:
    props = the_resource("modules/keyvault.bicep", "Microsoft.KeyVault/vaults")["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True
    assert props["enablePurgeProtection"] is True


def test_secrets_are_key_vault_references() -> None:
    prefix = parse("main.bicep")["variables"]["kvRefPrefix"]["value"]
    assert prefix.startswith("@Microsoft.KeyVault(SecretUri=${keyVault.outputs.vaultUri}secrets/")
    for name in SECRET_SETTINGS:
        value, _ = app_settings()[name]
        assert isinstance(value, str)
        assert re.fullmatch(r"\$\{kvRefPrefix\}\$\{secretNames\.\w+\}/\)", value), (name, value)


def test_secret_parameters_are_secure_and_never_in_app_settings() -> None:
    secure = {
        "main.bicep": {
            "fluxClusterKeys",
            "fluxHmacKey",
            "argocdInstances",
            "azdoPat",
            "azdoHookSecret",
            "argocdWebhookSecret",
            "subscribersHmacKey",
        },
        "modules/keyvault.bicep": {
            "fluxClusterKeys",
            "fluxHmacKey",
            "argocdInstances",
            "azdoPat",
            "azdoHookSecret",
            "argocdWebhookSecret",
            "subscribersHmacKey",
        },
        "modules/secret.bicep": {"value"},
    }
    for rel, names in secure.items():
        for name in names:
            assert "secure" in decorators(rel, name), f"{rel}: {name} is not @secure()"
    # Every @secure() parameter anywhere is one of those.
    for path in bicep_files():
        rel = path.relative_to(INFRA).as_posix()
        for name in parse(rel).get("parameters", {}):
            if "secure" in decorators(rel, name):
                assert name in secure.get(rel, set()), f"{rel}: unexpected secure param {name}"
    dumped = json.dumps([value for value, _ in app_settings().values()])
    for name in secure["main.bicep"]:
        assert not re.search(rf'"{name}"|\$\{{{name}\b', dumped), name


def test_optional_secrets_are_stored_only_when_given() -> None:
    # Every secret is optional: a cluster key or the shared key (doctor names a missing one).
    for symbol in (
        "fluxClusterKeysSecret",
        "fluxHmacKeySecret",
        "argocdInstancesSecret",
        "azdoPatSecret",
        "azdoHookSecretSecret",
        "argocdWebhookSecretSecret",
        "subscribersHmacKeySecret",
    ):
        _, conditional = module("modules/keyvault.bicep", symbol)
        assert conditional, symbol


# --- Role assignments --------------------------------------------------------------------


def _role_assignments(rel: str) -> set[tuple[str, str, bool]]:
    variables = {k: v["value"] for k, v in parse(rel).get("variables", {}).items()}
    by_id = {guid: name for name, guid in ROLES.items()}
    found = set()
    for symbol, body, conditional in resources(rel, "Microsoft.Authorization/roleAssignments"):
        props = body["properties"]
        role_ref = props["roleDefinitionId"]["function"]
        assert role_ref["type"] == "subscription_resource_id", symbol
        assert role_ref["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions"
        guid = variables.get(role_ref["parameters"]["resource_name_1"])
        assert guid in by_id, f"{rel}: {symbol} assigns an unexpected role {guid}"
        assert props["principalId"] == "principalId", symbol
        assert props["principalType"] == "ServicePrincipal", symbol
        # Idempotent names: guid(scope, principal, role).
        assert body["name"]["function"]["type"] == "guid", symbol
        found.add((by_id[guid], body["scope"], conditional))
    return found


@pytest.mark.parametrize("rel", sorted(EXPECTED_ROLE_ASSIGNMENTS))
def test_role_assignments(rel: str) -> None:
    assert _role_assignments(rel) == EXPECTED_ROLE_ASSIGNMENTS[rel]


def test_no_other_role_assignments_and_no_broad_roles() -> None:
    for path in bicep_files():
        rel = path.relative_to(INFRA).as_posix()
        if rel not in EXPECTED_ROLE_ASSIGNMENTS:
            assert not resources(rel, "Microsoft.Authorization/roleAssignments"), rel
        text = path.read_text(encoding="utf-8").lower()
        for name, guid in BROAD_ROLES.items():
            assert guid not in text, f"{rel} uses {name}"


def test_role_ids_are_named_in_comments() -> None:
    for rel in EXPECTED_ROLE_ASSIGNMENTS:
        text = (INFRA / rel).read_text(encoding="utf-8")
        for name, guid in ROLES.items():
            if guid in text:
                assert re.search(rf"//\s*{re.escape(name)}:\s*{guid}", text), (rel, name)


def test_identity_roles_are_granted_to_the_app_identity() -> None:
    principal = {
        "operator": {
            "type": "property_accessor",
            "operands": {
                "operand_1": "identity",
                "operand_2": {
                    "operator": {
                        "type": "property_accessor",
                        "operands": {"operand_1": "properties", "operand_2": "principalId"},
                    }
                },
            },
        }
    }
    for symbol in ("monitoring", "storage", "serviceBus", "keyVault", "spektateAccess"):
        body, _ = module("main.bicep", symbol)
        assert body["params"]["principalId"] == principal, symbol


# --- Outputs -----------------------------------------------------------------------------

SECRET_NAME = re.compile(
    r"(secret|password|passwd|token|pat$|connectionstring|sas|credential|hmac|key$|keys$)",
    re.IGNORECASE,
)


def test_outputs_hold_no_secrets() -> None:
    for path in bicep_files():
        rel = path.relative_to(INFRA).as_posix()
        secure = {n for n in parse(rel).get("parameters", {}) if "secure" in decorators(rel, n)}
        for name, output in parse(rel).get("outputs", {}).items():
            assert not SECRET_NAME.search(name), f"{rel}: output {name} looks secret"
            dumped = json.dumps(output["value"])
            assert not re.search(r'"(type|func_name)": "list', dumped), f"{rel}: {name}"
            assert "ConnectionString" not in dumped, f"{rel}: {name}"
            for param in secure:
                assert not re.search(rf'"{param}"|\$\{{{param}\b', dumped), f"{rel}: {name}"


def test_no_list_functions_anywhere() -> None:
    # listKeys(), listSecrets(), ... would pull keys into the deployment: nothing needs them.
    for path in bicep_files():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\blist[A-Z]\w*\s*\(", text), path.name


def test_main_outputs_urls_and_identity() -> None:
    outputs = parse("main.bicep")["outputs"]
    urls = {
        "fluxWebhookUrl": "/api/flux",
        "argocdWebhookUrl": "/api/argocd",
        "gateUrl": "/api/gates",
        "devopsHookUrl": "/api/devops/events",
    }
    for name, path in urls.items():
        assert outputs[name]["value"] == f"https://${{hostName}}{path}", name
    for name in (
        "functionAppName",
        "functionAppHostName",
        "identityPrincipalId",
        "identityClientId",
    ):
        assert name in outputs


# --- Files around the template -----------------------------------------------------------


def test_bicepparam_example_matches_main() -> None:
    text = (INFRA / "main.bicepparam").read_text(encoding="utf-8")
    assert re.search(r"^using '\./main\.bicep'$", text, re.MULTILINE)
    given = dict(re.findall(r"^param (\w+) = (.*)$", text, re.MULTILINE))
    params = parse("main.bicep")["parameters"]
    unknown = sorted(set(given) - set(params))
    assert not unknown, f"main.bicepparam sets unknown parameters: {unknown}"
    required = {n for n, p in params.items() if p["default"] is None}
    assert required <= set(given), sorted(required - set(given))
    for name in params:
        if "secure" in decorators("main.bicep", name) and name in given:
            assert given[name].startswith("readEnvironmentVariable("), name


def test_bicep_stays_within_what_checkov_parses() -> None:
    """pycep-parser 0.5.1 (checkov's) rejects these; checkov then reports a parsing error."""
    forbidden = [
        (r"^\s*import\b", "import"),
        (r"^\s*func\s+\w+", "func"),
        (r"@export\(\)", "@export()"),
        (r"^\s*assert\b", "assert"),
        (r"^\s*extension\b", "extension"),
        (r"\.\.\.\w", "spread ..."),
    ]
    for path in bicep_files():
        lines = path.read_text(encoding="utf-8").splitlines()
        code = "\n".join(line for line in lines if not line.lstrip().startswith("//"))
        for pattern, what in forbidden:
            assert not re.search(pattern, code, re.MULTILINE), f"{path.name}: {what}"
        # 0.5.1 also fails on more than 4 comment lines in a row inside an object or array,
        # after a property or an element (at the top level, or right after `{`, they parse).
        depth, run, after_item = 0, 0, False
        for number, line in enumerate(lines, start=1):
            stripped = line.strip()
            if stripped.startswith("//"):
                run += 1
                assert not (depth > 0 and after_item and run > 4), (
                    f"{path.name}:{number}: more than 4 comment lines in a row"
                )
            elif stripped:
                depth += sum(stripped.count(c) for c in "{[") - sum(stripped.count(c) for c in "}]")
                after_item = not stripped.endswith(("{", "["))
                run = 0


def test_azure_yaml_service() -> None:
    text = (ROOT / "azure.yaml").read_text(encoding="utf-8")
    assert re.search(r"^services:\n  api:\n", text, re.MULTILINE)
    for line in ("project: .", "language: python", "host: function", "path: infra"):
        assert re.search(rf"^\s+{re.escape(line)}$", text, re.MULTILINE), line


# --- Keyless pipelines (App Service Authentication) --------------------------------------------


def test_pipeline_auth_is_off_by_default_and_admits_only_the_service_connection() -> None:
    assert param_default("main.bicep", "pipelineClientId") == ""
    params, conditional = module("main.bicep", "pipelineAuth")
    assert conditional  # deployed only when a client id is given
    assert params["params"]["pipelineClientId"] == "pipelineClientId"

    auth = the_resource("modules/pipeline-auth.bicep", "Microsoft.Web/sites/config")["properties"]
    assert auth["platform"]["enabled"] is True
    assert auth["globalValidation"]["requireAuthentication"] is True
    assert auth["globalValidation"]["unauthenticatedClientAction"] == "Return401"
    aad = auth["identityProviders"]["azureActiveDirectory"]
    policy = aad["validation"]["defaultAuthorizationPolicy"]
    # The service connection, plus (only with uiClientId) people signed in to the pages.
    people: dict[str, Any] = {"function": {"type": "concat", "parameters": {"arg_2": "people"}}}
    assert policy["allowedApplications"]["function"]["parameters"] == {
        "arg_1": ["pipelineClientId"],
        **people["function"]["parameters"],
    }
    assert aad["validation"]["allowedAudiences"]["function"]["parameters"] == {
        "arg_1": ["audience"],
        **people["function"]["parameters"],
    }
    # The webhooks (HMAC, Argo CD's shared secret), the health probe, the service hook (basic
    # auth) and doctor (master key) keep their own auth.
    assert set(param_default("modules/pipeline-auth.bicep", "excludedPaths")) == {
        "/api/flux",
        "/api/argocd",
        "/api/health",
        "/api/devops/events",
        "/api/doctor",
    }
    # The app's own check of the caller reads the same client id
    # (connector/app/functions/easyauth.py).
    assert app_settings()["PIPELINE_CLIENT_ID"] == ("pipelineClientId", False)


def test_people_sign_in_to_the_pages_only_when_a_ui_client_id_is_given() -> None:
    """Keyless mode: App Service signs people in with the pages' app registration (no client
    secret: an ID token); the app checks the token's audience again
    (connector/app/functions/easyauth.py)."""
    assert param_default("main.bicep", "uiClientId") == ""
    params, _ = module("main.bicep", "pipelineAuth")
    assert params["params"]["uiClientId"] == "uiClientId"
    text = (INFRA / "modules" / "pipeline-auth.bicep").read_text()
    assert re.search(r"var people = empty\(uiClientId\) \? \[\] : \[\s+uiClientId\s+\]", text)
    auth = the_resource("modules/pipeline-auth.bicep", "Microsoft.Web/sites/config")["properties"]
    registration = auth["identityProviders"]["azureActiveDirectory"]["registration"]
    operands = registration["clientId"]["operator"]["operands"]
    assert (operands["true_value"], operands["false_value"]) == (None, "uiClientId")
    assert app_settings()["UI_CLIENT_ID"] == ("uiClientId", False)
