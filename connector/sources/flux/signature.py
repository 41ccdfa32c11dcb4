"""HMAC signatures as notification-controller's `generic-hmac` provider makes them.

`X-Signature: <algo>=<lowercase hex HMAC(key, raw body)>`: this module verifies them; the
signature's form and algorithms are `connector.hmac_signing`'s, shared with the outgoing webhooks.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence

from connector.core.errors import ConnectorError
from connector.hmac_signing import ALGORITHMS, Verified, sign

__all__ = ["ALGORITHMS", "SignatureError", "Verified", "identify", "sign", "verify"]


class SignatureError(ConnectorError):
    """The request is not signed by a holder of a configured key. The message says why."""


def verify(header: str | None, body: bytes, keys: Iterable[bytes]) -> Verified:
    """The verified signature; SignatureError unless `header` is a valid signature of `body`
    under one of `keys`."""
    algorithm, expected = _parse(header)
    hash_factory = ALGORITHMS[algorithm]
    # Check every key, without stopping early, so timing reveals nothing about which key matched.
    matched = False
    for key in keys:
        actual = hmac.new(key, body, hash_factory).digest()
        matched |= hmac.compare_digest(actual, expected)
    if not matched:
        raise SignatureError("X-Signature does not match the body")
    return Verified(algorithm, expected)


def identify(
    header: str | None,
    body: bytes,
    keyring: Sequence[tuple[str, bytes]],
    hint: str | None = None,
) -> tuple[Verified, str]:
    """The verified signature and the owner of the key that made it (`keyring`: owner, key).

    The keys of `hint` (the owner the request claims to be) are tried first and a match ends the
    search: whoever made a valid signature already holds that key, so the time a success takes
    tells its sender nothing new. A signature no key makes is checked against every key."""
    algorithm, expected = _parse(header)
    hash_factory = ALGORITHMS[algorithm]
    ordered = sorted(keyring, key=lambda entry: entry[0] != hint) if hint else keyring
    for owner, key in ordered:
        if hmac.compare_digest(hmac.new(key, body, hash_factory).digest(), expected):
            return Verified(algorithm, expected), owner
    raise SignatureError("X-Signature does not match the body")


def _parse(header: str | None) -> tuple[str, bytes]:
    if not header:
        raise SignatureError("missing X-Signature header")
    algorithm, sep, digest = header.strip().partition("=")
    algorithm = algorithm.strip().lower()
    if not sep or algorithm not in ALGORITHMS:
        raise SignatureError("X-Signature must be '<sha256|sha384|sha512|sha1>=<hex>'")
    try:
        expected = bytes.fromhex(digest.strip())
    except ValueError:
        raise SignatureError("X-Signature digest is not hexadecimal") from None
    return algorithm, expected
