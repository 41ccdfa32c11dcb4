"""Outgoing webhooks against loopback receivers, with the delivery ledger on Azurite."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from connector.core.tracking import Phase, Verdict
from connector.outputs.spektate import SpektateWriter
from connector.outputs.subscribers import (
    SCHEMA,
    DeliveryLedger,
    SubscriberDeliveryError,
    SubscriberNotifier,
    WebhookClient,
)
from connector.sources.flux.signature import verify
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.integration.test_spektate import (
    C1,
    T0,
    dashboard_view,
    install_listeners,
    notify,
    observe,
    resend,
)
from tests.world import REPO, kustomization, statuses_by_context

pytestmark = pytest.mark.azurite

KEY = b"subscriber-key-0123456789"


def fast_client(**overrides: Any) -> WebhookClient:
    options: dict[str, Any] = {
        "retry_total": 2,
        "retry_backoff_factor": 0,
        "retry_backoff_max": 0,
        "connection_timeout": 2,
        "read_timeout": 2,
    }
    return WebhookClient(**{**options, **overrides})


@pytest.fixture
def ledger(table_store) -> DeliveryLedger:
    return DeliveryLedger(table_store.table("subscriberdeliveries"))


@pytest.fixture
def hook_a() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def hook_b() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def notifier(ledger: DeliveryLedger, *urls: str, key: bytes | None = KEY, **client: Any):
    return SubscriberNotifier(list(urls), ledger, key=key, client=fast_client(**client))


def bodies(receiver: WebhookReceiver) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in receiver.received]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example/x?token=s3cr3t",
        "/relative?token=s3cr3t",
        "https://?token=s3cr3t",
        "hooks.example/x?token=s3cr3t",
        "javascript:alert(1)//s3cr3t",
        "https://hooks.example:s3cr3t/x",
    ],
)
def test_subscriber_urls_must_be_absolute_http(ledger, url):
    with pytest.raises(ValueError, match="http") as caught:
        SubscriberNotifier([url], ledger)
    assert "s3cr3t" not in str(caught.value)


def test_a_url_listed_twice_is_refused(ledger):
    with pytest.raises(ValueError, match="twice"):
        SubscriberNotifier(["https://a.example/h", "https://a.example/h"], ledger)


# --- payload and signature --------------------------------------------------------------------


def test_each_subscriber_gets_the_change_signed(ledger, hook_a, hook_b):
    listener = notifier(ledger, hook_a.url("/a"), hook_b.url("/b?token=x"))
    notify(listener, observe(Phase.SUCCEEDED))

    for hook in (hook_a, hook_b):
        [received] = hook.received
        verify(received.headers.get("X-Signature"), received.body, [KEY])
        assert received.headers["Content-Type"] == "application/json"
    assert hook_b.received[0].path == "/b?token=x"
    [body] = bodies(hook_a)
    assert body == {
        "schema": SCHEMA,
        "id": body["id"],
        "commit": C1,
        "env": "dev",
        "cluster": "dev-1",
        "object": {"kind": "Kustomization", "namespace": "flux-system", "name": "apps"},
        "phase": "succeeded",
        "reason": "ReconciliationSucceeded",
        "summary": "Reconciliation finished in 43.9s",
        "time": "2026-05-14T09:12:40+00:00",
        "environment": {"phase": "succeeded", "clusters": {"dev-1": "succeeded"}},
    }
    assert len(body["id"]) == 32


def test_without_a_key_the_post_is_unsigned(ledger, hook_a):
    notify(notifier(ledger, hook_a.url(), key=None), observe())
    [received] = hook_a.received
    assert "X-Signature" not in received.headers


# --- once per change --------------------------------------------------------------------------


def test_redeliveries_and_resends_post_nothing_more(ledger, hook_a, hook_b):
    listener = notifier(ledger, hook_a.url(), hook_b.url())
    obs = observe()
    notify(listener, obs)
    notify(listener, obs, Verdict.UNCHANGED)  # Service Bus redelivery
    notify(listener, resend(obs), Verdict.UNCHANGED)  # Flux periodic re-send
    assert len(hook_a.received) == len(hook_b.received) == 1


def test_every_new_phase_is_posted(ledger, hook_a):
    listener = notifier(ledger, hook_a.url())
    notify(listener, observe(Phase.PROGRESSING))
    notify(listener, observe(Phase.SUCCEEDED, at=T0 + timedelta(seconds=9)))
    assert [b["phase"] for b in bodies(hook_a)] == ["progressing", "succeeded"]
    assert len({b["id"] for b in bodies(hook_a)}) == 2


# --- failures ---------------------------------------------------------------------------------


def test_server_errors_and_throttling_are_retried(ledger, hook_a):
    hook_a.script(500, 503)
    hook_a.script(429, retry_after="3600")  # capped by the backoff maximum, not waited for
    started = time.monotonic()
    notify(notifier(ledger, hook_a.url(), retry_total=3), observe())
    assert time.monotonic() - started < 5
    assert len(hook_a.received) == 4
    assert len({r.body for r in hook_a.received}) == 1  # the same body, re-posted


def test_a_refusing_receiver_raises_without_endless_retries(ledger, hook_a):
    hook_a.script(400)
    with pytest.raises(SubscriberDeliveryError, match="answered 400"):
        notify(notifier(ledger, hook_a.url()), observe())
    assert len(hook_a.received) == 1


def test_a_receiver_down_raises_and_the_redelivery_posts_only_to_it(ledger, hook_a):
    port = free_port()
    down = WebhookReceiver(port)  # not started: connections are refused
    listener = notifier(ledger, hook_a.url(), down.url())
    obs = observe()

    with pytest.raises(SubscriberDeliveryError, match=r"1 of 2 subscribers failed: 127\.0\.0\.1"):
        notify(listener, obs)
    assert len(hook_a.received) == 1

    with down:
        notify(listener, obs, Verdict.UNCHANGED)  # the redelivery
        notify(listener, obs, Verdict.UNCHANGED)
        assert len(down.received) == 1
    assert len(hook_a.received) == 1


def test_a_slow_receiver_times_out(ledger, hook_a):
    hook_a.delay = 3
    started = time.monotonic()
    with pytest.raises(SubscriberDeliveryError, match="ServiceResponse"):
        notify(notifier(ledger, hook_a.url(), retry_total=0, read_timeout=0.3), observe())
    assert time.monotonic() - started < 2


def test_logs_and_errors_show_neither_url_secrets_nor_the_key(ledger, hook_a, caplog):
    # Ours and azure-core's at DEBUG; urllib3 logs request lines (with the query) at DEBUG
    # only, below the host's default level (host.json: Information).
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="urllib3")  # other tests may have lowered it
    caplog.set_level(logging.DEBUG, logger="connector")
    caplog.set_level(logging.DEBUG, logger="azure")
    secret_path = "/hooks/T0001/B0001/pathsecret"
    dead = WebhookReceiver(free_port()).url(secret_path + "?token=querysecret")
    hook_a.script(500, 500, 500)
    listener = notifier(ledger, hook_a.url(secret_path + "?sig=querysecret"), dead)

    with pytest.raises(SubscriberDeliveryError) as caught:
        notify(listener, observe())

    for text in (caplog.text, str(caught.value), repr(caught.value.__cause__)):
        assert "querysecret" not in text
        assert "pathsecret" not in text
        assert KEY.decode() not in text
    assert "subscriber.delivery_failed" in caplog.text


# --- end to end -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spektate:
    writer: SpektateWriter
    table: Any
    partition: str = "fabrikam-app"


@pytest.fixture
def spektate(table_store) -> Spektate:
    table = table_store.table("flux")  # a per-test table on Azurite stands in for Spektate's
    return Spektate(SpektateWriter(table, partition_key="fabrikam-app"), table)


def test_a_subscriber_outage_holds_up_nothing_and_is_made_good(world, ledger, hook_a, spektate):
    # GIVEN Spektate and two subscribers, one of which is down
    world.azdo.add_commit(REPO, C1, "Merged PR 7: bump podinfo")
    down = WebhookReceiver(free_port())
    listener = notifier(ledger, hook_a.url(), down.url())
    install_listeners(world, listener, spektate.writer)

    # WHEN the result arrives
    assert world.post(kustomization(C1)) == 202
    [message] = world.sender.drain()
    with pytest.raises(SubscriberDeliveryError):
        world.process(message)

    # THEN statuses, Spektate and the healthy subscriber are done
    expected = {"dev-1/Kustomization/flux-system/apps": ["succeeded"], "env/dev": ["succeeded"]}
    assert statuses_by_context(world.azdo, C1) == expected
    assert len(dashboard_view(spektate.table, spektate.partition)) == 1
    assert len(hook_a.received) == 1

    # AND the redelivery reaches the other subscriber only, duplicating nothing
    with down:
        world.process(message, delivery_count=2)
        world.process(message, delivery_count=3)
        assert len(down.received) == 1
    assert len(hook_a.received) == 1
    assert len(dashboard_view(spektate.table, spektate.partition)) == 1
    assert statuses_by_context(world.azdo, C1) == expected
    assert bodies(hook_a)[0]["environment"]["phase"] == "succeeded"
