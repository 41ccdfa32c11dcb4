"""The composition root: adapters are built once, lazily, even under concurrent invocations."""

from __future__ import annotations

import threading
import time

import pytest

from connector.bootstrap import Container, built
from connector.settings import Settings, SettingsError


class CountingContainer(Container):
    builds = 0

    @built
    def slow(self) -> object:
        type(self).builds += 1
        time.sleep(0.05)  # wide window for a second thread to race in
        return object()


def test_concurrent_first_use_builds_once():
    container = CountingContainer(Settings.from_env({}))
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(container.slow)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert CountingContainer.builds == 1
    assert all(item is seen[0] for item in seen)


def test_overrides_replace_adapters():
    fake = object()
    assert Container(Settings.from_env({}), store=fake).store is fake


@pytest.mark.parametrize(
    ("attribute", "needle"),
    [
        ("sender", "ServiceBusConnection"),
        ("store", "AzureWebJobsStorage"),
        ("devops", "AZDO_ORG_URL"),
    ],
)
def test_missing_configuration_names_the_setting(attribute, needle):
    with pytest.raises(SettingsError, match=needle):
        getattr(Container(Settings.from_env({})), attribute)
