"""Detected values inside encodings: base64, hex and URL encoding, decoded and screened.

A card number or an address base64- or hex-encoded (``encode(email::bytea, 'base64')``,
``base64 secrets.txt``, ``%40`` in a URL) matches no detector as it stands. As secret scanners
do, ``EncodedValues`` finds candidates — runs of at least ``MIN_RUN`` base64 or hex characters,
and words holding a ``%XX`` escape — decodes each (hex when the run is hex-shaped, base64,
standard or URL-safe, otherwise; the lines of a wrapped block are decoded joined, then one by
one) and hands the decoded text to the value masker again, so that an encoding of an encoding
is read too (each decoding is shorter, so this ends). When the decoded text has a finding, the
whole candidate is masked with that finding's detector (and counted under it): the gateway
cannot mask inside an encoding without changing what it decodes to.

What it costs: a candidate is only a run of 12 or more characters (the shortest address worth
finding is 9 bytes); ordinary text has few (long identifiers, digests), and each costs one
decode and one screen of the decoded bytes. Binary data decoded from a candidate is screened
as it is (``surrogateescape``): a value inside it is still found.

What is not read: a run cut off its 4-character alignment (base64 that starts inside a word),
unpadded base64 whose length is not a multiple of 4, URL encoding without a ``%XX`` escape
(``4111+1111+1111+1111``),
encodings split by anything but line breaks, and other transformations (reversed text, folded
lines, ``od`` dumps): the SSH side masks the whole output of commands that transform it
(``engine.ssh.output``).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable, Iterator
from urllib.parse import unquote_plus

from engine.masking.detectors import Finding

MIN_RUN = 12  # characters of a candidate: base64 of 9 bytes, hex of 6
MAX_CANDIDATE = 1 << 20  # characters: longer runs are decoded in the first MAX_CANDIDATE only

# No dash: every date and UUID would be a candidate (base64url holding a dash is not read).
_B64 = "A-Za-z0-9+/_"
# A run of base64 or hex characters (padding after it), the lines after it that are runs too
# (a wrapped block: ``base64`` wraps at 76, ``xxd -p`` at 60; a short last line only with its
# padding, so that a word on the next line is not taken in). The class leads so that the
# search skips in C; the look-behind keeps a run from starting inside a longer one.
RUN = re.compile(
    rf"[{_B64}](?<![{_B64}][{_B64}])[{_B64}]{{{MIN_RUN - 1},}}=*"
    rf"(?:\r?\n(?:[{_B64}]{{{MIN_RUN},}}=*|[{_B64}]{{2,}}==?)(?=[\r\n]|\Z))*", re.ASCII)
# What the screens look for: a run anywhere (no look-behind: raw protocol bytes put a length
# before a value, and it may be a letter).
RUN_TRIGGER = rf"[{_B64}]{{{MIN_RUN}}}"
URL_TRIGGER = r"%[0-9A-Fa-f]{2}"
_WORD = re.compile(r"[^\s\"'<>`]+", re.ASCII)
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}", re.ASCII)
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+", re.ASCII)
_PREFIXED_HEX = re.compile(r"0?[xX]((?:[0-9A-Fa-f]{2})+)", re.ASCII)
_DIGITS_ENCODED = 26  # hex of 13 ASCII digits is 26 digits: shorter digit runs are numbers
_LINES = re.compile(r"\r?\n")
_URLSAFE = str.maketrans("_", "/")

Find = Callable[[str], list[Finding]]


class EncodedValues:
    """Candidates in a text whose decoding has a finding, each as one ``Finding``."""

    def __init__(self, find: Find) -> None:
        self._find = find  # the value masker's: decoded text is screened like any text

    def find(self, text: str) -> Iterator[Finding]:
        for m in RUN.finditer(text):
            detector = self._decoded_finding(m.group())
            if detector is not None:
                yield Finding(m.start(), m.end(), detector)
        if "%" in text:
            # Each word (a run without white space or quotes) holding a %XX escape, found in
            # one pass: a pattern that looks for the escape inside the word from every start
            # is quadratic in a long word (binary data), and stalled the loop for seconds.
            for m in _WORD.finditer(text):
                if "%" not in m.group() or _ESCAPE.search(m.group()) is None:
                    continue
                decoded = unquote_plus(m.group(), errors="surrogateescape")
                if decoded != m.group():
                    found = self._find(decoded)
                    if found:
                        yield Finding(m.start(), m.end(), found[0].detector)

    def _decoded_finding(self, run: str) -> str | None:
        """The detector of the first finding in the decoded run, or None."""
        if "\n" in run:
            lines = [line for line in _LINES.split(run) if line]
            for piece in ("".join(lines), *lines):
                detector = self._decoded_finding(piece)
                if detector is not None:
                    return detector
            return None
        decoded = decode(run[:MAX_CANDIDATE])
        if decoded is None:
            return None
        found = self._find(decoded)
        return found[0].detector if found else None


def decode(run: str) -> str | None:
    """A run of hex (when it is hex-shaped, maybe after an ``x`` or ``0x``: a bytea's text
    ``\\x3431…``, a hex dump's ``0x3431…``) or base64 characters, decoded; None if it is not."""
    prefixed = _PREFIXED_HEX.fullmatch(run)
    if prefixed is not None:
        run = prefixed.group(1)
    if _HEX.fullmatch(run):
        if len(run) < _DIGITS_ENCODED and run.isdigit():
            return None  # a number (a card itself); hex of the shortest card is 26 digits
        raw = binascii.unhexlify(run)
    else:
        # Encoders pad to a multiple of 4 (PostgreSQL's encode, base64(1), Python's b64encode):
        # a run of another length without padding is a word, not base64 (most long words are
        # thus never decoded). Unpadded base64url is read only in lengths of 4n.
        if len(run) % 4 and not run.endswith("="):
            return None
        body = run.rstrip("=")
        if "_" in body:
            body = body.translate(_URLSAFE)
        try:
            raw = binascii.a2b_base64(body + "=" * (-len(body) % 4), strict_mode=True)
        except binascii.Error:
            return None
    return raw.decode("utf-8", "surrogateescape")
