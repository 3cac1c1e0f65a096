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
  that group ends a word (``sp3 401 288 888 888 1881``);
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

import itertools
import re
from collections.abc import Iterator

MIN_CARD, MAX_CARD = 13, 19
MAX_RUN = 40  # digits of a run without separators checked window by window

# Digits with at most one separator between any two (ASCII: the detectors read folded text).
_RUN = re.compile(r"[0-9](?:[\t ./:_-]?[0-9]){12,}")
# A timestamp (date, time, fraction, offset), each field in range, year 1900-2199.
_TIMESTAMP = re.compile(
    r"(?<![0-9])(?:19|20|21)[0-9]{2}([-/])(?:0[1-9]|1[0-2])\1(?:0[1-9]|[12][0-9]|3[01])"
    r"[ T](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
    r"(?:[+-](?:[01][0-9]|2[0-3])(?::?[0-5][0-9])?)?(?![0-9])")


def find(text: str) -> Iterator[tuple[int, int]]:
    """The spans of ``text`` (ASCII digits) that hold a card in a run, in order."""
    if _TIMESTAMP.search(text) is not None:
        text = _TIMESTAMP.sub(lambda m: "x" * len(m.group()), text)
    for m in _RUN.finditer(text):
        run = m.group()
        if run.isdigit():
            if len(run) > MAX_RUN:
                if run.count(run[0]) < len(run):
                    yield m.span()
            elif _windows(run, range(len(run)), range(len(run) + 1)):
                yield m.span()
            continue
        glued = m.start() > 0 and text[m.start() - 1].isalpha()
        yield from _separated(run, m.start(), glued)


def _separated(run: str, offset: int, glued: bool) -> Iterator[tuple[int, int]]:
    """``run`` (at ``offset``) when it holds a card; ``glued``: its first group ends a word
    (``sp3 401 288 888 888 1881``), and the run without it is read too."""
    # Each digit's place in the run, and where the groups start and end (in digits).
    places = [i for i, ch in enumerate(run) if ch.isdigit()]
    starts = [0] + [k for k in range(1, len(places)) if places[k] != places[k - 1] + 1]
    count = len(places)
    window_starts, window_ends = [0], [count]
    first, last = starts[1], count - starts[-1]
    inner = [b - a for a, b in itertools.pairwise(starts[1:])]
    if glued:
        window_starts.append(first)
    if inner and all(size in (4, 6) for size in inner):
        # A card printed in its groups (4-4-4-4, 4-6-5) with digits glued to its first or
        # last group: those cut back to the card's own size.
        window_starts.append(max(first - 4, 0))
        window_ends += [count - max(last - 4, 0), count - max(last - 5, 0)]
    if min(window_ends) - max(window_starts) > MAX_CARD:
        return  # too many digits for a card, however cut (a long list of numbers)
    digits = "".join(run[i] for i in places)
    found = _windows(digits, window_starts, window_ends)
    if found is not None:  # masked in whole groups: no glued digit is left beside the mask
        lo = max(k for k in starts if k <= found[0])
        hi = min(k for k in [*starts[1:], count] if k >= found[1])
        yield offset + places[lo], offset + places[hi - 1] + 1


def _windows(digits: str, starts: range | list[int], ends: range | list[int]) -> (
        tuple[int, int] | None):
    """The span (in ``digits``) covering every window from ``starts`` to ``ends`` of 13-19
    digits that is a card, or None. Luhn of a window from prefix sums: a digit is doubled when
    its distance from the window's end is odd, so which of two sums a window takes depends on
    the parity of its end only."""
    sums = ([0], [0])  # digit i as is when i has the parity, doubled otherwise
    for i, ch in enumerate(digits):
        v = ord(ch) - 48
        d = 2 * v - 9 if v > 4 else 2 * v
        sums[0].append(sums[0][-1] + (v if i % 2 == 0 else d))
        sums[1].append(sums[1][-1] + (v if i % 2 else d))
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
