"""The provider's signing keys (JWKS): fetched through discovery, cached, refreshed with care.

Keys are looked up by the token's ``kid`` only in the set fetched from the ``jwks_uri`` that the
issuer's own discovery document names — never from a token's ``jwk``/``jku``/``x5u``/``x5c``
header. The set is fetched again when it is older than ``refresh`` (periodic rotation) and when
a token names a key id we do not know (a rotation we have not seen yet); both are rate-limited by
``cooldown``, so a flood of made-up key ids costs the provider at most one request per cooldown.
Concurrent requests share one fetch. When a refresh fails the previous keys stay in use (the
provider blinked; the keys it published are still its keys); with no keys at all, every token is
refused and ``last_error`` says why.

Only public, asymmetric signing keys are kept: an ``oct`` (HMAC) key in a provider's JWKS is
dropped, so no token can be checked with a shared secret, let alone with a public key used as
one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey, import_key

from engine.identity.fetch import FetchError, check_url, discover, get_json

log = logging.getLogger(__name__)

_MIN_RSA_BITS = 2048


class JwksCache:
    def __init__(self, issuer: str, *, timeout: float = 5.0, refresh: float = 3600.0,
                 cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.issuer = issuer
        self.timeout = timeout
        self.refresh_after = refresh
        self.cooldown = cooldown
        self._clock = clock
        self._by_kid: dict[str, Key] = {}
        self._without_kid: list[Key] = []
        self._jwks_uri: str | None = None
        self._fetched_at: float | None = None  # last success
        self._attempted_at: float | None = None  # last attempt, success or not
        self._lock = asyncio.Lock()
        self.last_error: str | None = None
        self.fetches = 0  # JWKS downloads, for tests and metrics

    @property
    def has_keys(self) -> bool:
        return bool(self._by_kid or self._without_kid)

    async def key(self, kid: str | None) -> Key | None:
        """The published key with this id (or the only key without an id when ``kid`` is None),
        refreshing the set first when it is stale or the id is unknown (rate-limited)."""
        if self._stale():
            first = self._fetched_at is None
            await self.refresh("first use" if first else "periodic refresh", periodic=True)
        found = self._lookup(kid)
        if found is None and self._may_try():
            await self.refresh(f"unknown key id {kid!r}")
            found = self._lookup(kid)
        return found

    async def refresh(self, why: str, *, periodic: bool = False) -> bool:
        """Fetch the set now unless another caller just did (the cooldown); True on success."""
        async with self._lock:
            if not self._may_try():
                return False  # someone fetched (or failed to) a moment ago: use that
            self._attempted_at = self._clock()
            try:
                jwks_uri, keys = await asyncio.to_thread(self._fetch, periodic)
            except FetchError as exc:
                self.last_error = str(exc)
                self._jwks_uri = None  # discover again next time: the endpoint may have moved
                kept = "keeping the previous keys" if self.has_keys else "no keys: tokens refused"
                log.error("oidc: cannot fetch the signing keys of %s (%s): %s; %s", self.issuer,
                          why, exc, kept)
                return False
            self._jwks_uri = jwks_uri
            self._by_kid = {str(k.get("kid")): k for k in keys if k.get("kid")}
            self._without_kid = [k for k in keys if not k.get("kid")]
            self._fetched_at = self._attempted_at
            self.last_error = None
            log.info("oidc: %d signing keys from %s (%s)", len(keys), jwks_uri, why)
            return True

    def _stale(self) -> bool:
        if self._fetched_at is None:
            return self._may_try()
        return self._clock() - self._fetched_at >= self.refresh_after and self._may_try()

    def _may_try(self) -> bool:
        return self._attempted_at is None or self._clock() - self._attempted_at >= self.cooldown

    def _lookup(self, kid: str | None) -> Key | None:
        if kid is None:
            return self._without_kid[0] if len(self._without_kid) == 1 else None
        return self._by_kid.get(kid)

    # Runs in a worker thread: blocking HTTP and key parsing stay off the event loop.
    def _fetch(self, rediscover: bool) -> tuple[str, list[Key]]:
        jwks_uri = self._jwks_uri
        if jwks_uri is None or rediscover:
            doc = discover(self.issuer, timeout=self.timeout)
            uri = doc.get("jwks_uri")
            if not isinstance(uri, str):
                raise FetchError(f"the discovery document of {self.issuer} has no jwks_uri")
            check_url(uri)
            jwks_uri = uri
        self.fetches += 1
        keys = parse_jwks(get_json(jwks_uri, timeout=self.timeout))
        if not keys:
            raise FetchError(f"{jwks_uri}: no usable signing keys (asymmetric, use sig)")
        return jwks_uri, keys


def parse_jwks(data: dict[str, Any]) -> list[Key]:
    """The usable public signing keys of a JWKS document; the others are skipped with a log."""
    items = data.get("keys")
    if not isinstance(items, list):
        raise FetchError("the JWKS document has no 'keys' list")
    out: list[Key] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        kid = item.get("kid")
        if item.get("kty") not in ("RSA", "EC", "OKP"):
            log.info("oidc: JWKS key %r skipped: kty %r is not an asymmetric key type", kid,
                     item.get("kty"))
            continue
        if item.get("use") not in (None, "sig"):
            continue  # an encryption key
        if kid is not None and not isinstance(kid, str):
            continue
        public = {k: v for k, v in item.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
        try:
            key = import_key(public)
        except (JoseError, ValueError, TypeError) as exc:
            log.warning("oidc: JWKS key %r skipped: %s", kid, exc)
            continue
        if isinstance(key, RSAKey) and key.raw_value.key_size < _MIN_RSA_BITS:
            log.warning("oidc: JWKS key %r skipped: RSA key shorter than %d bits", kid,
                        _MIN_RSA_BITS)
            continue
        if not isinstance(key, RSAKey | ECKey | OKPKey):
            continue
        out.append(key)
    return out
