"""Find text in a session's output: the chunk that completes the next (or previous) match.

The output is searched as a stream, not as screens: cheaper (no emulation) and it finds text
that scrolled by between two keyframes. Escape sequences can sit in the middle of a word (a
colour change, a cursor move by a line editor), so they are stripped before matching: CSI,
OSC (titles, clipboard), DCS/APC/PM strings, two-character escapes and C0 controls other than
tab and line feed. Matching ignores case (``casefold``).

A match can also straddle chunks — typing shows up one echoed character per chunk — so each
chunk is searched with the last ``overlap(text)`` bytes of output before it prepended, and a
chunk counts as a hit when that window holds more matches than its prepended part alone:
the chunk is where a match completes, so seeking to its time shows the text on screen (unless
the same chunk already overwrote it). Honest limits: text that a full-screen program drew out
of order (cursor moves between its words) or that a line editor redrew in pieces may not be
found; text split by more escape bytes than the overlap allows is not either.

What it costs: one read of the output in ``PAGE_BYTES`` pages from the start point, a regex
pass and a decode per chunk; the whole of a 100 MB session takes seconds: run it off the UI
thread.
"""

from __future__ import annotations

import re

from recordings.replay.chunks import PAGE_BYTES, ChunkIndex

_STRIP = re.compile(
    rb"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    rb"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC, to BEL or ST
    rb"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC strings
    rb"|\x1b[ #%()*+\-./][\x20-\x7e]?"  # charset and other two-byte-intermediate escapes
    rb"|\x1b[\x20-\x7e]?"  # any other escape
    rb"|[\x00-\x08\x0b-\x1f\x7f]"  # controls but tab and line feed
)


def overlap(text: str) -> int:
    """Raw bytes of earlier output kept in front of each chunk: the text itself and room
    for the escapes that may split it."""
    return 64 + 16 * len(text.encode())


def plain(data: bytes) -> str:
    """``data`` as a searcher sees it: escapes stripped, decoded, case folded."""
    return _STRIP.sub(b"", data).decode("utf-8", "replace").casefold()


def _hits(index: ChunkIndex, needle: str, first: int, last: int, keep: int) -> list[int]:
    """Chunks ``first <= i < last`` where a match of ``needle`` completes."""
    before = first
    need = keep
    while before > 0 and need > 0:  # the output just before ``first``, for its window
        before -= 1
        need -= index.size[before]
    tail = b""
    hits = []
    for i, payload in index.chunks(before, last):
        if isinstance(payload, tuple) or not payload:
            continue
        if i >= first:
            found = plain(tail + payload).count(needle)
            if found and found > (plain(tail).count(needle) if tail else 0):
                hits.append(i)
        tail = (tail + payload)[-keep:]
    return hits


def find(index: ChunkIndex, text: str, from_t: float, backwards: bool = False) -> float | None:
    """The time of the first chunk after ``from_t`` (or the last before it, ``backwards``)
    where a match of ``text`` completes; None when there is none."""
    needle = text.casefold()
    if not needle.strip():
        return None
    keep = overlap(text)
    start = index.count_at(from_t)  # chunks at or before from_t
    if not backwards:
        first = start
        while first < len(index):
            last = _page_end(index, first)
            hits = _hits(index, needle, first, last, keep)
            if hits:
                return index.t[hits[0]]
            first = last
        return None
    last = start
    while last > 0 and index.t[last - 1] >= from_t:
        last -= 1  # strictly before from_t
    while last > 0:
        first = _page_start(index, last)
        hits = _hits(index, needle, first, last, keep)
        if hits:
            return index.t[hits[-1]]
        last = first
    return None


def _page_end(index: ChunkIndex, first: int) -> int:
    end, size = first + 1, index.size[first]
    while end < len(index) and size + index.size[end] <= PAGE_BYTES:
        size += index.size[end]
        end += 1
    return end


def _page_start(index: ChunkIndex, last: int) -> int:
    start = last - 1
    size = index.size[start]
    while start > 0 and size + index.size[start - 1] <= PAGE_BYTES:
        start -= 1
        size += index.size[start]
    return start
