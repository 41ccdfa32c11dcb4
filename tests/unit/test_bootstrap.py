"""The composition root: adapters are built once, lazily, even under concurrent invocations."""

from __future__ import annotations

import threading
import time

import pytest

from connector.app.root.bootstrap import Container, built
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


class WaitingContainer(Container):
    """Each build waits for the other container's build to start: only possible if the build
    lock belongs to the container, not to the property (as `cached_property`'s did until 3.12)."""

    started: dict[str, threading.Event]

    @built
    def paired(self) -> bool:
        name = self.settings.default_cluster
        self.started[name].set()
        other = "b" if name == "a" else "a"
        return self.started[other].wait(timeout=5)


def test_containers_build_independently():
    WaitingContainer.started = {"a": threading.Event(), "b": threading.Event()}
    containers = [WaitingContainer(Settings.from_env({"DEFAULT_CLUSTER": n})) for n in "ab"]
    results: list[bool] = []
    threads = [threading.Thread(target=lambda c=c: results.append(c.paired)) for c in containers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True, True]


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
