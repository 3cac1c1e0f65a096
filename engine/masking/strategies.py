"""How a detected value is masked: redact, partial, hash or null.

- ``redact`` replaces the value with a fixed ``mask`` (``****`` unless configured).
- ``partial`` keeps the first ``keep_first`` and last ``keep_last`` characters and turns the rest
  into ``*``, leaving separators where they are: ``**** **** **** 4242``. A value too short to
  show that much is masked whole, so that a partial rule never reveals a short value entirely.
- ``hash`` is a keyed HMAC-SHA256 of the value, ``h:`` and 12 hex digits: equal values give equal
  output in every row and session masked with the same key (joins and counts still work), and
  without the key nobody can test guesses against it.
- ``null`` turns a whole column value into SQL NULL (``apply`` returns ``None``); a value found
  inside text or a stream cannot become NULL, and the masker uses the ``mask`` instead.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

KINDS = ("redact", "partial", "hash", "null")

# Characters ``partial`` leaves in place: card and phone separators, and the punctuation that
# gives an email or a phone number its shape.
SEPARATORS = frozenset(" -./()+@")

_HIDDEN = re.compile("[^" + "".join(re.escape(ch) for ch in sorted(SEPARATORS)) + "]")

_HASH_DIGITS = 12  # 48 bits: collisions between distinct values of one column stay unlikely


@dataclass(frozen=True)
class Strategy:
    """One way of masking; ``kind`` is one of ``KINDS``."""

    kind: str
    keep_first: int = 0
    keep_last: int = 0
    mask: str = "****"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(
                f"masking strategy {self.kind!r} is unknown; use one of {', '.join(KINDS)}.")
        if self.keep_first < 0 or self.keep_last < 0:
            raise ValueError("keep_first and keep_last of a partial mask cannot be negative.")

    def apply(self, value: str, key: bytes) -> str | None:
        """The masked form of ``value``; ``None`` means SQL NULL. ``key`` is only for hashing."""
        if self.kind == "redact":
            return self.mask
        if self.kind == "partial":
            return partial(value, self.keep_first, self.keep_last)
        if self.kind == "hash":
            return keyed_hash(value, key)
        return None


def partial(value: str, keep_first: int, keep_last: int) -> str:
    """``value`` with all but its first and last few non-separator characters turned into ``*``."""
    # One regex pass stars every non-separator; only the few shown characters at each end are
    # walked in Python (this runs for every masked value: a per-character loop cost 5 µs).
    masked = _HIDDEN.sub("*", value)
    if keep_first + keep_last >= masked.count("*"):  # each non-separator is one ``*`` now
        return masked
    start, left = 0, keep_first
    while left:
        if value[start] not in SEPARATORS:
            left -= 1
        start += 1
    stop, left = len(value), keep_last
    while left:
        stop -= 1
        if value[stop] not in SEPARATORS:
            left -= 1
    return value[:start] + masked[start:stop] + value[stop:]


def keyed_hash(value: str, key: bytes) -> str:
    """``h:`` and the first 12 hex digits of HMAC-SHA256(key, value as UTF-8)."""
    if not key:
        raise ValueError("a hash masking strategy needs a non-empty secret key.")
    digest = hmac.new(key, value.encode("utf-8", "surrogateescape"), hashlib.sha256)
    return "h:" + digest.hexdigest()[:_HASH_DIGITS]


REDACT = Strategy("redact")
