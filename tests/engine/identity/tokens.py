"""Helpers for identity tests: a clock that moves only when told, and hand-made tokens.

Attack tokens are assembled byte by byte (not through a JOSE library, which would refuse to make
most of them), the way an attacker would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from engine.config import OidcSettings
from gatewatch.demo.oidc import DemoOidcProvider


class FakeClock:
    """A settable clock: tests move time instead of waiting for it."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64(json.dumps(value).encode())


def forge(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64json(header)}.{b64json(claims)}.{b64(signature)}"


def rsa_signed(header: dict[str, Any], claims: dict[str, Any],
               key: rsa.RSAPrivateKey) -> str:
    """RS256 over header and claims with ``key`` (an attacker's key, say)."""
    signing_input = f"{b64json(header)}.{b64json(claims)}".encode()
    sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode()}.{b64(sig)}"


def hmac_signed(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{b64json(header)}.{b64json(claims)}".encode()
    mac = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return f"{signing_input.decode()}.{b64(mac)}"


def attacker_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def settings_for(provider: DemoOidcProvider, **overrides: Any) -> OidcSettings:
    values: dict[str, Any] = {"issuer": provider.issuer, "audiences": ("gatewatch",),
                              "client_id": "gatewatch-cli"}
    values.update(overrides)
    return OidcSettings(**values)


def user_claims(provider: DemoOidcProvider, clock: FakeClock, **overrides: Any) -> dict[str, Any]:
    now = int(clock())
    return {"iss": provider.issuer, "aud": "gatewatch", "sub": "u-1001",
            "preferred_username": "alice", "groups": ["engineering"], "iat": now, "nbf": now,
            "exp": now + 600, **overrides}
