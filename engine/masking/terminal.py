"""Mask what a terminal shows without making it wait: released at once, rewritten if need be.

A ``StreamMasker`` holds back the last word of the output, since a value may still be growing
there; at a terminal that word is often a key just echoed, and holding it until the target has
been quiet made every keystroke wait. ``TerminalMasker`` shows the held word at once, masked as
it stands (``StreamMasker.preview``: a value already complete in it is masked), and when more
output changes what that word turns out to be — the last digit of a card arrives — it moves the
cursor back over the word and draws its masked form over it, blanking what is left. So:

- the client is only ever sent masked text (decided, or the tail masked as it stands), blanks,
  stars and cursor movement: a value is never on its screen whole, however long the pauses in
  it; what it may have seen is the beginning of a value before the value was complete (the
  first digits of a card typed key by key), as it does at the target, until the rewrite;
- the record gets only what is decided (``StreamMasker.feed``), never a beginning that later
  became a value (ARCHITECTURE.md invariant 6): a tail waits in the record until it is decided,
  however long that takes (a pause is not a decision), or until the end of the output.

Rewriting needs to know where the word is on the screen. ``_Cursor`` follows the cursor from
the last line feed: printable characters of a known width (wrapping at the width, with the
pending wrap of the last column), carriage returns, backspaces, tabs (at the default stops),
cursor moves along the row and up (readline's redraw of a line that wrapped), a cursor saved
and restored among the same rows, and escapes that draw nothing (colours, titles, harmless
modes). It counts rows relative to the cursor, never from the top of the screen, which it
does not know (a session starts under a motd and earlier output): a move up that the top of
the screen cut short only makes it think old text is nearer than it is; a move to a row of
the screen (a clear screen's ``ESC[H``) tells it that the rows below the bottom one are blank.
The rewrite moves the cursor back relative to where it is, so where the word sits on the
screen does not matter, only which cells it covers. The held word is shown early
only where that is certain: the cursor is known, the word is printable ASCII, it lands on cells
known to be blank (after a line feed below everything drawn, or after what the line already
drew: a blanked rest is then blank without masking too), its rows fit on the screen (its start
is still there when it is rewritten), and no mode changes what printing does (insert mode, no
autowrap, margins). One difference stays: a word drawn early that wrapped onto a new bottom row
scrolled the screen, and a shorter mask drawn over it does not scroll it back (the screen is
then one row further on than without masking: nothing is hidden or shown by it).
Anything else — a cursor moved down, tab stops changed, an alternate screen, a size change —
leaves the cursor unknown until the next line break; a word drawn where the cursor is unknown,
or over cells that may hold older text (after a move up, until line feeds bring the cursor
below everything drawn again, or an erase blanks the rest), is not shown until it is decided
(it is held: fail closed), which at a terminal means until the next blank, comma or line
break after it.

``flush()`` is called when the gateway is about to write on the terminal itself (its line
editor's echo) or output has been held for a moment: the cursor is then no longer known, and
what is on the screen of the held word can no longer be rewritten. The word stays held for the
record; the screen keeps what it showed of it and gets stars (``*``, white space kept) for the
rest of it — and for a word not yet shown, stars at once — until the word is decided.
``flush(end=True)`` at the end of the output commits everything.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field, replace

from wcwidth import wcwidth

from engine.masking.detectors import KEY_HEADER
from engine.masking.masker import ValueMasker
from engine.masking.stream import StreamMasker

_PLAIN = re.compile(r"[ -~]*")  # printable ASCII: one cell a character
_TOKEN = re.compile(
    r"(?P<plain>[ -~]+)|(?P<crlf>\r\n)|(?P<cr>\r)|(?P<lf>[\n\x0b\x0c])|(?P<bs>\x08)|(?P<tab>\t)"
    r"|(?P<csi>\x1b\[(?P<params>[0-?]*)(?P<inter>[ -/]*)(?P<final>[@-~]))"
    r"|(?P<string>\x1b[]P_^X])|(?P<esc>\x1b[ -/]*[0-~])|(?P<other>.)", re.S)
_STRING_END = re.compile(r"\x07|\x1b\\|[\x18\x1a]")  # BEL, ST, CAN, SUB
# Before the last line break, what makes the lines before it worth following one by one:
# anything but colours and erasing along a row (a mode, a saved cursor, a move up, a string).
_NOT_IN_LINE = re.compile(r"\x1b(?!\[[0-9;:]*[mK])|[\x08\x0b\x0c]")
# Private modes that change nothing a rewrite relies on: cursor keys, blinking and visible
# cursor, mouse reports, focus events, meta key, bracketed paste, synchronized output.
_HARMLESS_MODES = frozenset({1, 12, 25, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1015,
                             1034, 1035, 1036, 1039, 2004, 2026})
# Private modes that change what printing does while they are set (or, for 7, reset).
_DISABLING = {7: "nowrap", 45: "reverse-wrap", 69: "side-margins"}
_ZERO_WIDTH_CONTROLS = frozenset("\x00\x07\x0e\x0f\x7f")
_SEPARATORS = frozenset(" \t\r\n")
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[ -/]*[0-~])")

Pos = tuple[int, int, bool]  # row (counted from the last line feed), column, wrap pending
_Saved = tuple[Pos | None, int | None, int]  # a saved screen: pos, fresh, up


@dataclass
class _Cursor:
    """Where the cursor is, as far as the output drawn so far tells: ``pos`` None when not
    known. ``fresh`` (None: none known) is the first cell, as ``row * cols + col``, from which
    every cell is blank; ``up`` how many rows above the lowest row that may hold text the
    cursor may be (rows below that one are blank: a line feed from it brings a blank row);
    ``flags`` the modes in force that rule out rewriting."""

    cols: int
    rows: int
    pos: Pos | None = (0, 0, False)
    fresh: int | None = 0
    flags: set[str] = field(default_factory=set)
    in_string: bool = False  # inside an OSC, DCS … string: nothing is drawn until its end
    string_esc: bool = False  # … and its last character was an ESC (of an ST, maybe)
    up: int = 0
    frame: int = 0  # which reckoning of rows ``pos`` is in: a new one at every line break …
    saved: tuple[int, Pos] | None = None  # DECSC, CSI s, mode 1048: frame and cursor
    tabs: bool = True  # the tab stops are every 8 columns (none set or cleared since a reset)
    screen_saved: _Saved | None = None  # mode 1049

    def copy(self) -> _Cursor:
        return replace(self, flags=set(self.flags))

    def forget(self) -> None:
        """Something this does not see writes at the cursor (the gateway's line editor): it
        stays on the rows below, which it leaves blank."""
        self._lost(rows=False)

    def resize(self, cols: int, rows: int) -> None:
        self.cols, self.rows = cols, rows
        # A terminal may reflow its lines, or cut them: the column is lost; rows below the
        # last one that held text stay blank either way.
        self._lost(rows=False)
        self.saved = self.screen_saved = None
        self.flags.discard("columns")
        self.tabs = False  # terminals differ on the stops of columns a resize adds

    def _lost(self, *, rows: bool) -> None:
        """The cursor went where this does not follow; with ``rows``, maybe up."""
        self._new_frame()
        self.pos = self.fresh = None
        if rows:
            self.up = max(self.rows, 1)  # at most a screen above its bottom row

    def _new_frame(self) -> None:
        """Rows are counted from here on from a new place (or ``pos`` is lost): a cursor saved
        before cannot be placed among them."""
        self.frame += 1

    def _save(self) -> None:
        # (terminals differ on whether a pending wrap is saved)
        self.saved = None if self.pos is None or self.pos[2] else (self.frame, self.pos)

    def _restore(self) -> None:
        """Back to the saved cursor. Only the cursor: what was drawn since stays (``fresh``),
        and ``up`` counts from the cursor's new row; a cursor saved in another reckoning of
        rows (or before a move up, which the top of the screen may have cut short) is not
        placed."""
        if self.saved is None or self.pos is None or self.saved[0] != self.frame:
            self._lost(rows=True)
            return
        row, saved = self.pos[0], self.saved[1]
        self.up = min(max(row - saved[0] + max(self.up, 1), 1), max(self.rows, 1))
        self.pos = saved

    def _save_screen(self) -> _Saved:
        return (self.pos, self.fresh, self.up)

    def _restore_screen(self, saved: _Saved | None) -> None:
        """Back from the alternate screen: the main one is as it was left, cursor included
        (its rows counted anew: a cursor saved on the alternate screen is not placed)."""
        if saved is None:
            self._lost(rows=True)
        else:
            self.pos, self.fresh, self.up = saved
            self._new_frame()
            self.saved = None

    def _down(self, rows: int) -> None:
        """The cursor went ``rows`` rows down: a row it reaches below the lowest that may hold
        text is blank."""
        self.up = max(self.up - rows, 0)

    def next_cell(self) -> int | None:
        """The cell the next character is drawn in (as ``row * cols + col``)."""
        if self.pos is None:
            return None
        row, col, pending = self.pos
        return (row + 1) * self.cols if pending else row * self.cols + col

    def can_show(self, text: str) -> bool:
        """Whether ``text``, drawn from here, can be found and rewritten later."""
        first = self.next_cell()
        if (first is None or self.pos is None or self.cols <= 0 or self.flags
                or self.in_string or self.fresh is None or first < self.fresh or not text
                or _PLAIN.fullmatch(text) is None):
            return False
        # Its first row must still be on the screen when it is rewritten.
        return (first + len(text) - 1) // self.cols - first // self.cols < max(self.rows, 1)

    def cell(self, n: int) -> tuple[int, int]:
        """The (row, column) of the ``n``-th cell of printable ASCII drawn from here."""
        first = self.next_cell()
        assert first is not None
        return divmod(first + n, self.cols)

    def after(self, n: int) -> Pos:
        """The cursor after ``n`` cells of printable ASCII drawn from here."""
        assert self.pos is not None
        if n == 0:
            return self.pos
        row, col = self.cell(n - 1)
        return (row, col, True) if col == self.cols - 1 else (row, col + 1, False)

    # --- following the output ----------------------------------------------------------------

    def draw(self, text: str) -> None:
        if not text:
            return
        if self.cols <= 0:
            self.pos = None
            return
        at = 0
        line = -1 if self.in_string else text.rfind("\r\n")
        if line >= 0 and _NOT_IN_LINE.search(text, 0, line) is None:
            # Only the last line says where the cursor is: what comes before it is followed
            # only when it may do more than colour text or erase along a row (a mode, a saved
            # cursor, a move up, a string).
            self._down(text.count("\n", 0, line + 2))
            self._new_frame()
            self.pos, self.fresh, at = (0, 0, False), (0 if self.up == 0 else None), line + 2
        self._follow(text, at)

    def _follow(self, text: str, at: int) -> None:
        end = len(text)
        while at < end:
            if self.in_string:
                if self.string_esc:
                    self.string_esc = False
                    if text[at] == "\\":
                        self.in_string = False
                        at += 1
                        continue
                stop = _STRING_END.search(text, at)
                if stop is None:
                    self.string_esc = text.endswith("\x1b")
                    return
                self.in_string, at = False, stop.end()
                continue
            m = _TOKEN.match(text, at)
            assert m is not None  # (?P<other>.) matches any character
            at = m.end()
            kind = m.lastgroup
            if kind == "plain":
                self._print(m.end() - m.start(), len(m.group().rstrip(" ")))
            elif kind == "crlf":
                self._down(1)
                self._new_frame()
                self.pos, self.fresh = (0, 0, False), (0 if self.up == 0 else None)
            elif kind == "cr":
                if self.pos is None:
                    self._new_frame()
                    self.pos, self.fresh = (0, 0, False), None
                else:
                    self.pos = (self.pos[0], 0, False)
            elif kind == "lf":
                self._line_feed()
            elif kind == "bs":
                if self.pos is None or self.pos[2]:
                    self.pos = None  # terminals differ on a backspace at a pending wrap
                else:
                    row, col, _ = self.pos
                    self.pos = (row, max(col - 1, 0), False)
            elif kind == "tab":
                self._tab()
            elif kind == "csi":
                self._csi(m.group("params"), m.group("inter"), m.group("final"))
            elif kind == "string":
                self.in_string = True
            elif kind == "esc":
                self._escape(m.group())
            else:
                self._character(m.group())

    def _print(self, cells: int, inked: int | None = None) -> None:
        """``cells`` drawn, of which the first ``inked`` (all: None) may not be blanks: a
        blank drawn on a blank cell leaves it blank (readline's `` \r`` that moves the cursor
        to the next row when a line wraps, typed over at once)."""
        if self.pos is None:
            return
        if self.flags:
            self.pos = None
            return
        first = self.next_cell()
        row, col, pending = self.after(cells)
        if row > self.pos[0]:  # wrapped
            self._down(row - self.pos[0])
        self.pos = (row, col, pending)
        if self.fresh is not None and first is not None and (inked is None or inked):
            self.fresh = max(self.fresh, first + (cells if inked is None else inked))

    def _line_feed(self) -> None:
        self._down(1)
        if self.pos is None or self.pos[2]:
            self._lost(rows=False)  # at a pending wrap terminals differ
            return
        row, col, _ = self.pos
        self.pos = (row + 1, col, False)
        self.fresh = (row + 1) * self.cols if self.up == 0 else None

    def _tab(self) -> None:
        """To the next stop, every 8 columns, drawing nothing (the cells it passes keep what
        they hold); stops set or cleared, or a pending wrap, leave the column unknown."""
        if self.pos is None or self.pos[2] or not self.tabs or self.flags:
            self.pos = None
            return
        row, col, _ = self.pos
        self.pos = (row, max(col, min((col // 8 + 1) * 8, self.cols - 1)), False)

    def _up(self, rows: int) -> None:
        """The cursor went up ``rows`` rows, or fewer at the top of the screen: rows below
        the lowest that may hold text are now further below it (``up`` counts it as if it
        was on that row when it was on a blank one, and as if it moved all the way at the
        top; both only keep words back longer). The row in ``pos`` is as if it moved all the
        way: where a word is drawn from there and where the cursor is after it stay right
        relative to each other, which is all a rewrite needs (its moves are relative)."""
        self.up = min(max(self.up, 1) + rows, max(self.rows, 1))
        self._new_frame()
        if self.pos is None or self.pos[2]:
            self.pos = None  # terminals differ on a move at a pending wrap
            return
        row, col, _ = self.pos
        self.pos = (row - rows, col, False)

    def _place(self, row: int, col: int | None) -> None:
        """The cursor went to a row of the screen (1 for the top), and a column (None: the
        one it is in): a new reckoning of rows starts there, nothing about the cells around
        it is known, and rows below the screen's bottom one are blank (a line feed there
        scrolls a blank row in)."""
        if self.rows <= 0 or self.cols <= 0 or (col is None and (self.pos is None
                                                                 or self.pos[2])):
            self._lost(rows=True)
            return
        at = min(max(row, 1), self.rows) - 1
        column = self.pos[1] if col is None and self.pos is not None else \
            min(max(col or 1, 1), self.cols) - 1
        self._new_frame()
        self.pos, self.fresh, self.up = (at, column, False), None, self.rows - at

    def _character(self, char: str) -> None:
        if char in _ZERO_WIDTH_CONTROLS:
            return
        width = _width(char)
        if width == 0:
            return
        if width is None or self.pos is None or self.flags:
            self.pos = None
            return
        if width == 2 and (self.pos[2] or self.pos[1] >= self.cols - 1):
            self.pos = None  # a wide character at the last column: terminals differ
            return
        self._print(width)

    def _csi(self, params: str, inter: str, final: str) -> None:
        private = params[:1] in ("?", "<", "=", ">")
        numbers = _numbers(params[1:] if private else params)
        first = numbers[0] if numbers else 0
        pos = self.pos
        if inter or final in "mncq":
            return  # colours, queries, cursor style: nothing moves
        if final in "hl" and (not private or params[0] == "?"):
            self._modes(numbers, final == "h", private=private)
        elif private:
            self._lost(rows=True)
        elif final == "K":  # erase in line
            if pos is None or pos[2]:
                self.pos = None
            elif first in (0, 2) and self.fresh is not None and \
                    self.fresh <= (pos[0] + 1) * self.cols:
                self.fresh = min(self.fresh, pos[0] * self.cols + (0 if first else pos[1]))
        elif final == "J":  # erase in display
            if pos is None or pos[2]:
                self._lost(rows=False)
            elif first in (0, 2):  # (3 erases only the scrollback, on most terminals)
                self.fresh = pos[0] * self.cols + (0 if first else pos[1])
                self.up = 0
        elif final == "X":  # erase characters
            if pos is not None and pos[2]:
                self.pos = None
        elif final == "A":
            self._up(max(first, 1))
        elif final in "Hf":
            self._place(first, numbers[1] if len(numbers) > 1 else 1)
        elif final == "d":
            self._place(first, None)
        elif final in "Be":  # down, or fewer at the bottom: rows below only get nearer
            self.pos = self.fresh = None
        elif final == "g":  # tab stops cleared
            self.tabs = False
        elif final == "C" and pos is not None:
            self.pos = (pos[0], min(pos[1] + max(first, 1), self.cols - 1), False)
        elif final == "D" and pos is not None and not pos[2]:
            self.pos = (pos[0], max(pos[1] - max(first, 1), 0), False)
        elif final in "G`":
            col = min(max(first, 1), self.cols) - 1
            if pos is None:
                self._new_frame()
                self.pos, self.fresh = (0, col, False), None
            else:
                self.pos = (pos[0], col, False)
        elif final == "r":
            self._lost(rows=True)  # the cursor goes home
            if numbers in ([], [0], [1, self.rows], [0, self.rows], [1], [0, 0]):
                self.flags.discard("margins")
            else:
                self.flags.add("margins")
        elif final == "s":
            self._save()
        elif final == "u":
            self._restore()
        else:  # up, down, to a place, inserted or deleted cells: not followed
            self._lost(rows=final not in "@PX")

    def _modes(self, numbers: list[int], on: bool, *, private: bool) -> None:
        for n in numbers:
            if not private:
                if n in (4, 20):  # insert mode; a line feed that also returns the carriage
                    name = "insert" if n == 4 else "newline"
                    if on:
                        self.flags.add(name)
                    else:
                        self.flags.discard(name)
                else:
                    self._lost(rows=True)
            elif n in _HARMLESS_MODES:
                continue
            elif n in _DISABLING:
                if on == (n == 7):  # autowrap on, reverse wrap or side margins off
                    self.flags.discard(_DISABLING[n])
                else:
                    self.flags.add(_DISABLING[n])
            elif n == 1049 and on:
                self.screen_saved = self._save_screen()
                self.saved = None  # some terminals save the cursor in DECSC's place too
                self._lost(rows=True)
            elif n == 1049:
                self._restore_screen(self.screen_saved)
                self.screen_saved = None
            elif n == 1048:
                if on:
                    self._save()
                else:
                    self._restore()
            elif n == 3:
                self.flags.add("columns")  # 80 or 132 columns, until the client says its size
            else:
                self._lost(rows=True)  # the alternate screen, origin mode …: not followed

    def _escape(self, seq: str) -> None:
        code = seq[1:]
        if code == "7":
            self._save()
        elif code == "8":
            self._restore()
        elif code == "c":  # full reset: home, blank screen, modes as they start
            self._new_frame()
            self.pos, self.fresh, self.up = (0, 0, False), 0, 0
            self.flags.clear()
            self.saved = self.screen_saved = None
            self.tabs = True
        elif code == "E":
            self._down(1)
            self._new_frame()
            self.pos, self.fresh = (0, 0, False), (0 if self.up == 0 else None)
        elif code == "D":
            self._line_feed()
        elif code == "H":
            self.tabs = False  # a tab stop set
        elif code in ("=", ">", "\\", "N", "O") or (len(code) == 2 and code[0] in "()*+-./"):
            return  # keypad, a lone ST, a tab stop, charsets: nothing moves
        else:
            self._lost(rows=True)


def _numbers(params: str) -> list[int]:
    out = []
    for part in params.replace(":", ";").split(";"):
        out.append(int(part) if part.isdigit() and len(part) < 6 else 0)
    return out if params else []


def _width(char: str) -> int | None:
    """Cells a character takes on every terminal, or None when terminals differ on it."""
    if unicodedata.combining(char):
        return 0
    code = ord(char)
    if code < 0x20 or 0x7f <= code < 0xa0 or 0xd800 <= code < 0xe000:
        return None  # controls; undecodable bytes (their replacement's width varies)
    width = wcwidth(char)
    kind = unicodedata.east_asian_width(char)
    if width == 1 and kind in ("Na", "N", "H") and unicodedata.category(char)[0] != "C":
        return 1
    if width == 2 and kind in ("W", "F") and code < 0x1f000:  # not emoji: their width varies
        return 2
    return None


def _stars(text: str) -> str:
    """What stands for text the screen may not show: a star for each character, white space
    kept, escape sequences and controls dropped."""
    text = _ESCAPES.sub("", text)
    return "".join(c if c in _SEPARATORS else "*" for c in text
                   if c in _SEPARATORS or (c.isprintable() and c != "\x1b"))


class TerminalMasker:
    """One output stream of a channel with a terminal of ``cols`` by ``rows`` cells (0: the
    client did not say; nothing is then shown before it is decided)."""

    def __init__(self, masker: ValueMasker, cols: int, rows: int) -> None:
        self.stream = StreamMasker(masker)
        self._cursor = _Cursor(max(cols, 0), max(rows, 0))  # after the decided text
        self._shown = ""  # drawn after the decided text: the tail masked as it stands
        # Raw characters at the start of the tail that the screen shows in a form that can no
        # longer be rewritten (None: none): the rest of that word is shown as stars.
        self._frozen: int | None = None

    @property
    def counts(self) -> Counter[str]:
        return self.stream.counts

    @property
    def held(self) -> bool:
        """Never: a tail the screen cannot show yet waits for its decision, not for a quiet
        moment (a flush cannot decide it; that is how a value split by a pause leaked)."""
        return False

    def resize(self, cols: int, rows: int) -> None:
        """The client's terminal changed size: what it shows of the tail stays as it is (it
        may have been reflowed or cut) and the rest of that word is shown as stars."""
        if self._shown:
            self._frozen, self._shown = len(self.stream.tail), ""
        self._cursor.resize(max(cols, 0), max(rows, 0))

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        """(what the client is sent, what is recorded) after ``data``."""
        recorded = self.stream.feed(data)
        return self._update(recorded), recorded

    def flush(self, *, end: bool = False) -> tuple[bytes, bytes]:
        """(what the client still needs, what is recorded). At the ``end`` of the output,
        everything held, masked as it stands. Otherwise the gateway is about to write on the
        terminal (or output was held for a moment): the tail stays held for the record, and
        the screen gets stars for what it has not shown of it (see the module docstring)."""
        if end:
            recorded = self.stream.flush()
            return self._update(recorded), recorded
        self._cursor.forget()
        tail = self.stream.tail
        if not tail:
            self._frozen, self._shown = None, ""
            return b"", b""
        covered = len(tail) if self._shown else (self._frozen or 0)
        self._frozen, self._shown = len(tail), ""
        return _encode(_stars(tail[covered:])), b""

    # --- what the screen gets ---------------------------------------------------------------

    def _update(self, recorded: bytes) -> bytes:
        decided = recorded.decode("utf-8", "surrogateescape")
        if self._frozen is not None:
            decided, done = self._unfreeze(decided)
            if not done:
                return _encode(decided)
        tail = self.stream.tail
        preview = self.stream.preview() if tail else ""
        after = self._cursor.copy()
        after.draw(decided)
        if preview is None or not after.can_show(preview):
            preview = ""
        out = self._redraw(decided + preview)
        self._cursor, self._shown = after, preview
        return _encode(out)

    def _unfreeze(self, decided: str) -> tuple[str, bool]:
        """What the screen gets of a release while a word is frozen, and whether the word is
        now decided (True: the screen's cursor is then where that text leaves it)."""
        assert self._frozen is not None
        raw, tail = self.stream.released, self.stream.tail
        if len(raw) < self._frozen:  # still inside what the screen covers
            covered = self._frozen - len(raw)
            self._frozen = len(tail)
            return _stars(tail[covered:]), False
        rest = raw[self._frozen:]
        self._frozen = None
        # What follows the word on its line is starred too (the record's mask of the whole
        # cannot be cut there); after that line, released text is masked on its own.
        breaks = [i for i in (rest.find("\r"), rest.find("\n")) if i >= 0]
        if not breaks or KEY_HEADER.search(rest):
            return _stars(rest), True
        cut = min(breaks) + 1
        if rest[cut - 1:cut + 1] == "\r\n":
            cut += 1
        return _stars(rest[:cut]) + self.stream.render(rest[cut:]), True

    def _redraw(self, target: str) -> str:
        """Turn the screen's ``_shown`` into ``target``, both drawn from ``_cursor``; the
        cursor ends where drawing ``target`` alone would leave it."""
        shown = self._shown
        if target.startswith(shown):  # nothing shown changes: the usual case
            return target[len(shown):]
        same = 0
        for a, b in zip(shown, target, strict=False):
            if a != b:
                break
            same += 1
        base = self._cursor
        if same and base.after(same)[2] and _PLAIN.match(target, same).end() == same:  # type: ignore[union-attr]
            # What is kept ends at the last column and nothing is drawn after it: its last
            # character is drawn again, as only drawing there leaves the wrap pending.
            same -= 1
        rest = target[same:]
        plain = rest[:_PLAIN.match(rest).end()]  # type: ignore[union-attr]
        at = base.after(len(shown))  # the cursor now
        kept = same + len(plain)
        blanks = " " * (len(shown) - kept)  # the new text is shorter: blank the old one's rest
        if not blanks:
            out = [_move(at, base.cell(same)), plain]
        elif not base.after(kept)[2]:
            out = [_move(at, base.cell(same)), plain, blanks, _move(at, base.cell(kept))]
        else:  # it ends at the last column: blank first, so that its wrap is pending as it was
            out = [_move(at, base.cell(kept)), blanks, _move(at, base.cell(same)), plain]
        return "".join(out) + rest[len(plain):]


def _move(at: Pos, to: tuple[int, int]) -> str:
    """Cursor movement from ``at`` back to the cell ``to`` (never below ``at``)."""
    row, col, pending = at
    to_row, to_col = to
    if not pending and row == to_row and col >= to_col:  # back along the row
        back = col - to_col
        return "\b" * back if back < 4 else f"\x1b[{back}D"
    up = row - to_row
    return "\r" + (f"\x1b[{up}A" if up else "") + (f"\x1b[{to_col}C" if to_col else "")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")
