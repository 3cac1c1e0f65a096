"""The chunk index of an SSH session's terminal: which recorded chunks a replay shows, when,
and how big, read once without their bytes; the bytes are read a page at a time on demand.

Which channels: the session's terminal channels — those that recorded a window size, i.e.
had a PTY (interactive shells, ``ssh -t``) — their stdout and stderr ('o', 'e') and their
window sizes ('r'). Channels without a terminal (sftp, scp, exec without ``-t``) carry file
transfers and program output that was never on a screen, so they are left out — unless the
session has no terminal channel at all (``ssh host cmd``): then every channel's output is
shown, with ``\\n`` turned into ``\\r\\n`` as a terminal's line discipline would have (what the
live view does too). Input ('i') is never shown: it is what the user typed on channels without
a terminal, and on a terminal the echo is already in the output. With two terminal channels
in one session (connection sharing) both draw on the one screen; ``channels=`` picks one.

What it costs: about 30 bytes per chunk in arrays (the tape cuts a chunk at most every 50 ms
per stream, or at 256 KiB: an hour is at most some 72k chunks per stream, 2 MB; the bench's
hour of 106 MB has 5k) and one query per 20k chunks to build; reading bytes is one query per
``PAGE_BYTES``, so memory holds at most one page of output at a time.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterator, Sequence

from recordings.replay import source
from store import SqliteStore

OUTPUT, PLAIN_OUTPUT, RESIZE = 0, 1, 2  # PLAIN_OUTPUT: no terminal, \n becomes \r\n
PAGE_BYTES = 4 * 1024 * 1024
_ROWS_PER_QUERY = 20_000

Size = tuple[int, int]  # (columns, rows)
Payload = bytes | Size  # what a chunk does to the screen: bytes to feed, or a new size


def parse_size(data: bytes | None) -> Size | None:
    """A window-size chunk's ``b"COLSxROWS"``, or None when it is not one. A client that
    gave no size records 0x0: that is no size either (the screen keeps the one it has)."""
    cols, _, rows = (data or b"").partition(b"x")
    if cols.isdigit() and rows.isdigit() and len(cols) < 6 and len(rows) < 6:
        size = int(cols), int(rows)
        return size if all(size) else None
    return None


class ChunkIndex:
    def __init__(self, store: SqliteStore, session_id: str,
                 channels: Sequence[int] | None = None) -> None:
        self._store = store
        self.session_id = session_id
        self.terminals = frozenset(source.terminal_channels(store, session_id))
        wanted = channels if channels is not None else (self.terminals or None)
        self._wanted = frozenset(wanted) if wanted is not None else None  # None: all
        self.channels: set[int] = set()  # the channels of the chunks indexed so far
        self.seq = array("q")
        self.t = array("d")
        self.size = array("q")
        self.offset = array("q")  # bytes of shown output before each chunk
        self.kind = array("b")
        self.sizes: dict[int, Size] = {}  # chunk number → window size, for RESIZE chunks
        self.total = 0  # bytes of shown output
        self._last_seq = 0
        self.refresh()

    def refresh(self) -> int:
        """Index the chunks recorded since the last call (a live session grows); how many."""
        added = 0
        while True:
            rows = source.chunk_rows(self._store, self.session_id, self._last_seq,
                                     _ROWS_PER_QUERY)
            for seq, t, channel, stream, size, data in rows:
                self._add(seq, t, channel, stream, size, data)
            if rows:
                self._last_seq = rows[-1][0]
            added += len(rows)
            if len(rows) < _ROWS_PER_QUERY:
                return added

    def _add(self, seq: int, t: float, channel: int, stream: str, size: int,
             data: bytes | None) -> None:
        if self._wanted is not None and channel not in self._wanted:
            return
        if stream == "r":
            dims = parse_size(data)
            if dims is None:
                return
            self.sizes[len(self.seq)] = dims
            kind, size = RESIZE, 0
        elif stream in ("o", "e"):
            kind = OUTPUT if channel in self.terminals else PLAIN_OUTPUT
        else:
            return
        # Chunk times come from the engine's wall clock: should it step back, keep the order.
        t = max(t, self.t[-1]) if self.t else max(t, 0.0)
        self.channels.add(channel)
        self.seq.append(seq)
        self.t.append(t)
        self.size.append(size)
        self.offset.append(self.total)
        self.kind.append(kind)
        self.total += size

    def __len__(self) -> int:
        return len(self.seq)

    @property
    def end_time(self) -> float:
        return self.t[-1] if self.t else 0.0

    def offset_of(self, chunk: int) -> int:
        """Bytes of shown output before chunk ``chunk`` (all of them past the last)."""
        return self.offset[chunk] if chunk < len(self.offset) else self.total

    def count_at(self, t: float) -> int:
        """How many chunks have happened at time ``t`` (those with a time <= t)."""
        return bisect_right(self.t, t)

    def chunks(self, first: int, last: int) -> Iterator[tuple[int, Payload]]:
        """Chunks ``first <= i < last`` in order, as (i, payload), a page at a time."""
        start = first
        while start < last:
            end, size = start, 0
            while end < last and (end == start or size + self.size[end] <= PAGE_BYTES):
                size += self.size[end]
                end += 1
            data: dict[int, bytes] = {}
            if size:
                data = source.chunk_bytes(self._store, self.session_id, self.seq[start],
                                          self.seq[end - 1], self.channels)
            for i in range(start, end):
                kind = self.kind[i]
                if kind == RESIZE:
                    yield i, self.sizes[i]
                    continue
                chunk = data.get(self.seq[i], b"")
                yield i, chunk.replace(b"\n", b"\r\n") if kind == PLAIN_OUTPUT else chunk
            start = end
