"""The audit chain: each record's hash covers its predecessor's hash and its own content."""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS = "0" * 64


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def canonical(fields: dict[str, Any]) -> str:
    """The body as hashed and stored. Key order is the writer's; the hash covers this exact
    text, so a reader never needs to re-serialise it."""
    return _encode(fields)


def link(prev: str, seq: int, kind: str, session_id: str, ref: int, body: str) -> str:
    data = f"{prev}\n{seq}\n{kind}\n{session_id}\n{ref}\n{body}".encode()
    return hashlib.sha256(data).hexdigest()
