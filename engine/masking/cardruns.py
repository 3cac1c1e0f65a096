"""Cards inside runs of digits: any grouping, and digits glued on either side.

The card pattern (``engine.masking.detectors``) reads the groupings cards are printed in. SQL
casts and the shell write a card in others (outside attack on issue 14, round 11):
``40128888/88881881`` (``pg_lsn``), ``40:12:88:88:88:88:18:81`` (``macaddr8``), pairs with dashes,
tabs, groups of three; and ``cat k.txt suffix`` glues a digit to a card that ends a file
(``40128888888818815``), where the card is no longer a run of its own. ``find`` reads the class:

- a *run* is digits with at most one separator (blank, tab, ``- . / : _``) between any two;
- 13 to 19 digits of a run that pass Luhn (not all one digit) are a card, masked in whole
  groups (a run without separators is one group). In a run without separators any window of
  its digits counts (digits may be glued on either side: the shell's ``cat`` of several
  files, SQL's ``||``). In a run with separators the whole run counts; when its inner groups
  have a card's sizes (4, or the 6 of 4-6-5), the run with its first group cut to 4 digits or
  its last to 4 or 5 (``4012 8888 8888 18815``); and the run without its first group when
  that group ends a word (``sp3 401 288 888 888 1881``). A group of 13 digits or more is read
  as a run without separators of its own (but whole only when it is a fraction's);
- a run without separators longer than ``MAX_RUN`` digits is masked whole unchecked (about
  every run of 25 digits or more holds a window that passes Luhn; checking costs time), unless
  it is one digit repeated (``b'1111…'``), in which no window is a card;
- a date and time as PostgreSQL and ``ls --full-time`` print them (``2024-01-02 12:30:45.123456``,
  year 1900-2199, every field in range) is not part of a run: the digits of the timestamps of
  ordinary output would pass Luhn one time in ten. A card whose digits happen to read as such
  a timestamp is the price (about 1 in 100,000: its digits must hold 19xx-21xx followed by a
  valid month, day, hour, minute and second).

What it costs in false positives (measured on ordinary data, README): a number of 14 to 19
digits is masked when one of its windows passes Luhn (for 16 digits 2 times in 3; for the 19
of nanosecond times and snowflake ids 19 in 20), and a separated run of 13 to 19 digits (an
address and its port, a list of small numbers, a fraction) 1 time in 10.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterator

MIN_CARD, MAX_CARD = 13, 19
MAX_RUN = 40  # digits of a run without separators checked window by window

# Digits with at most one separator between any two (ASCII: the detectors read folded text;
# the apostrophe is the thousands separator of Swiss and other locales: 4'012'888'888'881'881).
_RUN = re.compile(r"[0-9](?:[\t ./:_'-]?[0-9]){12,}")
# Digit groups with blanks between them, two to eight somewhere (a card spaced out, or the
# columns of a table: only a card's printed layout counts, ``_LAYOUTS``; groups further apart
# than a tab stop read as apart).
_BLANKED = re.compile(r"(?<![0-9][\t ])(?<![0-9])[0-9]+(?:[\t ]{1,8}[0-9]+){2,}"
                      r"(?![\t ]{0,8}[0-9])")
_LAYOUTS = frozenset({(4, 4, 4, 4), (4, 4, 4, 4, 1), (4, 4, 4, 4, 2), (4, 4, 4, 4, 3),
                      (4, 6, 5), (4, 6, 4)})
# The elements of a list of numbers as PostgreSQL writes arrays (1-D or more), ranges,
# multiranges, points, boxes, paths, polygons, records and vectors, and JSON arrays: opened
# by a bracket, closed by one, each element a group of digits (maybe quoted, maybe negative),
# between them a comma (brackets and quotes around it) or a separator of a run. Such a list
# is read as a run: ``{40128888,88881881}``, ``[(4012,8888),(8888,1881)]``.
# A quote may come between the brackets: an array of records quotes each record
# (``{"(4012,8888)","(8888,1881)"}``, outside attack round 14, finding 3).
# (The brackets around a comma are at most 6 deep, PostgreSQL's limit of array dimensions:
# detectors.DIGITS' trigger has a bound on the characters between two digits.)
_LIST_GAP = r"(?:[\t ./:_'-]|[)\]}\"]{0,7}\ ?,\ ?[\[{(\"]{0,7}-?)"
_LISTED = re.compile(r"[\[{(][\[{(\"]*-?([0-9](?:" + _LIST_GAP + r"?[0-9]){12,})\"?[)\]}]")
_GROUP = re.compile(r"[0-9]+")
# Luhn's value of each ASCII digit, as it is and doubled.
_AS_IS = {48 + v: v for v in range(10)}
_DOUBLED = {48 + v: 2 * v - 9 if v > 4 else 2 * v for v in range(10)}
# A timestamp (date, time, fraction, offset), each field in range, year 1900-2199.
_TIMESTAMP = re.compile(
    r"(?<![0-9])(?:19|20|21)[0-9]{2}([-/])(?:0[1-9]|1[0-2])\1(?:0[1-9]|[12][0-9]|3[01])"
    r"[ T](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
    r"(?:[+-](?:[01][0-9]|2[0-3])(?::?[0-5][0-9])?)?(?![0-9])")


def find(text: str, covered: list[tuple[int, int]] | None = None, *,
         glued: bool = True) -> Iterator[tuple[int, int]]:
    """The spans of ``text`` (ASCII digits) that hold a card in a run, in order; a run inside
    one of ``covered`` (sorted spans already found) is not read again. ``glued=False``: a run
    without separators is a card only whole (a database value read whole, where digits on
    either side of one are the value's own: an id of 17 digits, not two files joined)."""
    if _TIMESTAMP.search(text) is not None:
        text = _TIMESTAMP.sub(lambda m: "x" * len(m.group()), text)
    starts = [a for a, _ in covered] if covered else []
    yield from _blank_spaced(text)
    yield from _listed(text)
    for m in _RUN.finditer(text):
        if starts:
            k = bisect.bisect_right(starts, m.start()) - 1
            if k >= 0 and covered is not None and covered[k][1] >= m.end():
                continue
        run = m.group()
        if run.isdigit():
            if _contiguous(run, windows=glued):
                yield m.span()
            continue
        worded = m.start() > 0 and text[m.start() - 1].isalpha()
        yield from _separated(run, m.start(), worded, covered or [], starts, windows=glued)


def _blank_spaced(text: str) -> Iterator[tuple[int, int]]:
    """Cards in a card's printed layout with two or more blanks somewhere between its groups
    (``4012  8888  8888  1881``), the groups alone between blanks (not the columns of a
    table: ``_LAYOUTS``)."""
    if "  " not in text and "\t" not in text:
        return
    for m in _BLANKED.finditer(text):
        groups = m.group().split()
        if tuple(len(g) for g in groups) in _LAYOUTS and _card("".join(groups)):
            yield m.span()


def _listed(text: str) -> Iterator[tuple[int, int]]:
    """Cards whose digits are a list's elements, read as one run (``_LISTED``). Only the
    whole list, with a card's cut windows when it is in groups of 4 (a list of ids in which
    some 13 to 19 digits in a row pass Luhn is not a card: 1 in 10 of them would)."""
    if "," not in text:
        return
    for m in _LISTED.finditer(text):
        run = m.group(1)
        if "," not in run:
            continue  # a run of its own (``find``)
        groups = list(_GROUP.finditer(run))
        if len(groups) < 2:
            continue
        yield from _separated(run, m.start(1), False, [], [], windows=False, alone=False)


def _card(digits: str) -> bool:
    return (MIN_CARD <= len(digits) <= MAX_CARD and digits.count(digits[0]) < len(digits)
            and _windows(digits, [0], [len(digits)]) is not None)


def _contiguous(run: str, *, windows: bool = True) -> bool:
    """Whether a run of digits alone holds a card: in any window of it (``windows``), or as
    a whole."""
    if len(run) < MIN_CARD:
        return False
    if len(run) > MAX_RUN:
        return windows and run.count(run[0]) < len(run)
    if not windows:
        return len(run) <= MAX_CARD and _windows(run, [0], [len(run)]) is not None
    return _windows(run, range(len(run)), range(len(run) + 1)) is not None


def _separated(run: str, offset: int, glued: bool, covered: list[tuple[int, int]],
               covered_starts: list[int], *, windows: bool = True, alone: bool = True,
               ) -> Iterator[tuple[int, int]]:
    """``run`` (at ``offset``) when it holds a card; ``glued``: its first group ends a word
    (``sp3 401 288 888 888 1881``), and the run without it is read too. A group of 13 digits
    or more is read as a run of its own too (digits glued to a card in a list of numbers),
    but for its windows when it is a fraction's (a float's 16 digits would be read as a card
    two times in three)."""
    groups = list(_GROUP.finditer(run))
    sizes = [len(g.group()) for g in groups]
    count = sum(sizes)
    starts = list(itertools.accumulate([0, *sizes[:-1]]))
    window_starts, window_ends = [0], [count]
    first, last = sizes[0], sizes[-1]
    if glued:
        window_starts.append(first)
    inner = sizes[1:-1]
    if inner and all(size in (4, 6) for size in inner):
        # A card printed in its groups (4-4-4-4, 4-6-5) with digits glued to its first or
        # last group: those cut back to the card's own size.
        window_starts.append(max(first - 4, 0))
        window_ends += [count - max(last - 4, 0), count - max(last - 5, 0)]
    if min(window_ends) - max(window_starts) <= MAX_CARD:
        digits = "".join(g.group() for g in groups)
        found = _windows(digits, window_starts, window_ends)
        if found is not None:  # masked in whole groups: no glued digit is left beside it
            lo = bisect.bisect_right(starts, found[0]) - 1
            hi = bisect.bisect_left([a + n for a, n in zip(starts, sizes, strict=True)],
                                    found[1])
            yield offset + groups[lo].start(), offset + groups[hi].end()
            return
    if not alone:
        return
    for g in groups:
        if len(g.group()) >= MIN_CARD:
            if covered_starts:
                k = bisect.bisect_right(covered_starts, offset + g.start()) - 1
                if k >= 0 and covered[k][1] >= offset + g.end():
                    continue  # found already
            fraction = run[g.start() - 1:g.start()] == "." or run[g.end():g.end() + 1] == "."
            if _contiguous(g.group(), windows=windows and not fraction):
                yield offset + g.start(), offset + g.end()


def _windows(digits: str, starts: range | list[int], ends: range | list[int]) -> (
        tuple[int, int] | None):
    """The span (in ``digits``) covering every window from ``starts`` to ``ends`` of 13-19
    digits that is a card, or None. Luhn of a window from prefix sums: a digit is doubled when
    its distance from the window's end is odd, so which of two sums a window takes depends on
    the parity of its end only."""
    raw = digits.encode("ascii")
    # digit i as is when i has the parity, doubled otherwise
    sums = (list(itertools.accumulate((_AS_IS[c] if i % 2 == 0 else _DOUBLED[c]
                                       for i, c in enumerate(raw)), initial=0)),
            list(itertools.accumulate((_DOUBLED[c] if i % 2 == 0 else _AS_IS[c]
                                       for i, c in enumerate(raw)), initial=0)))
    allowed = set(starts)
    lo = hi = -1
    for end in ends:
        if end < MIN_CARD:
            continue
        prefix = sums[(end - 1) % 2]
        for s in range(max(end - MAX_CARD, 0), end - MIN_CARD + 1):
            if s in allowed and (prefix[end] - prefix[s]) % 10 == 0 \
                    and digits.count(digits[s], s, end) < end - s:
                lo = s if lo < 0 else min(lo, s)
                hi = max(hi, end)
    return None if lo < 0 else (lo, hi)
