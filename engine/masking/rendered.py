"""What a terminal shows of output: escapes that draw nothing, and rows drawn out of order.

The detectors read text; a terminal shows cells. Two ways apart (outside attack on issue 14):

- what draws nothing — a cursor saved (``ESC[s``), a character set chosen (``ESC(B``), a
  window title (``ESC]0;t BEL``), a mode set, a zero-width or format character (U+200B,
  U+2060, a soft hyphen: Unicode categories Cf, Mn, Me), NUL, BEL, SO, SI, DEL — separates
  nothing on the screen: ``4012<ESC[s>888888881881`` shows a card. ``is_moving`` tells those
  (looked through, as colours are) from the sequences that move the cursor or change cells;
- text drawn, then the cursor moved back over it (``\\r``, backspace, ``ESC[12D``, a restored
  cursor, a row up) and drawn over: ``4012xxxxxxxxxxxx<ESC[12D>888888881881`` shows a card
  that is in no run of the text. ``rows`` follows output cell by cell (its columns from where
  its first line began) and gives each row it drew as text, with which character drew each
  cell; the stream masker reads those rows with the detectors.

What ``rows`` does not know: where on the screen its text is (a move to a place on the
screen, scrolling, erasing the screen start a new reckoning of rows: text drawn there next to
what was drawn before is not read together), the width of the screen (no wrap), and tab stops
other than every 8 columns. The stream masker gives it the current line, and the 24 lines
before it when the cursor moves up or down.
"""

from __future__ import annotations

import re
import unicodedata

# Zero-width characters a terminal draws nothing for (or draws over the cell before them):
# format characters, combining marks, and the C0 controls terminals ignore.
_ZERO_WIDTH_CATEGORIES = frozenset({"Cf", "Mn", "Me"})


def _invisible_class() -> str:
    """A character class of the invisible characters of the Basic Multilingual Plane, listed
    one by one (the regex engine tests such a class with a bitmap), and of every character
    beyond it: the few invisible ones there (tags, variation selectors) are looked through
    with the others (an emoji inside a value then masks it: more masking, never less)."""
    codes = [code for code in range(0xA0, 0x10000)
             if unicodedata.category(chr(code)) in _ZERO_WIDTH_CATEGORIES]
    return ("[\\x00\\x07\\x0e\\x0f\\x7f" + "".join(f"\\u{code:04x}" for code in codes)
            + "\\U00010000-\\U0010ffff]")


INVISIBLE = _invisible_class()
_INVISIBLE = re.compile(INVISIBLE)

# ECMA-48: a control string (OSC, DCS, APC, PM, SOS) with its terminator, a CSI, a two-byte
# escape (a control string not yet terminated is its first two bytes), or an invisible
# character. ``stream`` splits and looks through text with it.
_SEQUENCE = r"\x1b(?:[]P_^X][^\x07\x1b]*(?:\x07|\x1b\\)|\[[0-?]*[ -/]*[@-~]|[ -/]*[0-~])"
ESCAPE = re.compile(f"{_SEQUENCE}|{INVISIBLE}")
_ASCII_INVISIBLE = "[\\x00\\x07\\x0e\\x0f\\x7f]"
_ESCAPE_ASCII = re.compile(f"{_SEQUENCE}|{_ASCII_INVISIBLE}")  # the same, for ASCII text (faster)
_INVISIBLE_ASCII = re.compile(_ASCII_INVISIBLE)


def escapes(text: str) -> re.Pattern[str]:
    """``ESCAPE``, or a faster pattern that finds the same in ``text``."""
    return _ESCAPE_ASCII if text.isascii() else ESCAPE


def has_invisible(text: str) -> bool:
    """Whether ``text`` holds a character a terminal draws nothing for."""
    pattern = _INVISIBLE_ASCII if text.isascii() else _INVISIBLE
    return pattern.search(text) is not None
_STRING_START = frozenset({"\x1b]", "\x1bP", "\x1b_", "\x1b^", "\x1bX"})

# CSI finals that move the cursor or change cells other than by drawing (insert, delete,
# erase characters or the display, repeat, scroll, margins, restore the cursor).
_MOVING_CSI = frozenset("@ABCDEFGHIJLMPSTXZ`abdefru")
_MOVING_ESC = frozenset("78DEMc")
# Somewhere in a text: a control or an escape that may move the cursor (colours do not).
# (A carriage return at the end may be the first half of a line break: ``stream`` decides.)
_HINT = re.compile(r"[\x08\x0b\x0c]|\r(?!\n|\Z)|\x1b(?!\[[0-9;:]*m)")


def unterminated(seq: str) -> bool:
    """Whether ``seq`` (an ``ESCAPE`` match) starts a control string whose end has not come."""
    return seq in _STRING_START


def is_moving(seq: str) -> bool:
    """Whether an ``ESCAPE`` match moves the cursor or changes cells (not looked through)."""
    if len(seq) < 2 or seq[0] != "\x1b":
        return False  # an invisible character
    if seq[1] == "[":
        return len(seq) > 2 and seq[-1] in _MOVING_CSI and not _intermediates(seq)
    if seq[1] in "]P_^X":
        return len(seq) == 2  # not terminated: what follows is not drawn as it looks
    return len(seq) == 2 and seq[1] in _MOVING_ESC


def _intermediates(seq: str) -> bool:
    """A CSI with intermediate bytes (``ESC[ q``, cursor style): nothing moves."""
    body = seq[2:-1]
    return any(" " <= ch <= "/" for ch in body)


def looked_through(seq: str) -> bool:
    """Whether the stream masker reads the text around an ``ESCAPE`` match as one: colours,
    erasing the rest of a row (``grep --color`` puts them inside values) and invisible
    characters. Any other escape splits the text, and the line is read as drawn (``rows``)."""
    return seq[0] != "\x1b" or _SGR_EL.fullmatch(seq) is not None


_SGR_EL = re.compile(r"\x1b\[[0-9;:]*m|\x1b\[[0-2]?K")


def may_move(text: str) -> bool:
    """Whether ``text`` holds something the stream masker does not look through: it may move
    the cursor along or off its row, or draw nothing where it seems to split the text."""
    if _HINT.search(text) is None:
        return False
    if any(ch in text for ch in "\x08\x0b\x0c") or re.search(r"\r(?!\n|\Z)", text):
        return True
    return any(not looked_through(m.group()) for m in escapes(text).finditer(text)
               if m.group()[0] == "\x1b")


_TOKEN = re.compile(
    r"(?P<esc>\x1b(?:[]P_^X][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\[(?P<params>[0-?]*)[ -/]*(?P<final>[@-~])|[ -/]*[0-~]))"
    r"|(?P<ctl>[\x00-\x1f\x7f])|(?P<text>[^\x00-\x1f\x7f\x1b]+)|(?P<other>\x1b)")
_TAB = 8
_MAX_COL = 1 << 16  # a move further right than any screen is as far as this


def rows(text: str) -> list[tuple[str, list[int]]]:
    """The rows ``text`` draws, from the first column of its first row: each as its text (a
    blank where nothing was drawn) and, for each cell, the index in ``text`` of the character
    drawn there last (-1: none). A line feed goes to the start of the next row (as a terminal
    behind a pseudo-terminal does); moves up and down are followed; a move to a place on the
    screen, scrolling or erasing the screen starts a new reckoning of rows (what was drawn
    before is read apart from what is drawn after)."""
    frames: list[dict[int, dict[int, int]]] = []
    grid: dict[int, dict[int, int]] = {}
    row = col = 0
    saved: tuple[int, int] | None = None
    last = -1

    def new_frame() -> dict[int, dict[int, int]]:
        nonlocal saved
        if grid:
            frames.append(grid)
        saved = None
        return {}

    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind == "text":
            cells = grid.setdefault(row, {})
            for i in range(m.start(), m.end()):
                if _INVISIBLE.match(text, i):
                    continue
                cells[col] = i
                last = i
                col = min(col + 1, _MAX_COL)
        elif kind == "ctl":
            ch = m.group()
            if ch == "\r":
                col = 0
            elif ch == "\n":
                row, col = row + 1, 0
            elif ch == "\x08":
                col = max(col - 1, 0)
            elif ch == "\t":
                col = min((col // _TAB + 1) * _TAB, _MAX_COL)
            elif ch in "\x0b\x0c":
                row += 1
        elif kind == "esc" and m.group("final") is not None:
            final = m.group("final")
            params = m.group("params") or ""
            cells = grid.setdefault(row, {})
            if params[:1] in ("?", "<", "=", ">") or not is_moving(m.group()):
                if final == "K":
                    grid[row] = _erased_in_line(cells, col, _first(params, 0))
                elif final == "s":
                    saved = (row, col)
                continue
            n = max(_first(params, 1), 1)
            if final in "Ca":
                col = min(col + n, _MAX_COL)
            elif final == "D":
                col = max(col - n, 0)
            elif final in "G`":
                col = min(n - 1, _MAX_COL)
            elif final == "A":
                row -= n
            elif final in "Be":
                row += n
            elif final == "E":
                row, col = row + n, 0
            elif final == "F":
                row, col = row - n, 0
            elif final == "X":
                for c in range(col, min(col + n, _MAX_COL)):
                    cells.pop(c, None)
            elif final == "P":
                grid[row] = {(c - n if c >= col + n else c): i for c, i in cells.items()
                             if not col <= c < col + n}
            elif final == "@":
                grid[row] = {(c + n if c >= col else c): i for c, i in cells.items()}
            elif final == "b" and last >= 0:
                for _ in range(min(n, _MAX_COL - col)):
                    cells[col] = last
                    col += 1
            elif final == "u":
                if saved is None:
                    grid = new_frame()
                else:
                    row, col = saved
            else:  # to a place, scrolling, erasing the screen, margins: rows counted anew
                grid = new_frame()
                row = 0
                if final in "Hf":
                    parts = params.split(";")
                    col = max(_first(parts[1] if len(parts) > 1 else "", 1), 1) - 1
        elif kind == "esc":
            code = m.group()[1:]
            if code == "7":
                saved = (row, col)
            elif code == "8":
                if saved is None:
                    grid = new_frame()
                    row = 0
                else:
                    row, col = saved
            elif code == "M":
                row -= 1
            elif code == "D":
                row += 1
            elif code == "E":
                row, col = row + 1, 0
            elif code == "c":
                grid = new_frame()
                row = col = 0
    if grid:
        frames.append(grid)
    out: list[tuple[str, list[int]]] = []
    for frame in frames:
        for _, cells in sorted(frame.items()):
            if not cells:
                continue
            drawn = [-1] * (max(cells) + 1)
            for c, i in cells.items():
                drawn[c] = i
            out.append(("".join(text[i] if i >= 0 else " " for i in drawn), drawn))
    return out


def _first(params: str, default: int) -> int:
    head = params.split(";", 1)[0].split(":", 1)[0]
    return int(head) if head.isdigit() and len(head) < 6 else default


def _erased_in_line(cells: dict[int, int], col: int, how: int) -> dict[int, int]:
    if how == 0:
        return {c: i for c, i in cells.items() if c < col}
    if how == 1:
        return {c: i for c, i in cells.items() if c > col}
    return {}


def starred_line(text: str) -> str:
    """``text`` with every character it draws as ``*`` (blanks kept), its escapes and controls
    kept (the cursor goes where it went), its invisible characters dropped."""
    out: list[str] = []
    pos = 0
    for m in escapes(text).finditer(text):
        out.append(_STARS.sub("*", text[pos:m.start()]))
        if m.group()[0] == "\x1b":
            out.append(m.group())
        pos = m.end()
    out.append(_STARS.sub("*", text[pos:]))
    return "".join(out)


_STARS = re.compile(r"[^\s\x00-\x1f\x7f]")
