"""Who is connecting. Front ends ask one ``IdentityProvider``.

- ``static.py``: tokens (as SHA-256 digests or environment variables) and SSH public keys
  declared in the policies file — for offline use, demos and service accounts;
- ``oidc.py``: tokens from the corporate OpenID Connect provider, checked against its published
  keys (``jwks.py``, fetched with ``fetch.py``) — users, operators and AI agents;
- ``combined.py``: both at once, which is what the engine uses.
"""

from engine.identity.base import Identity, IdentityDirectory, IdentityProvider
from engine.identity.combined import CombinedIdentities
from engine.identity.oidc import OidcIdentities, OidcValidator, TokenRejected, looks_like_jwt
from engine.identity.static import StaticTokens

__all__ = [
    "CombinedIdentities",
    "Identity",
    "IdentityDirectory",
    "IdentityProvider",
    "OidcIdentities",
    "OidcValidator",
    "StaticTokens",
    "TokenRejected",
    "looks_like_jwt",
]
