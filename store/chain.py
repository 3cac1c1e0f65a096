"""The audit chain: each record's hash covers its predecessor's hash and its own content."""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS = "0" * 64


def canonical(fields: dict[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def link(prev: str, seq: int, kind: str, session_id: str, ref: int, body: str) -> str:
    data = f"{prev}\n{seq}\n{kind}\n{session_id}\n{ref}\n{body}".encode()
    return hashlib.sha256(data).hexdigest()
