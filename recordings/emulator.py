"""A terminal emulator (pyte) that survives whatever a target prints, and can be snapshotted.

Three users: the line watcher (what a shell is about to run), the TUI's live terminal, and the
replay timeline, which takes keyframes (``snapshot``) and seeks by restoring one (``restore``)
and replaying from there. The last one needs the screen to depend only on the bytes fed, never
on how they were cut into ``feed`` calls (chunks, slices between keyframes): so

- a parser failure (a CSI parameter of thousands of digits overflows ``int()``; anything pyte
  trips over) costs the one sequence that caused it: the parser restarts at the next character
  instead of the whole generator dying, or the rest of the feed being dropped;
- a row that was never written and one that was only read (pyte's ``buffer`` creates rows
  on reading) behave the same: pyte's ``insert_lines``/``delete_lines`` left stale text where
  a missing row moved, so rendering a screen changed what later output did to it;
- a character that takes no cell (a C0 control, a zero-width non-combining character) is
  skipped, where pyte dropped the rest of the text run it came in;
- the bytes are decoded as UTF-8 throughout: ``ESC % @`` (switch to Latin-1) is ignored, since
  pyte decodes a whole feed before it parses it, so the switch would apply from wherever the
  feed happened to end;
- what a recording can make grow without bound is capped: the DECSC save stack (xterm keeps
  one saved cursor; pyte a list that ``ESC 7`` repeated would grow) and titles.

Queries (DSR, DA) are answered by nobody: ``write_process_input`` drops the answer, so a
recording never makes the emulator emit bytes. A title only sets a string on the screen; OSC 52
clipboard writes and other OSC strings are parsed and dropped.

An OSC string that never ends still grows inside pyte's parser, up to the size of the output
that follows it (a recording is bounded; pyte's parser is not ours to cut).

Speed, with the same results as pyte: printing was its hot spot (a Python loop and a
namedtuple per character): runs of printable ASCII take a fast path that writes cells from a
cache of ``Char`` objects shared by equal cells; colour changes are remembered; complete CSI
sequences with plain parameters and two-character escapes are dispatched without going
through the parser one character at a time; a scroll moves only the rows that exist. On the
output of bench/replay_seek.py: 2 MB/s here, where pyte alone does 0.3 MB/s. The caches are
module-wide and hold immutable values only, so emulators (and threads) share them safely.
"""

from __future__ import annotations

import itertools
import logging
import operator
import pickle
import re
import unicodedata
import zlib
from dataclasses import dataclass
from typing import Any

import pyte
from pyte import modes as mo
from pyte.charsets import LAT1_MAP, MAPS
from pyte.screens import Char, Cursor, Margins, Savepoint, StaticDefaultDict
from wcwidth import wcwidth

log = logging.getLogger(__name__)

MAX_SAVEPOINTS = 16
MAX_TITLE = 4096


class _Cells(dict[str, Char]):
    """The cells of one set of attributes, by character: one shared ``Char`` per value."""

    __slots__ = ("attrs",)

    def __init__(self, attrs: Char) -> None:
        super().__init__()
        self.attrs = attrs

    def __missing__(self, data: str) -> Char:
        char: Char = self.attrs._replace(data=data)
        if len(self) < 2048:  # a recording cycling through all of Unicode stays bounded
            self[data] = char
        return char


_CELLS: dict[Char, _Cells] = {}
_ATTRS: dict[tuple[Any, ...], Char] = {}  # a cell's attributes (all but data) → Char(" ", …)


def _cells(attrs: Char) -> _Cells:
    cells = _CELLS.get(attrs)
    if cells is None:
        if len(_CELLS) > 4096:
            _CELLS.clear()
        cells = _CELLS[attrs] = _Cells(attrs)
    return cells


def _attrs(key: tuple[Any, ...]) -> Char:
    attrs = _ATTRS.get(key)
    if attrs is None:
        if len(_ATTRS) > 4096:
            _ATTRS.clear()
        attrs = _ATTRS[key] = Char(" ", *key)
    return attrs


_BLANK, _BLANK_REVERSED = Char(" "), Char(" ", reverse=True)
_SGR: dict[tuple[Any, ...], Char] = {}  # (attributes, SGR parameters, DECSCNM) → attributes


class _Screen(pyte.Screen):  # type: ignore[misc]
    """pyte's screen, counting how often it scrolled (to follow a row as it moves up)."""

    scrolled = 0
    _drawn_with: Char | None = None
    _drawn_cells: _Cells

    @property
    def default_char(self) -> Char:
        """pyte's, without building a new one for every row."""
        return _BLANK_REVERSED if mo.DECSCNM in self.mode else _BLANK

    def select_graphic_rendition(self, *attrs: int, **kwargs: Any) -> None:
        """pyte's, remembered: a colour change is a pure function of the attributes before,
        the parameters and reverse video, and output repeats the same few all the time."""
        if kwargs:  # ESC [ ? … m: pyte refuses it (a TypeError), and so do we
            super().select_graphic_rendition(*attrs, **kwargs)
            return
        key = (self.cursor.attrs, attrs, mo.DECSCNM in self.mode)
        after = _SGR.get(key)
        if after is None:
            super().select_graphic_rendition(*attrs)
            if len(_SGR) > 4096:
                _SGR.clear()
            _SGR[key] = self.cursor.attrs
        else:
            self.cursor.attrs = after

    def index(self) -> None:
        """pyte's ``index``, counting scrolls, in one pass over the rows that exist: rows
        missing from the buffer stay missing instead of being created empty (the same on
        screen; building them, a property call each, was most of the cost of a scroll)."""
        top, bottom = self.margins or (0, self.lines - 1)
        if self.cursor.y != bottom:
            self.cursor_down()
            return
        self.scrolled += 1
        self.dirty.update(range(self.lines))
        buffer = self.buffer
        moved = {y - 1 if top < y <= bottom else y: row
                 for y, row in buffer.items() if y != top}
        buffer.clear()
        buffer.update(moved)

    def insert_lines(self, count: int | None = None) -> None:
        """pyte's, except that a row moved from where there was none is blank: pyte left the
        old content there, so the result depended on whether anything had ever *read* that
        row (``buffer`` is a defaultdict: reading a row creates it)."""
        count = count or 1
        top, bottom = self.margins or (0, self.lines - 1)
        if top <= self.cursor.y <= bottom:
            self.dirty.update(range(self.cursor.y, self.lines))
            buffer = self.buffer
            for y in range(bottom, self.cursor.y - 1, -1):
                row = buffer.pop(y, None)
                if y + count <= bottom:
                    if row is None:
                        buffer.pop(y + count, None)
                    else:
                        buffer[y + count] = row
            self.carriage_return()

    def delete_lines(self, count: int | None = None) -> None:
        """pyte's, with the same correction as ``insert_lines``."""
        count = count or 1
        top, bottom = self.margins or (0, self.lines - 1)
        if top <= self.cursor.y <= bottom:
            self.dirty.update(range(self.cursor.y, self.lines))
            buffer = self.buffer
            for y in range(self.cursor.y, bottom + 1):
                row = buffer.pop(y + count, None) if y + count <= bottom else None
                if row is None:
                    buffer.pop(y, None)
                else:
                    buffer[y] = row
            self.carriage_return()

    @property
    def display(self) -> list[str]:
        """pyte's rendering, minus its failure on a wide character whose second cell was
        overwritten (an IndexError that any program could trigger with a backspace)."""
        rows = []
        for y in range(self.lines):
            line = self.buffer[y]
            cells: list[str] = []
            stub = False
            for x in range(self.columns):
                if stub:
                    stub = False
                    continue
                data = line[x].data or " "
                cells.append(data)
                stub = wcwidth(data[0]) == 2
            rows.append("".join(cells))
        return rows

    def resize(self, lines: int | None = None, columns: int | None = None) -> None:
        super().resize(lines, columns)
        self.cursor.y = min(self.cursor.y, self.lines - 1)  # pyte leaves it below a shorter one
        self.cursor.x = min(self.cursor.x, self.columns - 1)

    def draw(self, data: str) -> None:
        """pyte's ``draw``; printable ASCII in the usual modes takes the fast path below,
        which writes the same cells and moves the cursor the same way, a line at a time."""
        if (self.charset or self.g0_charset is not LAT1_MAP or mo.IRM in self.mode
                or not (data.isascii() and data.isprintable())):
            self._draw_slowly(data)
            return
        cursor, columns = self.cursor, self.columns
        if cursor.attrs is self._drawn_with:  # same attributes as last time: same cells
            cells = self._drawn_cells
        else:
            cells = self._drawn_cells = _cells(cursor.attrs)
            self._drawn_with = cursor.attrs
        x, end = cursor.x, len(data)
        if 0 <= x and x + end <= columns and x < columns:  # the usual case: fits on the line
            line = self.buffer[cursor.y]
            if end == 1:
                line[x] = cells[data]
            else:
                line.update(zip(range(x, x + end), map(cells.__getitem__, data)))  # noqa: B905
            cursor.x = x + end
            self.dirty.add(cursor.y)
            return
        wrap = mo.DECAWM in self.mode
        start = 0
        while start < end:
            if cursor.x == columns:
                if not wrap:  # each character left overwrites the last column
                    self.buffer[cursor.y][columns - 1] = cells[data[-1]]
                    break
                self.dirty.add(cursor.y)
                self.carriage_return()
                self.linefeed()
            x = cursor.x
            if not 0 <= x < columns:  # never expected; pyte's own loop knows what to do
                super().draw(data[start:])
                return
            take = min(columns - x, end - start)
            self.buffer[cursor.y].update(
                zip(range(x, x + take), map(cells.__getitem__, data[start:start + take]),
                    strict=True))
            cursor.x = x + take
            start += take
        self.dirty.add(cursor.y)

    def _draw_slowly(self, data: str) -> None:
        """pyte's ``draw``, minus its habit of dropping the rest of what it was given after a
        character that takes no cell (a C0 control, a zero-width non-combining character):
        what follows depended on where the feed or an escape sequence happened to cut the
        text. Such a character is skipped, as a terminal would."""
        start = 0
        for at, char in enumerate(data):
            width = wcwidth(char)
            if width < 0 or (width == 0 and not unicodedata.combining(char)):
                if at > start:
                    super().draw(data[start:at])
                start = at + 1
        super().draw(data[start:])

    def save_cursor(self) -> None:
        super().save_cursor()
        del self.savepoints[:-MAX_SAVEPOINTS]

    def set_title(self, param: str) -> None:
        super().set_title(param[:MAX_TITLE])

    def set_icon_name(self, param: str) -> None:
        super().set_icon_name(param[:MAX_TITLE])

    def write_process_input(self, data: str) -> None:
        """An answer to a query (DSR, DA): there is nobody to send it to, on purpose."""


# What ``_Stream.feed`` handles itself when pyte's parser is between sequences, in one match:
# 1: a run of text (pyte's own pattern), 2: CR LF, 3: another C0 control that pyte acts on,
# 4-6: a complete CSI with plain parameters, 7: a two-character escape. Each is dispatched to
# the method pyte's parser would call, with the same arguments, without going through the
# parser a character at a time. Anything else (OSC, DCS, ``ESC (``, parameters with other
# characters, an escape cut by the end of a feed) takes pyte's own path.
_TOKEN = re.compile(
    f"({pyte.Stream._text_pattern.pattern})"
    r"|(\r\n)|([\x07-\x0d])"
    r"|\x1b(?:\[(\?)?([0-9;]{0,64})([@-~])|([!\x22$&\x27*-Z\\^-~]))")


class _Stream(pyte.ByteStream):  # type: ignore[misc]
    def attach(self, screen: pyte.Screen) -> None:
        super().attach(screen)
        self._basic = {c: getattr(screen, name) for c, name in self.basic.items()}
        self._csi = {c: getattr(screen, name) for c, name in self.csi.items()}
        self._escape = {c: getattr(screen, name) for c, name in self.escape.items()}

    def feed(self, data: bytes) -> None:  # type: ignore[override]
        """pyte's ``Stream.feed``, with the fast paths described at ``_TOKEN``."""
        text: str = self.utf8_decoder.decode(data)
        screen = self.listener
        assert screen is not None
        draw, debug = screen.draw, screen.debug
        carriage_return, linefeed = screen.carriage_return, screen.linefeed
        token = _TOKEN.match
        basic, csi, escape = self._basic, self._csi, self._escape
        send = self._send_to_parser
        taking = self._taking_plain_text
        at, end = 0, len(text)
        while at < end:
            match = token(text, at) if taking else None
            if match is None:
                taking = send(text[at])
                at += 1
                continue
            at = match.end()
            kind = match.lastindex
            try:
                if kind == 1:
                    draw(match.group(1))
                elif kind == 2:
                    carriage_return()
                    linefeed()
                elif kind == 3:
                    basic[match.group(3)]()
                elif kind == 7:
                    escape.get(match.group(7), debug)()
                else:
                    private, params, final = match.group(4, 5, 6)
                    args = [min(int(p or 0), 9999) for p in params.split(";")]
                    if private:
                        csi.get(final, debug)(*args, private=True)
                    else:
                        csi.get(final, debug)(*args)
            except Exception as exc:  # as in _send_to_parser: that sequence is lost
                log.debug("terminal emulator parser reset after %r", exc)
                self._initialize_parser()
        self._taking_plain_text = taking

    def _send_to_parser(self, data: str) -> bool | None:
        try:
            assert self._parser is not None
            return self._parser.send(data)
        except Exception as exc:  # the sequence is lost, the parser starts again on the next
            log.debug("terminal emulator parser reset after %r", exc)
            self._initialize_parser()
            return True

    def select_other_charset(self, code: str) -> None:
        """UTF-8 throughout (see the module docstring)."""


# One screen row, as a snapshot keeps it:
# (default cell, columns present: n for 0..n-1 or a tuple, their characters: one str when each
# is one code point or a tuple, attribute runs: (attrs, count, attrs, count, …)).
Row = tuple[Char, int | tuple[int, ...], str | tuple[str, ...], tuple[Any, ...]]


_DATA, _ATTRIBUTES = operator.itemgetter(0), operator.itemgetter(slice(1, None))


def _encode_row(line: StaticDefaultDict[int, Char]) -> Row:
    xs = sorted(line)
    chars = list(map(line.__getitem__, xs))
    datas = list(map(_DATA, chars))
    runs: list[Any] = []
    for key, group in itertools.groupby(map(_ATTRIBUTES, chars)):
        runs += (_attrs(key), len(list(group)))
    single = bool(datas) and min(map(len, datas)) == 1 == max(map(len, datas))
    text: str | tuple[str, ...] = "".join(datas) if single or not datas else tuple(datas)
    present: int | tuple[int, ...] = len(xs) if not xs or xs[-1] == len(xs) - 1 \
        else tuple(xs)
    return (line.default, present, text, tuple(runs))


def _decode_row(row: Row) -> StaticDefaultDict[int, Char]:
    default, present, text, runs = row
    line: StaticDefaultDict[int, Char] = StaticDefaultDict(default)
    chars: list[Char] = []
    at = 0
    for i in range(0, len(runs), 2):
        count = runs[i + 1]
        chars += map(_cells(runs[i]).__getitem__, text[at:at + count])
        at += count
    line.update(zip(range(present) if isinstance(present, int) else present, chars,
                    strict=True))
    return line


def _charset_name(charset: str) -> str:
    """One of pyte's character maps by its name (the map itself if it is none of them)."""
    for name, known in MAPS.items():
        if charset is known or charset == known:
            return name
    return charset


def _charset(name: str) -> str:
    return MAPS.get(name, name)  # the very object: ``draw`` checks identity


_SavedCursor = tuple[int, int, Char, bool, str, str, int, bool, bool]


@dataclass(frozen=True, slots=True, eq=False)
class Snapshot:
    """Everything of an emulator at rest that later bytes can depend on, as plain immutable
    data (so that it pickles small: see ``pack``).

    What it costs: a few bytes per printed cell as objects (the row's characters as one string
    plus its attribute runs), a tenth of that packed. Restoring builds one dict per row.
    """

    columns: int
    lines: int
    rows: tuple[tuple[int, Row], ...]
    cursor: tuple[int, int, Char, bool]
    savepoints: tuple[_SavedCursor, ...]
    mode: frozenset[int]
    margins: tuple[int, int] | None
    charset: int
    g0_charset: str  # a name in pyte.charsets.MAPS
    g1_charset: str
    tabstops: frozenset[int]
    title: str
    icon_name: str
    saved_columns: int | None
    scrolled: int

    def cells(self) -> int:
        """Printed cells held."""
        return sum(len(row[2]) for _, row in self.rows)

    def pack(self) -> bytes:
        """The snapshot as bytes, compressed (a few KiB for a full 200x50 screen; about
        0.2 ms to pack, 0.1 ms to unpack). Only for ``unpack`` in this process: it is a
        pickle, never to be read from anywhere else."""
        return zlib.compress(pickle.dumps(self, protocol=5), 1)

    @staticmethod
    def unpack(packed: bytes) -> Snapshot:
        snap = pickle.loads(zlib.decompress(packed))  # our own bytes only: see pack
        assert isinstance(snap, Snapshot)
        return snap


class Emulator:
    def __init__(self, cols: int, rows: int) -> None:
        self.screen = _Screen(max(cols, 1), max(rows, 1))
        self._stream = _Stream(self.screen)

    def feed(self, data: bytes) -> None:
        try:
            self._stream.feed(data)
        except Exception as exc:  # not the parser (that recovers by itself): a screen method
            log.debug("terminal emulator reset after %r", exc)
            self._stream = _Stream(self.screen)

    def resize(self, cols: int, rows: int) -> None:
        self.screen.resize(max(min(rows, 500), 1), max(min(cols, 1000), 1))

    @property
    def at_rest(self) -> bool:
        """Between sequences, with no half UTF-8 character pending: what a snapshot can hold."""
        stream = self._stream
        return bool(stream._taking_plain_text) and not stream.utf8_decoder.getstate()[0]

    def snapshot(self) -> Snapshot:
        """The emulator's state; only ``at_rest`` (a sequence half parsed is not captured)."""
        if not self.at_rest:
            raise ValueError("the emulator is inside a sequence: no snapshot here")
        s = self.screen
        c = s.cursor
        return Snapshot(
            columns=s.columns, lines=s.lines,
            rows=tuple((y, _encode_row(s.buffer[y])) for y in sorted(s.buffer)),
            cursor=(c.x, c.y, c.attrs, c.hidden),
            savepoints=tuple(
                (p.cursor.x, p.cursor.y, p.cursor.attrs, p.cursor.hidden,
                 _charset_name(p.g0_charset), _charset_name(p.g1_charset), p.charset,
                 p.origin, p.wrap) for p in s.savepoints),
            mode=frozenset(s.mode),
            margins=None if s.margins is None else (s.margins.top, s.margins.bottom),
            charset=s.charset, g0_charset=_charset_name(s.g0_charset),
            g1_charset=_charset_name(s.g1_charset), tabstops=frozenset(s.tabstops),
            title=s.title, icon_name=s.icon_name, saved_columns=s.saved_columns,
            scrolled=s.scrolled)

    def restore(self, snap: Snapshot) -> None:
        """Put the emulator in the state of ``snap``, in place: whoever holds ``screen`` sees
        it. The parser starts afresh (a snapshot is only taken at rest)."""
        s = self.screen
        s.columns, s.lines = snap.columns, snap.lines
        s.buffer.clear()
        for y, row in snap.rows:
            s.buffer[y] = _decode_row(row)
        s.cursor = _cursor(*snap.cursor)
        s.savepoints = [
            Savepoint(_cursor(x, y, attrs, hidden), _charset(g0), _charset(g1), charset,
                      origin, wrap)
            for x, y, attrs, hidden, g0, g1, charset, origin, wrap in snap.savepoints]
        s.mode = set(snap.mode)
        s.margins = None if snap.margins is None else Margins(*snap.margins)
        s.charset = snap.charset
        s.g0_charset, s.g1_charset = _charset(snap.g0_charset), _charset(snap.g1_charset)
        s.tabstops = set(snap.tabstops)
        s.title, s.icon_name = snap.title, snap.icon_name
        s.saved_columns = snap.saved_columns
        s.scrolled = snap.scrolled
        s.dirty = set(range(s.lines))
        self._stream = _Stream(self.screen)


def _cursor(x: int, y: int, attrs: Char, hidden: bool) -> Cursor:
    cursor = Cursor(x, y, attrs)
    cursor.hidden = hidden
    return cursor
