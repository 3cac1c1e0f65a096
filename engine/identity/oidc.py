"""Identities from OpenID Connect tokens: users, operators and AI agents of the corporate provider.

A token is a compact JWS. ``OidcValidator`` checks it in an order chosen so that an attacker's
bytes are trusted as late as possible:

1. size, before anything is parsed (``max_token_bytes``);
2. the header alone: ``alg`` must be in the configured allow-list (asymmetric only: ``none``
   and HMAC never pass, so a public key can never be used as an HMAC secret), and ``crit`` is
   refused; ``jwk``, ``jku``, ``x5u`` and ``x5c`` are ignored;
3. the key: by ``kid`` from the issuer's JWKS (``jwks.py``), of the type the algorithm needs;
4. the signature (joserfc, restricted to that one algorithm);
5. the claims: ``iss``, ``aud`` (any configured audience), ``exp`` (required), ``nbf`` and
   ``iat``, each with ``clock_skew``; ``sub`` required.

Every rejection is logged with its reason (never the token); callers learn only ``None``.
``OidcIdentities`` turns the claims into an ``Identity`` (name, groups, person or agent,
vendor, expiry) and implements the ``IdentityProvider`` protocol.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from joserfc import jwt
from joserfc.errors import ClaimError, InvalidClaimError, JoseError
from joserfc.jwk import Key
from joserfc.jws import JWSRegistry

from engine.config import OidcSettings
from engine.identity.base import Identity
from engine.identity.jwks import JwksCache

log = logging.getLogger(__name__)

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_NAME = re.compile(r"[^\s\x00-\x1f\x7f]{1,128}")
# What each algorithm needs of its key: the key type and, for curves, the curve.
_KEY_FOR_ALG: dict[str, tuple[str, frozenset[str] | None]] = {
    **{a: ("RSA", None) for a in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")},
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
    "Ed25519": ("OKP", frozenset({"Ed25519"})),
}


class TokenRejected(Exception):
    """Why a token was refused: for the log, never for the client."""


def looks_like_jwt(token: str) -> bool:
    """A compact JWS/JWT: three dot-separated parts whose header is a base64url JSON object."""
    return token.count(".") == 2 and token.startswith("eyJ")


def _b64json(segment: str, what: str) -> dict[str, Any]:
    if not _SEGMENT.fullmatch(segment):
        raise TokenRejected(f"the {what} is not base64url")
    try:
        value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError):
        raise TokenRejected(f"the {what} is not base64url JSON") from None
    if not isinstance(value, dict):
        raise TokenRejected(f"the {what} is not a JSON object")
    return value


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT *without* checking it: for display and for picking a login name in
    the CLI, never for a decision (the gateway checks the token when it is presented)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        return _b64json(parts[1], "payload")
    except TokenRejected:
        return None


def claim_at(claims: dict[str, Any], path: str) -> Any:
    """A claim by name, or by dotted path into nested objects (``realm_access.roles``).
    A claim whose own name contains dots (some providers use URLs) is found first."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


class OidcValidator:
    """Checks tokens of one issuer. ``clock`` (seconds since the epoch) and ``monotonic`` are
    injectable so that tests move time instead of waiting for it."""

    def __init__(self, settings: OidcSettings, *, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 jwks: JwksCache | None = None) -> None:
        self.settings = settings
        self._clock = clock
        self.jwks = jwks or JwksCache(settings.issuer, timeout=settings.http_timeout,
                                      refresh=settings.jwks_refresh,
                                      cooldown=settings.jwks_cooldown, clock=monotonic)

    async def validate(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token``; raises ``TokenRejected`` with the reason."""
        s = self.settings
        size = len(token.encode("utf-8", "surrogatepass"))
        if size > s.max_token_bytes:
            raise TokenRejected(f"token of {size} bytes, above max_token_bytes "
                                f"({s.max_token_bytes})")
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenRejected(f"not a compact JWS ({len(parts)} parts, expected 3)")
        header = _b64json(parts[0], "header")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise TokenRejected("unsigned token (alg none)")
        if alg not in s.algorithms:
            raise TokenRejected(f"algorithm {alg!r} is not accepted (allowed: "
                                f"{', '.join(s.algorithms)})")
        if alg not in _KEY_FOR_ALG:  # even if settings were built around the loader's check
            raise TokenRejected(f"algorithm {alg!r} is not an asymmetric signature")
        if "crit" in header:
            raise TokenRejected("the header has critical extensions (crit), none are supported")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenRejected("the header's kid is not a string")
        # jwk, jku, x5u, x5c: never read. The key comes from the issuer's JWKS alone.
        key = await self.jwks.key(kid)
        if key is None:
            why = f"; {self.jwks.last_error}" if self.jwks.last_error else ""
            raise TokenRejected(f"no signing key {kid!r} in the issuer's JWKS{why}")
        self._check_key(key, alg, kid)
        try:
            verified = jwt.decode(token, key, registry=JWSRegistry(
                algorithms=[alg], strict_check_header=False))
        except JoseError as exc:
            raise TokenRejected(f"signature or format: {exc.error}: {exc.description}"
                                ) from None
        except (ValueError, TypeError) as exc:
            raise TokenRejected(f"malformed token: {exc}") from None
        self._check_claims(verified.claims)
        return dict(verified.claims)

    @staticmethod
    def _check_key(key: Key, alg: str, kid: str | None) -> None:
        kty, curves = _KEY_FOR_ALG[alg]
        if key.key_type != kty or (curves is not None and key.get("crv") not in curves):
            raise TokenRejected(f"key {kid!r} ({key.key_type} {key.get('crv') or ''}) does not "
                                f"fit algorithm {alg}")
        if key.get("alg") not in (None, alg):
            raise TokenRejected(f"key {kid!r} is published for {key.get('alg')}, not {alg}")

    def _check_claims(self, claims: dict[str, Any]) -> None:
        s = self.settings
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self._clock()), leeway=int(s.clock_skew),
            iss={"essential": True, "value": s.issuer},
            aud={"essential": True, "values": list(s.audiences)},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(claims)
        except ClaimError as exc:
            if isinstance(exc, InvalidClaimError) and exc.claim in ("iss", "aud"):
                noun = {"iss": "issuer", "aud": "audience"}[exc.claim]
                raise TokenRejected(f"wrong {noun} {claims.get(exc.claim)!r}") from None
            raise TokenRejected(f"claim {exc.claim!r}: {exc.description}") from None
        except JoseError as exc:
            raise TokenRejected(f"claims: {exc.description}") from None


class OidcIdentities:
    """The ``IdentityProvider`` for OIDC tokens: validation, then claims → ``Identity``."""

    def __init__(self, settings: OidcSettings, validator: OidcValidator | None = None) -> None:
        self.settings = settings
        self.validator = validator or OidcValidator(settings)

    async def warm_up(self) -> bool:
        """Fetch the signing keys now (at engine start) so that a misconfigured or unreachable
        provider shows in the log at once, not at the first login. Never raises."""
        return await self.validator.jwks.refresh("start")

    async def authenticate(self, user: str, token: str) -> Identity | None:
        identity = await self._identity(token, f"login as {user!r}")
        if identity is not None and identity.name != user:
            log.info("oidc: login as %r refused: the token names %r", user, identity.name)
            return None
        return identity

    async def identify(self, token: str) -> Identity | None:
        return await self._identity(token, "control API")

    async def _identity(self, token: str, what: str) -> Identity | None:
        try:
            claims = await self.validator.validate(token)
            return self.to_identity(claims)
        except TokenRejected as exc:
            log.info("oidc: %s refused: %s", what, exc)
            return None

    def to_identity(self, claims: dict[str, Any]) -> Identity:
        s = self.settings
        subject = claims["sub"]
        name = claim_at(claims, s.username_claim)
        if name is None:
            name = subject
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise TokenRejected(f"claim {s.username_claim!r} is not a usable login name")
        raw = claim_at(claims, s.groups_claim)
        if raw is None:
            raw = []
        elif isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not all(isinstance(g, str) for g in raw):
            raise TokenRejected(f"claim {s.groups_claim!r} is not a list of group names")
        marker = claim_at(claims, s.agent.claim)
        markers = marker if isinstance(marker, list) else [marker]
        is_agent = any(isinstance(m, str) and m in s.agent.values for m in markers)
        vendor = claim_at(claims, s.agent.vendor_claim) if is_agent else None
        return Identity(
            name=name,
            groups=frozenset(raw),
            kind="agent" if is_agent else "person",
            source="oidc",
            expires_at=float(claims["exp"]),
            vendor=vendor if isinstance(vendor, str) and vendor else None,
            subject=subject,
        )
