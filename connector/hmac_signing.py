"""HMAC signatures over a raw body, in the form of Flux notification-controller's `generic-hmac`
provider: `<algo>=<lowercase hex HMAC(key, body)>`, sent as `X-Signature`.

Its own module (base layer) because two layers use it: Flux's webhook verifies incoming events
with it (`connector.sources.flux.signature`), the outgoing webhooks sign with it
(`connector.outputs.subscribers`), and no output imports a source.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import NamedTuple

# Flux sends sha256 only; sha1, sha224, sha384 and sha512 are accepted like Flux's own
# documented verifier does, in case that changes.
ALGORITHMS = {
    "sha1": hashlib.sha1,
    "sha224": hashlib.sha224,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}


def sign(key: bytes, body: bytes, algorithm: str = "sha256") -> str:
    """The `X-Signature` header value for `body` (outgoing webhooks, tests, the sample CLI)."""
    return f"{algorithm}={hmac.new(key, body, ALGORITHMS[algorithm]).hexdigest()}"


class Verified(NamedTuple):
    """A signature that matched: its algorithm and digest, which is HMAC(key, body) for the key
    that signed (which key is not said: the check must not tell)."""

    algorithm: str
    digest: bytes
