"""The identity interface shared by every front end (PostgreSQL now, SSH and OIDC later)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Identity:
    name: str
    groups: frozenset[str]
    kind: str = "person"  # "person" or "agent"
    source: str = "static"  # how it was established: "static", later "oidc", "publickey"


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
