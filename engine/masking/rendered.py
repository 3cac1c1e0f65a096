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

from engine.masking.unidigits import DIGITS

# Zero-width characters a terminal draws nothing for (or draws over the cell before them):
# format characters, combining marks, the line and paragraph separators (U+2028, U+2029: no
# line break at a terminal), and the C0 controls terminals ignore; and the fillers drawn as a
# blank (Hangul fillers, the blank braille pattern), which split a value no more than a blank.
_ZERO_WIDTH_CATEGORIES = frozenset({"Cf", "Mn", "Me", "Zl", "Zp"})
_BLANK_FILLERS = frozenset({0x115F, 0x1160, 0x2800, 0x3164, 0xFFA0})


def _invisible_class() -> str:
    """A character class of the invisible characters of the Basic Multilingual Plane, listed
    one by one (the regex engine tests such a class with a bitmap), and of every character
    beyond it but the digits (``unidigits``: mathematical digits are drawn, and read as the
    digits they are): the few invisible ones there (tags, variation selectors) are looked
    through with the others (an emoji inside a value then masks it: more masking, never
    less)."""
    codes = [code for code in range(0xA0, 0x10000)
             if unicodedata.category(chr(code)) in _ZERO_WIDTH_CATEGORIES
             or code in _BLANK_FILLERS]
    ranges: list[str] = []
    start = 0x10000
    for digit in sorted(code for code in DIGITS if code >= 0x10000):
        if digit > start:
            ranges.append(f"\\U{start:08x}-\\U{digit - 1:08x}")
        start = digit + 1
    ranges.append(f"\\U{start:08x}-\\U0010ffff")
    return ("[\\x00\\x07\\x0e\\x0f\\x7f" + "".join(f"\\u{code:04x}" for code in codes)
            + "".join(ranges) + "]")


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
# erase characters or the display, repeat, scroll, margins, restore the cursor, tabs).
_MOVING_CSI = frozenset("@ABCDEFGHIJLMPSTXZ`abdefruI")
_MOVING_ESC = frozenset("78DEMc")
# Somewhere in a text: a control or an escape that may move the cursor (colours do not).
# (A carriage return at the end may be the first half of a line break: ``stream`` decides.)
_HINT = re.compile(r"[\x08\x0b\x0c]|\r(?!\n|\Z)|\x1b(?!\[[0-9;:]*m)")


def lost_after(text: str, lost: bool, entered: bool | None) -> tuple[bool, bool | None]:
    """Whether, after ``text``, where output is drawn is not known (``drawn``), and whether it
    was when the alternate screen now in use was entered (None: the main screen is in use);
    ``lost`` and ``entered`` say so before it. Leaving the alternate screen brings back the
    main screen as it was (and its cursor): as known as it was then."""
    if "\x1b" not in text:
        return lost, entered
    saved = False  # a cursor saved in ``text``: restoring it is followed
    for m in _TOKEN.finditer(text):
        if m.lastgroup != "esc":
            continue
        seq, final, params = m.group(), m.group("final"), m.group("params") or ""
        if final is None:
            code = seq[1:]
            if code == "c":
                lost, entered = False, None
            elif code in ("7", "8"):
                lost = lost or (code == "8" and not saved)
                saved = saved or code == "7"
            elif code not in _FOLLOWED_ESC and not code.startswith(
                    ("(", ")", "*", "+", "#", "]", "P", "_", "^", "X")):
                lost = True
        elif _alternate(params, final) == "h":
            if entered is None:
                entered = lost
            lost = False
        elif _alternate(params, final) == "l":
            lost, entered = (True if entered is None else entered), None
        elif final == "J" and _first(params, 0) == 2:
            lost = False
        elif final in "su" and not params:
            lost = lost or (final == "u" and not saved)
            saved = saved or final == "s"
        elif not _followed(seq, params, final):
            lost = True
    return lost, entered


def _alternate(params: str, final: str) -> str | None:
    """``h`` or ``l`` for a CSI that enters or leaves the alternate screen, else None."""
    if final in "hl" and params[:1] == "?" and any(
            p in ("47", "1047", "1049") for p in params[1:].split(";")):
        return final
    return None


_BLANKED = re.compile(r"\x1b(?:\[2J|c)")


def blanked(text: str) -> bool:
    """Whether ``text`` erases the whole screen (or resets the terminal)."""
    return "\x1b" in text and _BLANKED.search(text) is not None


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
    """The rows ``text`` draws (``drawn``'s first part)."""
    return drawn(text)[0]


def drawn(text: str) -> tuple[list[tuple[str, list[int]]], int]:
    """The rows ``text`` draws, from the first column of its first row: each as its text (a
    blank where nothing was drawn) and, for each cell, the index in ``text`` of the character
    drawn there last (-1: none); and where in ``text`` the first escape ends that the rows do
    not follow exactly (-1: none), after which what is drawn may be anywhere.

    A line feed goes to the start of the next row (as a terminal behind a pseudo-terminal
    does); moves along the row (tabs at every 8 columns, back tabs), up and down are followed,
    and so are edits of the row (insert, delete, erase, repeat); a move to a place on the
    screen, scrolling, inserting or deleting lines, margins, an alternate screen, insert mode,
    tab stops changed, rectangles, and any escape not known to draw nothing start a new
    reckoning of rows (what was drawn before is read apart from what is drawn after) and are
    not followed exactly (but erasing the whole screen, or a reset, leaves it blank: what is
    drawn after it is followed again)."""
    frames: list[dict[int, dict[int, int]]] = []
    grid: dict[int, dict[int, int]] = {}
    row = col = 0
    saved: tuple[int, int] | None = None
    last = -1
    lost = -1
    alternate: tuple[dict[int, dict[int, int]], int, int, tuple[int, int] | None, int] | None
    alternate = None

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
            seq = m.group()
            cells = grid.setdefault(row, {})
            switch = _alternate(params, final)
            if switch == "h":  # a blank screen; the main one kept as it is, with its cursor
                alternate = (grid, row, col, saved, lost)
                grid, saved, lost = {}, None, -1
                continue
            if switch == "l":
                if alternate is None:  # left a screen entered before: where is not known
                    grid = new_frame()
                    lost = m.end() if lost < 0 else lost
                else:  # what the alternate screen showed is read apart
                    if grid:
                        frames.append(grid)
                    grid, row, col, saved, lost = alternate
                    alternate = None
                continue
            if not _followed(seq, params, final):
                lost = m.end() if lost < 0 else lost
            if params[:1] in ("?", "<", "=", ">") or _intermediates(seq) or not is_moving(seq):
                if final == "K" and not _intermediates(seq) and params[:1] not in "?<=>":
                    grid[row] = _erased_in_line(cells, col, _first(params, 0))
                elif final == "s" and not params:
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
            elif final == "I":
                col = min((col // _TAB + min(n, _MAX_COL)) * _TAB, _MAX_COL)
            elif final == "Z":
                col = max(((col + _TAB - 1) // _TAB - n) * _TAB, 0)
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
            elif final == "J" and _first(params, 0) == 3:
                pass  # the scrollback erased: the screen stays
            elif final == "J" and _first(params, 0) in (0, 1):
                below = _first(params, 0) == 0
                grid = {r: (_erased_in_line(c, col, 0 if below else 1) if r == row else c)
                        for r, c in grid.items() if (r <= row if below else r >= row)}
            elif final == "u":
                if saved is None:
                    grid = new_frame()
                    lost = m.end() if lost < 0 else lost
                else:
                    row, col = saved
            else:  # to a place, scrolling, erasing the screen, margins: rows counted anew
                grid = new_frame()
                row = 0
                if final == "J":
                    lost = -1  # a blank screen: what is drawn next is all there is
                if final in "Hf":
                    parts = params.split(";")
                    col = max(_first(parts[1] if len(parts) > 1 else "", 1), 1) - 1
        elif kind == "esc":
            code = m.group()[1:]
            if code not in _FOLLOWED_ESC and not code.startswith(
                    ("(", ")", "*", "+", "#", "]", "P", "_", "^", "X")):
                lost = m.end() if lost < 0 else lost
            if code == "7":
                saved = (row, col)
            elif code == "8":
                if saved is None:
                    grid = new_frame()
                    row = 0
                    lost = m.end() if lost < 0 else lost
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
                lost = -1
    if grid:
        frames.append(grid)
    if alternate is not None and alternate[0]:
        frames.append(alternate[0])  # the main screen, under the alternate one
    out: list[tuple[str, list[int]]] = []
    for frame in frames:
        for _, cells in sorted(frame.items()):
            if not cells:
                continue
            cells_drawn = [-1] * (max(cells) + 1)
            for c, i in cells.items():
                cells_drawn[c] = i
            out.append(("".join(text[i] if i >= 0 else " " for i in cells_drawn), cells_drawn))
    return out, lost


# What ``drawn`` follows exactly: CSI finals (without a private prefix or intermediates) that
# it models or that draw nothing (colours, erasing, device reports), two-byte escapes that
# draw nothing or that it models (a reset starts a blank screen), private modes that change
# nothing drawn (cursor keys and visibility, blinking, mouse and focus reports, meta keys,
# bracketed paste, synchronized output), and the intermediates of a cursor style and of
# character protection. (Charsets, ``ESC (`` …, and line sizes, ``ESC #`` …, keep the cells
# where they are.)
_FOLLOWED_CSI = frozenset("ABCDEFGIJKPXZ`@abcemnsu")
_FOLLOWED_ESC = frozenset({"7", "8", "D", "E", "M", "c", "=", ">", "\\", "N", "O"})
_HARMLESS_MODES = frozenset({1, 12, 25, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1015, 1034,
                             1035, 1036, 1039, 2004, 2026})
_HARMLESS_INTERMEDIATES = frozenset({" q", '"q'})


def _followed(seq: str, params: str, final: str) -> bool:
    """Whether ``drawn`` follows a CSI ``seq`` exactly."""
    body = seq[2:-1]
    inter = "".join(ch for ch in body if " " <= ch <= "/")
    if inter:
        return inter + final in _HARMLESS_INTERMEDIATES
    if params[:1] == "?":
        return final in "hl" and all(
            p.isdigit() and int(p) in _HARMLESS_MODES for p in params[1:].split(";"))
    if params[:1] in ("<", "=", ">"):
        return final not in "hl"  # key modifiers, device attributes: nothing drawn
    if final == "J":
        return _first(params, 0) in (0, 1, 2, 3)  # (2: all blank, read apart, exactly)
    if final == "l":
        return all(p in ("", "4", "20") for p in params.split(";"))  # replace mode
    return final in _FOLLOWED_CSI


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
