"""`X-Signature` signing and verification, case by case, with the message each refusal gives."""

from __future__ import annotations

import hmac

import pytest

from connector.sources.flux.signature import (
    ALGORITHMS,
    SignatureError,
    Verified,
    identify,
    sign,
    verify,
)

# fluxcd/notification-controller @ 2e46958 internal/notifier/forwarder_test.go:57,91-92
FLUX_KEY = b"7152fed34dd6149a7c75a276c510da27cb6f82b0"
FLUX_BODY = (
    b'{"involvedObject":{"kind":"GitRepository","namespace":"gitops-system","name":"webapp"},'
    b'"severity":"info","timestamp":"2022-09-30T06:40:29Z","message":"message","reason":"reason",'
    b'"metadata":{"test":"metadata"},"reportingController":"source-controller",'
    b'"reportingInstance":"source-controller-xyz"}'
)
FLUX_SIGNATURE = "sha256=65b018549b1254e7226d1c08f9567ee45bc9de0fc4e7b1a40253f9a018b08be7"
KEY = b"k1"
OTHER = b"k2"
BODY = b'{"a":1}'


def test_sign_matches_flux_test_vector():
    assert sign(FLUX_KEY, FLUX_BODY) == FLUX_SIGNATURE
    verify(FLUX_SIGNATURE, FLUX_BODY, [FLUX_KEY])


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_every_algorithm_signs_and_verifies(algorithm):
    header = sign(KEY, BODY, algorithm)
    prefix, digest = header.split("=")
    assert prefix == algorithm
    assert len(digest) == ALGORITHMS[algorithm]().digest_size * 2
    verify(header, BODY, [KEY])


def test_the_algorithm_set_is_the_documented_one():
    assert set(ALGORITHMS) == {"sha1", "sha224", "sha256", "sha384", "sha512"}


ACCEPTED = [
    pytest.param(sign(KEY, BODY), [KEY], id="plain"),
    pytest.param(sign(KEY, BODY).replace("sha256", "SHA256"), [KEY], id="algorithm-case"),
    pytest.param(" " + sign(KEY, BODY) + " ", [KEY], id="outer-space"),
    pytest.param(sign(KEY, BODY).replace("=", " = "), [KEY], id="space-around-equals"),
    pytest.param(sign(KEY, BODY).upper().replace("SHA256", "sha256"), [KEY], id="hex-case"),
    pytest.param(sign(KEY, BODY), [OTHER, KEY], id="second-key"),
    pytest.param(sign(KEY, BODY), [KEY, OTHER], id="first-key-then-another"),
]


@pytest.mark.parametrize(("header", "keys"), ACCEPTED)
def test_accepted_with_the_verified_digest(header, keys):
    # The digest the message id is made of: the same for every spelling of the header.
    mac = hmac.new(KEY, BODY, "sha256").digest()
    assert verify(header, BODY, keys) == Verified("sha256", mac)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_the_verified_digest_is_the_hmac_of_the_body(algorithm):
    verified = verify(sign(KEY, BODY, algorithm), BODY, [OTHER, KEY])
    assert verified == Verified(algorithm, hmac.new(KEY, BODY, ALGORITHMS[algorithm]).digest())


MISMATCH = "X-Signature does not match the body"
FORMAT = "X-Signature must be '<sha256|sha384|sha512|sha1>=<hex>'"

REFUSED = [
    pytest.param(None, [KEY], "missing X-Signature header", id="none"),
    pytest.param("", [KEY], "missing X-Signature header", id="empty"),
    pytest.param("sha256", [KEY], FORMAT, id="no-equals"),
    pytest.param("md5=" + "0" * 32, [KEY], FORMAT, id="unknown-algorithm"),
    pytest.param("=" + "0" * 64, [KEY], FORMAT, id="no-algorithm"),
    pytest.param("sha256=xyz", [KEY], "X-Signature digest is not hexadecimal", id="not-hex"),
    pytest.param("sha256=00=00", [KEY], "X-Signature digest is not hexadecimal", id="second-eq"),
    pytest.param("sha256=", [KEY], MISMATCH, id="empty-digest"),
    pytest.param(sign(KEY, BODY), [OTHER], MISMATCH, id="wrong-key"),
    pytest.param(sign(KEY, BODY), [], MISMATCH, id="no-keys"),
    pytest.param(sign(KEY, BODY, "sha512").replace("sha512", "sha256"), [KEY], MISMATCH, id="algo"),
    pytest.param(sign(KEY, BODY + b" "), [KEY], MISMATCH, id="other-body"),
    pytest.param(sign(KEY, BODY)[:-2], [KEY], MISMATCH, id="truncated"),
]


@pytest.mark.parametrize(("header", "keys", "message"), REFUSED)
def test_refused_with_a_reason(header, keys, message):
    with pytest.raises(SignatureError) as caught:
        verify(header, BODY, keys)
    assert str(caught.value) == message
    assert caught.value.__cause__ is None


def test_not_hex_hides_the_parse_error():
    with pytest.raises(SignatureError) as caught:
        verify("sha256=zz", BODY, [KEY])
    assert caught.value.__suppress_context__


# --- which key signed: FLUX_CLUSTER_KEYS ---------------------------------------------------


KEYRING = (("dev-1", b"dev"), ("prod-eu", b"new"), ("prod-eu", b"old"), ("", b"shared"))


@pytest.mark.parametrize(
    ("key", "hint", "owner"),
    [
        (b"dev", None, "dev-1"),
        (b"old", None, "prod-eu"),  # rotation: either key is the cluster's
        (b"new", "prod-eu", "prod-eu"),
        (b"dev", "prod-eu", "dev-1"),  # the hint orders the search, it never decides
        (b"shared", "dev-1", ""),
    ],
)
def test_the_key_that_verifies_decides_the_owner(key, hint, owner):
    body = b'{"x":1}'
    verified, found = identify(sign(key, body), body, KEYRING, hint)
    assert found == owner
    assert verified.algorithm == "sha256"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing X-Signature header"),
        ("sha256=" + "00" * 32, f"^{MISMATCH}$"),
        ("md5=00", "must be"),
        ("sha256=zz", "not hexadecimal"),
    ],
)
def test_no_key_no_owner(header, message):
    with pytest.raises(SignatureError, match=message):
        identify(header, b"{}", KEYRING, "dev-1")


def test_identify_returns_the_verified_signature_of_the_body():
    verified, owner = identify(sign(b"new", BODY, "sha512"), BODY, KEYRING)
    assert owner == "prod-eu"
    assert verified == Verified("sha512", hmac.new(b"new", BODY, "sha512").digest())


def test_the_hint_orders_the_search_and_the_first_match_ends_it():
    # Settings never give one key two owners; given two, the hinted owner's key is tried first.
    twice = (("a", b"x"), ("b", b"x"))
    header = sign(b"x", BODY)
    assert identify(header, BODY, twice)[1] == "a"
    assert identify(header, BODY, twice, "b")[1] == "b"
    assert identify(header, BODY, twice, "c")[1] == "a"
