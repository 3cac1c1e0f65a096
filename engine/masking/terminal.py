"""Mask what a terminal shows without making it wait: released at once, rewritten if need be.

A ``StreamMasker`` holds back the last word of the output, since a value may still be growing
there; at a terminal that word is often a key just echoed, and holding it until the target has
been quiet made every keystroke wait. ``TerminalMasker`` shows the held word at once, masked as
it stands (``StreamMasker.preview``: a value already complete in it is masked), and when more
output changes what that word turns out to be — the last digit of a card arrives — it moves the
cursor back over the word and draws its masked form over it, blanking what is left. So:

- the client is only ever sent masked text (decided, or the tail masked as it stands), blanks
  and cursor movement: a value is never on its screen whole; what it may have seen is the
  beginning of a value before the value was complete (the first digits of a card typed key by
  key), as it does at the target;
- the record gets only what is decided (``StreamMasker.feed``): a word shown early is recorded
  once it is decided, never a beginning that later became a value (ARCHITECTURE.md invariant 6).

Rewriting needs to know where the word starts on the screen. The tail is shown only when that
is certain: it is printable ASCII (one cell a character), the line it is on since its carriage
return holds nothing but printable ASCII and escapes that draw nothing (colours, modes, titles),
and it spans fewer rows than the screen has (its start is still on the screen). Otherwise the
tail is held, ``held`` says so, and the caller flushes it after a quiet moment as before. A
flush (a quiet moment, the gateway writing on the terminal, the end) commits what is shown.
"""

from __future__ import annotations

import re
from collections import Counter

from engine.masking.masker import ValueMasker
from engine.masking.stream import StreamMasker

_PLAIN = re.compile(r"[ -~]*")  # printable ASCII: one cell a character
# Escapes that draw nothing and do not move the cursor: colours, modes, window titles.
_ZERO_WIDTH = re.compile(r"\x1b\[[0-9;:]*m|\x1b\[\??[0-9;]*[hl]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


class TerminalMasker:
    """One output stream of a channel with a terminal of ``cols`` by ``rows`` cells."""

    def __init__(self, masker: ValueMasker, cols: int, rows: int) -> None:
        self.stream = StreamMasker(masker)
        self.cols, self.rows = max(cols, 1), max(rows, 1)
        self._shown = ""  # on the screen beyond what is recorded: the tail masked as it stands
        self._column: int | None = 0  # cells from the line's start to where _shown starts
        self._hidden = False  # a tail that is neither recorded nor shown

    @property
    def counts(self) -> Counter[str]:
        return self.stream.counts

    @property
    def held(self) -> bool:
        """Output is held back from the client: the caller must flush it after a quiet moment."""
        return self._hidden

    def resize(self, cols: int, rows: int) -> None:
        # A terminal that reflows its lines keeps a word's cells counted from the line's start.
        self.cols, self.rows = max(cols, 1), max(rows, 1)

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        """(what the client is sent, what is recorded) after ``data``."""
        recorded = self.stream.feed(data)
        decided = recorded.decode("utf-8", "surrogateescape")
        preview = self.stream.preview() if self.stream.held else ""
        start = _advance(self._column, decided)
        if preview and not self._fits(start, preview):
            preview = None
        self._hidden = preview is None
        return self._redraw(decided, preview or "", start), recorded

    def flush(self) -> tuple[bytes, bytes]:
        """Commit the tail as it stands: (what the client still needs, what is recorded)."""
        recorded = self.stream.flush()
        decided = recorded.decode("utf-8", "surrogateescape")
        self._hidden = False
        return self._redraw(decided, "", _advance(self._column, decided)), recorded

    def _fits(self, start: int | None, preview: str) -> bool:
        if start is None or _PLAIN.fullmatch(preview) is None:
            return False
        return _row(start + len(preview), self.cols) - start // self.cols < self.rows

    def _redraw(self, decided: str, preview: str, start: int | None) -> bytes:
        """Turn the screen's ``_shown`` into ``decided + preview``; the cursor ends after it."""
        shown, target = self._shown, decided + preview
        self._shown = preview
        base = self._column
        self._column = start
        if target.startswith(shown):  # nothing shown changes: the usual case
            return target[len(shown):].encode("utf-8", "surrogateescape")
        assert base is not None  # a tail is shown only where its column is known
        same = 0
        for a, b in zip(shown, target, strict=False):
            if a != b:
                break
            same += 1
        rest = target[same:]
        plain = rest[:_PLAIN.match(rest).end()]  # type: ignore[union-attr]
        old_end, end = base + len(shown), base + same + len(plain)
        out = [self._move(old_end, base + same), plain]
        if end < old_end:  # the new text is shorter: blank the old one's last cells
            out += [" " * (old_end - end), self._move(old_end, end)]
        out.append(rest[len(plain):])
        return "".join(out).encode("utf-8", "surrogateescape")

    def _move(self, written: int, to: int) -> str:
        """Cursor movement from after ``written`` cells of the line to before cell ``to``."""
        if to >= written:
            return ""
        cols = self.cols
        row_to, col_to = divmod(to, cols)
        if _row(written, cols) == row_to and written % cols:  # same row, no wrap pending
            back = written - to
            return "\b" * back if back < 4 else f"\x1b[{back}D"
        up = _row(written, cols) - row_to
        return "\r" + (f"\x1b[{up}A" if up else "") + (f"\x1b[{col_to}C" if col_to else "")


def _row(written: int, cols: int) -> int:
    """The row (from the line's first) of the cursor after ``written`` cells: after a full
    row it waits at the row's last cell until the next character wraps it."""
    return (written - 1) // cols if written and written % cols == 0 else written // cols


def _advance(column: int | None, text: str) -> int | None:
    """The cells from the line's start after ``text`` is drawn at ``column``; None when that
    cannot be known (cursor movement, tabs, wide or combining characters, a bare line feed)."""
    cr, lf = text.rfind("\r"), text.rfind("\n")
    if cr >= 0 or lf >= 0:
        if lf > cr and (lf == 0 or text[lf - 1] != "\r"):
            return None  # a line feed alone keeps the column, which a raw mode program uses
        column, text = 0, text[max(cr, lf) + 1:]
    if column is None:
        return None
    if _PLAIN.fullmatch(text) is None:
        if "\x1b" in text:
            text = _ZERO_WIDTH.sub("", text)
        if _PLAIN.fullmatch(text) is None:
            return None
    return column + len(text)
