"""The audit chain: each record's hash covers its predecessor's hash and its own content."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

GENESIS = "0" * 64


def canonical(fields: dict[str, Any]) -> bytes:
    """The body as hashed and stored: compact JSON in the writer's key order (the hash covers
    these exact bytes, so a reader never re-serialises it). orjson: ~0.3 µs against ~4 µs for
    the standard library here, and this runs twice per statement."""
    return orjson.dumps(fields)


def link(prev: str, seq: int, kind: str, session_id: str, ref: int, body: bytes) -> str:
    head = f"{prev}\n{seq}\n{kind}\n{session_id}\n{ref}\n".encode()
    return hashlib.sha256(head + body).hexdigest()
