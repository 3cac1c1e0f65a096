"""Static tokens from the policies file: for offline use, demos and service accounts.

Tokens are declared as a SHA-256 digest or as the name of an environment variable, never as
plaintext in the file, and compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os

from engine.config import IdentityConfig
from engine.identity.base import Identity

log = logging.getLogger(__name__)


class StaticTokens:
    def __init__(self, identities: tuple[IdentityConfig, ...]) -> None:
        self._by_name = {i.name: i for i in identities}

    def _expected_digest(self, ident: IdentityConfig) -> bytes | None:
        if ident.token_sha256 is not None:
            return bytes.fromhex(ident.token_sha256)
        if ident.token_env is not None:
            value = os.environ.get(ident.token_env)
            if value:
                return hashlib.sha256(value.encode()).digest()
            log.warning("identity %s: environment variable %s is not set", ident.name,
                        ident.token_env)
        return None

    async def authenticate(self, user: str, token: str) -> Identity | None:
        ident = self._by_name.get(user)
        given = hashlib.sha256(token.encode()).digest()
        if ident is None:
            log.info("authentication failed for %r: no such identity", user)
            return None
        expected = self._expected_digest(ident)
        if expected is None or not hmac.compare_digest(given, expected):
            log.info("authentication failed for %r: wrong token", user)
            return None
        return Identity(ident.name, ident.groups, ident.kind, "static")

    def by_public_key(self, user: str, public_data: bytes) -> Identity | None:
        """The identity ``user`` when ``public_data`` (an SSH public key blob) is one of its
        registered keys."""
        ident = self._by_name.get(user)
        if ident is None or not ident.ssh_keys:
            log.info("public key authentication failed for %r: no keys registered", user)
            return None
        for line in ident.ssh_keys:
            try:
                known = base64.b64decode(line.split(" ")[1])
            except (IndexError, ValueError):
                continue
            if hmac.compare_digest(known, public_data):
                return Identity(ident.name, ident.groups, ident.kind, "publickey")
        log.info("public key authentication failed for %r: key not registered", user)
        return None

    def identity(self, name: str) -> Identity | None:
        ident = self._by_name.get(name)
        return None if ident is None else Identity(ident.name, ident.groups, ident.kind)

    async def identify(self, token: str) -> Identity | None:
        """The identity whose token this is (operators present only a token)."""
        given = hashlib.sha256(token.encode()).digest()
        found = None
        for ident in self._by_name.values():  # compare with all: no early exit on a match
            expected = self._expected_digest(ident)
            if expected is not None and hmac.compare_digest(given, expected):
                found = ident
        if found is None:
            log.info("control API: a token matched no identity")
            return None
        return Identity(found.name, found.groups, found.kind, "static")
