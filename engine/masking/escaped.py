"""Detected values behind JSON string escapes, read as a JSON parser reads them.

A JSON string may write any character as ``\\uXXXX``, a slash as ``\\/``, a quote as ``\\"``
and a tab or a line break as ``\\t``, ``\\n``: a card written ``\\u0034\\u0031…``, an address
``alice\\u0040example.com``, a ``"password": \\"x\\"`` inside a string, or a card right after a
``\\n`` (whose ``n`` is a letter: the card had no boundary before it) matched no detector, and
a client that parses the JSON reads the value in clear. As for encodings
(``engine.masking.encoded``), the text is decoded and the decoded text handed to the value
masker again; unlike an encoding, each decoded character comes from a known span of the text
(an escape, or itself), so a finding is mapped back to exactly the characters it was read from
and only those are masked.

Every escape a JSON string may hold is decoded, anywhere in a text, not only between quotes:
a text cut out of a JSON document, a log line, source code read the same (JavaScript, Java and
Python share these escapes). ``TRIGGER`` is an escape whose decoded character can make or
complete a finding; a text without one is read as it stands (``\\\\`` is a backslash either
way, and no value holds one). JSON inside a JSON string (escaped twice) is read by the next
round, up to ``MAX_ROUNDS`` rounds: ``\\u005cu005cu005c…`` makes one new escape a round, and
unbounded it nested a round per escape (quadratic, and out of stack). What a client would
have to decode more than ``MAX_ROUNDS`` times is read as it stands after them.

Cost: one split of the text at its escapes (in C), each escape's character looked up in a
table, and one screen of the decoded text; offsets are worked out only for a finding.
"""

from __future__ import annotations

import json
import re
import threading
from bisect import bisect_right
from collections.abc import Callable, Iterator
from itertools import accumulate

from engine.masking.detectors import Finding

# What makes decoding worth it (a regex fragment without look-arounds: the screens and the
# native prefilter use it as it is). Letters after the backslash are JSON's own escapes only.
TRIGGER = r"""\\(?:u[0-9A-Fa-f]{4}|[/"bfnrt])"""
# Every escape of a JSON string, the part after the backslash captured (``re.split`` keeps it).
_ESCAPE = re.compile(r"""\\(u[0-9A-Fa-f]{4}|["\\/bfnrt])""")
_TRIGGER = re.compile(TRIGGER)
_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
           "t": "\t"}
_TABLE_SIZE = 4096  # escapes remembered (hex digits in either case make ~1M spellings)
MAX_ROUNDS = 4  # nested decodings of one text (JSON in JSON in JSON in JSON)
_ROUNDS = threading.local()  # rounds under way in this thread (maskers are shared)

Find = Callable[[str], list[Finding]]


class _Table(dict[str, str]):
    """The character of each escape body (``u0034`` → ``4``), learnt as they come."""

    def __missing__(self, body: str) -> str:
        char = chr(int(body[1:], 16)) if len(body) == 5 else _SIMPLE[body]
        if len(self) < _TABLE_SIZE:
            self[body] = char
        return char


_CHARS = _Table(_SIMPLE)


def has_escape(text: str) -> bool:
    """Whether ``text`` holds an escape worth decoding."""
    return "\\" in text and _TRIGGER.search(text) is not None


def unescape(text: str) -> str:
    """``text`` with every JSON string escape decoded (a lone ``\\ud83d`` stays one code
    point); the text itself when it has none."""
    parts = _ESCAPE.split(text)
    if len(parts) == 1:
        return text
    parts[1::2] = map(_CHARS.__getitem__, parts[1::2])
    return "".join(parts)


def widened(text: str, start: int, end: int) -> tuple[int, int]:
    """``start`` and ``end`` moved out of any escape they fall inside: a finding read in the
    text as it stands may start at the ``n`` of a ``\\n``, and masking from there would leave a
    backslash escaping the mask (no JSON any more). An escaped backslash before the escape may
    make it no escape at all; the span is then one character wider than needed, never less."""
    if "\\" in text[max(0, start - 5):start]:
        for at in range(max(0, start - 5), start):
            if text[at] == "\\":
                m = _ESCAPE.match(text, at)
                if m is not None and m.end() > start:
                    start = at
                    break
    if "\\" in text[max(0, end - 5):end]:
        for at in range(max(0, end - 5), end):
            if text[at] == "\\":
                m = _ESCAPE.match(text, at)
                if m is not None and m.end() > end:
                    end = m.end()
                    break
    return start, end


def escape(text: str) -> str:
    """``text`` written as the inside of a JSON string (ASCII only): what replaces a value
    that was read from escapes, so that the string around it stays valid JSON."""
    return json.dumps(text)[1:-1]


class EscapedValues:
    """Findings in the decoded text of a text with escapes, as spans of the text itself."""

    def __init__(self, find: Find) -> None:
        self._find = find  # the value masker's: decoded text is screened like any text

    def find(self, text: str) -> Iterator[Finding]:
        parts = _ESCAPE.split(text)
        if len(parts) == 1:
            return
        rounds = getattr(_ROUNDS, "n", 0)
        if rounds >= MAX_ROUNDS:
            return
        bodies = parts[1::2]
        decoded_parts = list(parts)
        decoded_parts[1::2] = map(_CHARS.__getitem__, bodies)
        _ROUNDS.n = rounds + 1
        try:
            found = self._find("".join(decoded_parts))
        finally:
            _ROUNDS.n = rounds
        if not found:
            return
        # Where each part starts in the text and in the decoded text: a literal part has the
        # same length in both, an escape is its body and backslash there and one character here.
        sizes = list(map(len, parts))
        decoded_sizes = list(sizes)
        decoded_sizes[1::2] = [1] * len(bodies)
        sizes[1::2] = [n + 1 for n in sizes[1::2]]
        starts = [0, *accumulate(sizes)]
        decoded_starts = [0, *accumulate(decoded_sizes)]
        for f in found:
            first = bisect_right(decoded_starts, f.start) - 1
            last = bisect_right(decoded_starts, f.end - 1) - 1
            start = (starts[first] + f.start - decoded_starts[first] if first % 2 == 0
                     else starts[first])
            end = (starts[last] + f.end - decoded_starts[last] if last % 2 == 0
                   else starts[last + 1])
            yield Finding(start, end, f.detector)
