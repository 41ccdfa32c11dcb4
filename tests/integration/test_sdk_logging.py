"""Azure SDK logging is quiet by default: a storage request writes no INFO line (issue #15, 7).

azure-core's HttpLoggingPolicy logs every request and response at INFO on
`azure.core.pipeline.policies.http_logging_policy`; in Azure each line is a billed trace.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from connector import telemetry
from connector.settings import Settings, SettingsError
from tests.conftest import BASE_SETTINGS
from tests.world import World, kustomization

pytestmark = pytest.mark.azurite

C1 = "c8925188500a55dad9563388e537a03dcdded446"


@pytest.fixture
def sdk_levels() -> Iterator[None]:
    """A fresh process's levels: other tests set `azure` and its children (`azure.core`) to
    DEBUG and keep them. Every SDK logger is reset to unset here and restored afterwards."""
    names = [
        name
        for name in list(logging.root.manager.loggerDict)
        if name.split(".")[0] in telemetry.AZURE_SDK_LOGGERS
    ]
    loggers = [logging.getLogger(name) for name in {*names, *telemetry.AZURE_SDK_LOGGERS}]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.NOTSET)
    yield
    for lg, level in zip(loggers, saved, strict=True):
        lg.setLevel(level)


def sdk_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.split(".")[0] in telemetry.AZURE_SDK_LOGGERS]


def test_storage_requests_log_nothing_at_info_by_default(
    world: World, caplog: pytest.LogCaptureFixture, sdk_levels: None
) -> None:
    assert telemetry.quiet_azure_sdk({}) == "WARNING"
    caplog.set_level(logging.INFO)

    world.send(kustomization(C1))

    assert world.azdo.calls("POST"), "the event was processed (storage and Azure DevOps were used)"
    assert sdk_records(caplog) == []


def test_the_setting_turns_request_logging_back_on(
    world: World, caplog: pytest.LogCaptureFixture, sdk_levels: None
) -> None:
    assert telemetry.quiet_azure_sdk({"AZURE_SDK_LOG_LEVEL": "info"}) == "INFO"
    caplog.set_level(logging.INFO)

    world.send(kustomization(C1))

    names = {r.name for r in sdk_records(caplog)}
    assert "azure.core.pipeline.policies.http_logging_policy" in names


def test_an_invalid_level_keeps_the_default_and_is_named_by_the_settings(
    sdk_levels: None,
) -> None:
    assert telemetry.quiet_azure_sdk({"AZURE_SDK_LOG_LEVEL": "loud"}) == "WARNING"
    assert logging.getLogger("azure").level == logging.WARNING
    assert logging.getLogger("uamqp").level == logging.WARNING
    with pytest.raises(SettingsError, match="AZURE_SDK_LOG_LEVEL"):
        Settings.from_env({**BASE_SETTINGS, "AZURE_SDK_LOG_LEVEL": "loud"})
