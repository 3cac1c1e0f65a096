"""Mask one long database value in pieces, exactly as it is masked whole, within a budget.

A value of a few MiB masked in one call holds its worker for seconds; ``mask_in_pieces`` cuts
it where no finding of the values masker (``ValueMasker.for_values``) can cross the cut, masks
each piece, and checks the budget between pieces. The result is the whole value's: the same
text and the same detectors, in order (``tests/engine/masking/test_pieces.py`` places a value of
every detector across every cut).

Where a cut is safe (derived from the built-in patterns, as ``engine.masking.stream`` derives
its own, but for values: a run of digits is a card only whole, and a base64 block wrapped over
lines is read joined):

- after a run of blanks and tabs whose word before it ends every value (``ends_every_value``:
  read without the characters that draw nothing and folded, not a digit, a capital,
  ``) = : - +``, a key word such as ``password``, nor a lower-case IBAN group such as
  ``nwbk``, nor a comma: a list's elements go on), outside every quoted value
  (from a quote after ``=`` or ``:`` to the same quote, or to the end of the line), on a line
  without a JSON escape up to a little past the cut;
- after a line feed too, under the same rule, and when the line before it does not end in a
  base64 character (a wrapped block goes on on the next line);
- never inside a private key block (from its header to its footer; a header without a footer
  runs to the end of the value, as the pattern reads it); a value with a header the
  detectors read only folded or without characters that draw nothing is masked whole.

Commas are no cut (a URL-encoded word runs across one). With a custom detector (any pattern)
there is no cut: the value is masked whole. A value without a cut (16 MB of one word) is masked
in one call: it can only be given back whole or refused.

When the budget is spent with pieces left, ``OverBudget`` is raised: nothing of the value is
given back (the caller refuses it), never a value cut short or with a part left in clear.
"""

from __future__ import annotations

import re
import time
from bisect import bisect_left
from collections.abc import Callable

from engine.masking.detectors import KEY_HEADER, is_builtin
from engine.masking.escaped import TRIGGER as ESCAPE_TRIGGER
from engine.masking.masker import ValueMasker
from engine.masking.stream import ends_values
from engine.masking.unidigits import fold
from engine.masking.zerowidth import CLASS as UNSEEN_CLASS
from engine.masking.zerowidth import present as unseen_present
from engine.masking.zerowidth import stripped as unseen_stripped

PIECE = 1 << 14  # characters masked per call, roughly (cuts fall where values cannot cross)

_LAST_RUN = re.compile(r"[A-Za-z0-9]+\Z")
_BLANKS = re.compile(r"[ \t\n]+")
_BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_=")
_ESCAPE = re.compile(ESCAPE_TRIGGER)
_ESCAPE_REACH = 8  # characters past a cut an escape may reach back over (``\u0034``)
# What opens a quoted value that may hold blanks: the quote after a key's = or :.
# (Characters that draw nothing between them are read through, as the detectors read them.)
_OPENS = re.compile(rf"[=:](?:[ \t]|{UNSEEN_CLASS})*([\"'])")


class OverBudget(Exception):
    """A value whose masking was not done when its budget was spent."""

    def __init__(self, length: int, budget: float) -> None:
        super().__init__(f"a value of {length} characters could not be masked within "
                         f"{budget:g} s")
        self.length = length
        self.budget = budget


def mask_in_pieces(masker: ValueMasker, text: str, *, budget: float, piece: int = PIECE,
                   clock: Callable[[], float] = time.thread_time,
                   pause: Callable[[], None] | None = None) -> tuple[str, list[str]]:
    """``text`` masked as ``masker.mask(text)`` masks it, and the detector of each masked
    value, in pieces of about ``piece`` characters. Raises ``OverBudget`` when ``budget``
    seconds (by ``clock``) are spent and pieces are left. ``pause`` runs between pieces (a
    worker thread gives the interpreter away there). The clock is the masking thread's own
    CPU time: a wall clock counted the time other sessions held the interpreter or the
    cores, and one session's heavy pull made another's ordinary long value fail (outside
    attack round 14)."""
    if not all(is_builtin(d) or _builtin_card(d) for d in masker.detectors):
        return masker.mask(text)  # a custom pattern may match across anything
    if _hidden_key_header(text):
        return masker.mask(text)
    deadline = clock() + budget
    out: list[str] = []
    fired: list[str] = []
    pos, n = 0, len(text)
    while pos < n:
        if pos and clock() > deadline:
            raise OverBudget(n, budget)
        cut = next_cut(text, pos, pos + piece)
        masked, names = masker.mask(text[pos:cut])
        out.append(masked)
        fired += names
        pos = cut
        if pause is not None and pos < n:
            pause()
    return "".join(out), fired


def next_cut(text: str, pos: int, target: int) -> int:
    """The last safe cut in ``text`` after ``pos`` (itself a cut, or the start) and at or
    before ``target``; the first after ``target`` when there is none; ``len(text)`` when there
    is none at all."""
    n = len(text)
    lo = pos
    hi = min(max(target, pos + 1), n)
    while hi < n:
        blocked = _key_block_end(text, lo, hi)
        if blocked is not None:
            if blocked >= n:
                return n
            lo, hi = blocked, max(hi, blocked)
            continue
        cut = _last_cut(text, pos, lo, hi)
        if cut is not None:
            return cut
        lo, hi = hi, min(hi + (hi - pos) + 1, n)
    return n


def _hidden_key_header(text: str) -> bool:
    """Whether ``text`` holds a private key header the detectors read only folded or without
    its characters that draw nothing (``-----BEGIN<U+200B> EC PRIVATE KEY-----``): the cuts
    do not see that block, so the value is masked whole."""
    if text.isascii():
        return False
    plain = fold(text)
    if unseen_present(plain):
        plain = unseen_stripped(plain)[0]
    return len(KEY_HEADER.findall(plain)) != len(KEY_HEADER.findall(text))


def _key_block_end(text: str, lo: int, hi: int) -> int | None:
    """Where a private key block that starts before ``hi`` and is open at ``hi`` ends (the
    end of the text without a footer); None when no block is open there."""
    pos = max(lo - 64, 0)  # a header that straddles ``lo`` (no cut falls inside one)
    end = None
    while (header := KEY_HEADER.search(text, pos, hi + 64)) is not None and header.start() < hi:
        footer = f"-----END {header.group(1)}-----"
        at = text.find(footer, header.end())
        stop = len(text) if at < 0 else at + len(footer)
        if stop > hi:
            end = stop if end is None else max(end, stop)
        if at < 0:
            break
        pos = stop
    return end


def _last_cut(text: str, anchor: int, lo: int, hi: int) -> int | None:
    """The last safe cut in ``(lo, hi]``, looking from the right. ``anchor`` is a safe cut
    at or before ``lo`` (or the start): no quoted value of its line crosses it."""
    line = -1  # the start of the line whose quoted values and escapes were read
    opened: list[int] = []  # where each quoted value of that line opens, in order
    reach: list[int] = []  # how far the values opened so far reach (a running maximum)
    escape_at = -1
    runs = _runs_backwards(text, lo, hi)
    for (start, end), (line_start, word_start) in zip(runs, _starts(text, anchor, runs),
                                                       strict=True):
        word = text[word_start:start]
        if not word or not ends_every_value(word):
            continue
        if text.find("\n", start, end) >= 0:
            if word[-1] in _BASE64:
                continue  # a wrapped base64 block may go on on the next line
            return end
        if line_start != line:  # a new line: its quoted values and its first escape
            line = line_start
            base = max(line_start, anchor)
            line_end = text.find("\n", start)
            line_end = len(text) if line_end < 0 else line_end
            opened, reach = _quoted(text, base, hi, line_end)
            found = _ESCAPE.search(text, max(base - _ESCAPE_REACH, line_start),
                                   min(hi + _ESCAPE_REACH, len(text)))
            escape_at = found.start() if found is not None else -1
        k = bisect_left(opened, start)
        if k and reach[k - 1] >= end:
            continue  # inside a quoted value
        if 0 <= escape_at < end + _ESCAPE_REACH:
            continue  # read decoded: an escaped quote, = or key letter defeats the rules
        return end
    return None


def ends_every_value(word: str) -> bool:
    """Whether the word before a blank ends every value a detector of the values masker reads
    (``ends_values``), read as the detectors read it: without the characters that draw nothing
    (``4012<U+200E> 8888 …`` is a card), folded, and without a blank it ends in once folded
    (a no-break space). An IBAN's groups may be in lower case (``gb29 nwbk 6016 …``): a word
    whose last run of letters and digits is four long and ends in a letter may be a group
    that goes on (outside attack round 14, finding 2: the cut fell after ``nwbk``; a group of
    one to three is an IBAN's last)."""
    if not word.isascii():
        if unseen_present(word):
            word = unseen_stripped(word)[0]
        word = fold(word).rstrip()
        if not word:
            return False  # only characters that draw nothing: what ends it is further back
    if word[-1] == "," or not ends_values(word):
        return False  # (a comma: a list's elements go on, ``[4012, 8888, 8888, 1881]``)
    last = _LAST_RUN.search(word)
    return last is None or not (len(last.group()) == 4 and last.group()[-1].isalpha())


def _starts(text: str, anchor: int, runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """For each of ``runs`` (the last first): where its line starts, and where the word before
    it starts. Read once from the left, the word before a run starting where the run before
    it ends: looking for them back from every blank of a line of a MiB made finding no cut
    quadratic (seconds for 1 MiB of ``7 7 7 …``). A line that starts before
    ``anchor - _ESCAPE_REACH`` is taken to start there: nothing read here looks further back
    (``anchor`` is the start, or comes after a blank)."""
    if not runs:
        return []
    floor = max(anchor - _ESCAPE_REACH, 0)
    first = runs[-1][0]
    line_start = max(text.rfind("\n", floor, first) + 1, floor)
    word_start = max(text.rfind(" ", line_start, first), text.rfind("\t", line_start, first),
                     line_start - 1) + 1
    starts: list[tuple[int, int]] = []
    for start, end in reversed(runs):
        starts.append((line_start, word_start))
        feed = text.rfind("\n", start, end)
        if feed >= 0:
            line_start = feed + 1
        word_start = end
    starts.reverse()
    return starts


def _quoted(text: str, start: int, stop: int, line_end: int) -> tuple[list[int], list[int]]:
    """The quoted values (``= 'a b'``, ``: "a b"``) that open in ``text[start:stop]``: where
    each opens, and how far those opened so far reach (to the same quote, else to the line's
    end: the secret_assignment pattern reads a quoted value so)."""
    opened: list[int] = []
    reach: list[int] = []
    furthest = -1
    for m in _OPENS.finditer(text, start, stop):
        quote = m.group(1)
        close = text.find(quote, m.end(), line_end)
        furthest = max(furthest, line_end if close < 0 else close)
        opened.append(m.start(1))
        reach.append(furthest)
    return opened, reach


def _runs_backwards(text: str, lo: int, hi: int) -> list[tuple[int, int]]:
    """The runs of blanks, tabs and line feeds in ``[lo, hi)``, the last first; a run that
    goes on past ``hi`` is not one (where it ends is not known yet)."""
    runs = [m.span() for m in _BLANKS.finditer(text, lo, hi)]
    if runs and runs[-1][1] == hi and hi < len(text) and text[hi] in " \t\n":
        runs.pop()
    runs.reverse()
    return runs


def _builtin_card(detector: object) -> bool:
    """The built-in card detector as ``for_values`` makes it (``glued=False``)."""
    from engine.masking.detectors import BUILTIN, CardDetector

    if not isinstance(detector, CardDetector):
        return False
    original = BUILTIN.get(detector.name)
    return (isinstance(original, CardDetector) and original.pattern is detector.pattern
            and original.validate is detector.validate and original.trigger == detector.trigger)
