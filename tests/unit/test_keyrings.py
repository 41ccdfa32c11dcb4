"""Per-cluster keys and per-instance secrets as settings: their shape, what a bad one says (never
a key), which key signed, and the warnings for what weakens them. Pure: no Azurite."""

from __future__ import annotations

import json

import pytest

from connector.core.names import ORIGIN_NAME
from connector.keyrings import CLUSTER_NAME
from connector.settings import Settings, SettingsError
from connector.sources.origins import credential_warnings

KEY = "k-0123456789abcdef"


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("not json", "not valid JSON"),
        ("[]", "non-empty JSON object"),
        ("{}", "non-empty JSON object"),
        ('{"": "k"}', "empty name"),
        ('{"dev/1": "k"}', "'dev/1' is no cluster name"),
        ('{"dev-1": 5}', "FLUX_CLUSTER_KEYS['dev-1'] must be a string"),
        ('{"dev-1": []}', "FLUX_CLUSTER_KEYS['dev-1'] must be a string"),
        ('{"dev-1": [""]}', "non-empty strings"),
        (json.dumps({"dev-1": KEY, "prod-eu": [KEY]}), "'dev-1' and 'prod-eu' share a key"),
    ],
)
def test_a_malformed_flux_cluster_keys_is_a_settings_error_that_never_echoes_a_key(value, needle):
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"FLUX_CLUSTER_KEYS": value})
    assert needle in str(raised.value)
    assert KEY not in str(raised.value)


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ('{"a": {"secrets": "s"}}', "exactly 'secrets' and 'clusters'"),
        ('{"a": {"secrets": "s", "clusters": []}}', "non-empty list"),
        ('{"a": {"secrets": "s", "clusters": [""]}}', "non-empty strings"),
        ('{"a": {"secrets": "s", "clusters": ["-x"]}}', "'-x' is no cluster name"),
        ('{"a": {"secrets": [], "clusters": ["c"]}}', "ARGOCD_INSTANCES['a'].secrets"),
        (
            json.dumps(
                {
                    "a": {"secrets": KEY, "clusters": ["c"]},
                    "b": {"secrets": [KEY], "clusters": ["d"]},
                }
            ),
            "'a' and 'b' share a secret",
        ),
    ],
)
def test_a_malformed_argocd_instances_is_a_settings_error(value, needle):
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"ARGOCD_INSTANCES": value})
    assert needle in str(raised.value)
    assert KEY not in str(raised.value)


def test_a_cluster_key_in_the_shared_key_is_refused():
    with pytest.raises(SettingsError, match=r"FLUX_HMAC_KEY holds the key of cluster\(s\) b of"):
        Settings.from_env(
            {
                "FLUX_CLUSTER_KEYS": json.dumps({"a": "x", "b": ["y", KEY]}),
                "FLUX_HMAC_KEY": f"z,{KEY}",
            }
        )


def test_keyrings_parse_to_owners_and_keys():
    settings = Settings.from_env(
        {
            "FLUX_CLUSTER_KEYS": json.dumps({"dev-1": "a", "prod-eu": ["b", "c"]}),
            "ARGOCD_INSTANCES": json.dumps({"i": {"secrets": "s", "clusters": ["x", "y"]}}),
        }
    )
    assert settings.cluster_keys == {"dev-1": (b"a",), "prod-eu": (b"b", b"c")}
    [instance] = settings.argocd_instances.values()
    assert (instance.secrets, instance.clusters) == ((b"s",), frozenset({"x", "y"}))
    assert "prod-eu" not in repr(settings)  # SecretStr: neither keys nor owners in the repr


def test_warnings_name_what_weakens_the_credentials():
    shared = Settings.from_env({"FLUX_HMAC_KEY": KEY, "ARGOCD_WEBHOOK_SECRET": KEY + "x"})
    assert [w.split(" ")[0] for w in credential_warnings(shared)] == [
        "FLUX_HMAC_KEY",
        "ARGOCD_WEBHOOK_SECRET",
    ]
    own = {
        "FLUX_CLUSTER_KEYS": json.dumps({"dev-1": "a", "edge": "b"}),
        "ENVIRONMENTS": json.dumps({"dev": {"clusters": ["dev-1"]}}),
    }
    [unlisted] = credential_warnings(Settings.from_env(own))
    assert unlisted.startswith("cluster(s) edge have a key but no environment")
    both = credential_warnings(Settings.from_env({**own, "FLUX_ALLOW_UNSIGNED": "true"}))
    assert "FLUX_ALLOW_UNSIGNED=true is ignored" in both[-1]
    listed = {**own, "FLUX_CLUSTER_KEYS": json.dumps({"dev-1": "a"})}
    assert credential_warnings(Settings.from_env(listed)) == []
    assert KEY not in "".join(credential_warnings(shared))  # never a value


def test_keyring_cluster_names_are_the_names_events_carry():
    assert CLUSTER_NAME.pattern == ORIGIN_NAME.pattern


def test_a_commit_annotation_that_disagrees_with_the_revision_is_logged_with_both(caplog):
    from datetime import UTC, datetime

    from connector.queue.envelope import Envelope
    from connector.sources.flux.translate import observe

    revision, annotated = "a" * 40, "b" * 40
    event = {
        "involvedObject": {"kind": "Kustomization", "namespace": "flux-system", "name": "apps"},
        "severity": "info",
        "timestamp": "2026-05-14T09:12:50Z",
        "message": "m",
        "reason": "ReconciliationSucceeded",
        "metadata": {"revision": f"main@sha1:{revision}", "commit": annotated},
    }
    envelope = Envelope(cluster="prod-eu", env="prod", received_at=datetime.now(UTC), event=event)
    with caplog.at_level("WARNING"):
        obs = observe(envelope, "m1")
    assert obs.commit == revision
    assert obs.metadata["commit"] == annotated  # both recorded
    [record] = [r for r in caplog.records if r.getMessage() == "flux.commit_metadata_ignored"]
    assert (record.commit, record.claimed_commit, record.cluster) == (
        revision,
        annotated,
        "prod-eu",
    )
    assert record.object == "Kustomization/flux-system/apps"
    caplog.clear()
    with caplog.at_level("WARNING"):
        bare = envelope.model_copy(update={"event": {**event, "metadata": {}}})
        observe(bare, "m2")
    assert caplog.records == []
