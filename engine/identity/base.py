"""The identity interface shared by every front end (PostgreSQL, SSH, the control API).

An ``Identity`` is what the rest of the engine knows about who is connected: policy reads
``name``, ``groups`` and ``kind``; sessions and statistics show ``kind`` and ``vendor``; a session
established by a token that expires (OIDC) carries ``expires_at`` so that it can be ended then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Identity:
    name: str
    groups: frozenset[str]
    kind: str = "person"  # "person" or "agent"
    source: str = "static"  # how it was established: "static", "oidc", "publickey"
    # When the proof stops being valid (a token's ``exp``, seconds since the epoch); None for
    # proofs that do not expire (static tokens, public keys).
    expires_at: float | None = None
    # Which AI vendor an agent comes from (a tag from its token), for sessions and statistics.
    vendor: str | None = None
    # The identity provider's stable id for this principal (``sub``), kept for the audit trail:
    # a display name can be reassigned, the subject cannot.
    subject: str | None = None


class IdentityProvider(Protocol):
    async def authenticate(self, user: str, token: str) -> Identity | None:
        """The identity that ``token`` proves for login name ``user``, or None.

        Implementations log the reason of a rejection; the caller tells the client only that
        authentication failed.
        """
        ...

    async def identify(self, token: str) -> Identity | None:
        """The identity a token alone proves (operators on the control API), or None."""
        ...


class IdentityDirectory(IdentityProvider, Protocol):
    """What the SSH front end needs besides tokens: registered public keys and lookup by name."""

    def by_public_key(self, user: str, public_data: bytes) -> Identity | None:
        """The identity ``user`` when ``public_data`` (an SSH public key blob) is registered."""
        ...

    def identity(self, name: str) -> Identity | None:
        """The statically declared identity called ``name``, or None."""
        ...
