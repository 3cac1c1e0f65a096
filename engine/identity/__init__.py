"""Who is connecting. Front ends ask one ``IdentityProvider``; today static tokens, later OIDC."""

from engine.identity.base import Identity, IdentityProvider
from engine.identity.static import StaticTokens

__all__ = ["Identity", "IdentityProvider", "StaticTokens"]
