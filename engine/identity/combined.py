"""Static tokens and OIDC side by side: what the engine's front ends ask.

A token shaped like a JWT goes to the OIDC provider when one is configured; anything else is a
static token. There is no fallback from one to the other: a token is judged once, by the
provider it claims to come from, so a rejected JWT is not tried again as a static secret.
SSH public keys and lookup by name are the static identities' (OIDC has no keys to register).
"""

from __future__ import annotations

from engine.config import Config
from engine.identity.base import Identity
from engine.identity.oidc import OidcIdentities, looks_like_jwt
from engine.identity.static import StaticTokens


class CombinedIdentities:
    def __init__(self, static: StaticTokens, oidc: OidcIdentities | None = None) -> None:
        self.static = static
        self.oidc = oidc

    @classmethod
    def from_config(cls, config: Config) -> CombinedIdentities:
        oidc = OidcIdentities(config.oidc) if config.oidc is not None else None
        return cls(StaticTokens(config.identities), oidc)

    async def warm_up(self) -> None:
        """Fetch the provider's keys at start, so that a broken provider is logged at once."""
        if self.oidc is not None:
            await self.oidc.warm_up()

    async def authenticate(self, user: str, token: str) -> Identity | None:
        if self.oidc is not None and looks_like_jwt(token):
            return await self.oidc.authenticate(user, token)
        return await self.static.authenticate(user, token)

    async def identify(self, token: str) -> Identity | None:
        if self.oidc is not None and looks_like_jwt(token):
            return await self.oidc.identify(token)
        return await self.static.identify(token)

    def by_public_key(self, user: str, public_data: bytes) -> Identity | None:
        return self.static.by_public_key(user, public_data)

    def identity(self, name: str) -> Identity | None:
        return self.static.identity(name)
