"""The gateway's own line editor, for strict terminal mode (``ssh.interactive: strict``).

In strict mode the shell never sees a key until its line is judged: keys are edited here,
echoed by the gateway, and only a whole, judged line is sent on (``gate.py``). So readline's
bindings, macros and screen tricks have nothing to act on, and what is judged is exactly what
the shell receives. ``LineEditor`` is a state machine without I/O: keys in, ``Echo`` (bytes
for the client's screen) and one ``Submit`` (the line, and the keys that came after it) or
``Control`` (a key that is the gateway's to act on) out.

The keys are the usual Emacs ones: Ctrl-A/E/B/F, arrows, Home/End, Alt-B/F, Backspace,
Delete, Ctrl-D, Ctrl-K/U/W, Alt-D, Alt-Backspace, Ctrl-Y, Ctrl-T, Ctrl-P/N and ↑/↓ through
the lines of this session, and bracketed paste (its newlines are Enters). Tab has nothing to
complete with (the shell's completion would put unjudged text into its own line) and rings
the bell. Rendering assumes one cell per character and redraws from the line's start; typing
at the end of the line, by far the usual case, writes just the key.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

HISTORY_MAX = 500
_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_PASTE_START, _PASTE_END = "\x1b[200~", "\x1b[201~"
_MOTIONS = {
    "A": "up", "B": "down", "C": "right", "D": "left", "H": "home", "F": "end",
    "1~": "home", "7~": "home", "4~": "end", "8~": "end", "3~": "delete",
    "1;5C": "word-right", "1;5D": "word-left", "1;3C": "word-right", "1;3D": "word-left",
}
CONTROL_KEYS = {"\x03": "interrupt", "\x1a": "suspend", "\x1c": "quit", "\x0c": "clear"}


@dataclass(frozen=True, slots=True)
class Echo:
    """Bytes for the client's screen: the line as edited."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Submit:
    """Enter: the line, and the keys typed after it (not yet read)."""

    text: str
    rest: bytes


@dataclass(frozen=True, slots=True)
class Control:
    """A key for the gateway to act on: ``interrupt`` (Ctrl-C), ``eof`` (Ctrl-D on an empty
    line), ``suspend`` (Ctrl-Z), ``quit`` (Ctrl-\\), ``clear`` (Ctrl-L); ``key`` is its byte."""

    name: str
    key: bytes
    rest: bytes


Output = Echo | Submit | Control


class LineEditor:
    def __init__(self, history: list[str] | None = None) -> None:
        self.history = history if history is not None else []
        self.buf: list[str] = []
        self.pos = 0
        self.cols = 80
        self.start_col = 0  # where the line begins on its first row
        self.secret = False  # echo nothing (a password prompt)
        self.active = False  # a line is being edited (its echo is on the screen)
        self._shown = 0  # the cursor's index as drawn
        self._above = 0  # rows of earlier lines of this command (continued lines)
        self._first_col = 0  # start column of the command's first line
        self._earlier: list[str] = []  # the command's lines before this one
        self._kill = ""
        self._hist = 0  # index into history while browsing; len(history): the draft
        self._draft = ""
        self._pending = ""  # an escape sequence cut in two by the network
        self._paste = False
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    # --- lines ------------------------------------------------------------------------

    def start(self, col: int, cols: int, secret: bool = False) -> None:
        """A new command begins at screen column ``col`` of a ``cols``-wide screen."""
        self.buf, self.pos, self._shown = [], 0, 0
        self.cols = max(cols, 2)
        self.start_col = self._first_col = min(col, self.cols - 1)
        self.secret, self.active = secret, True
        self._above, self._earlier = 0, []
        self._hist, self._draft = len(self.history), ""

    def resize(self, cols: int) -> None:
        self.cols = max(cols, 2)

    def text(self) -> str:
        """The whole command so far: earlier (continued) lines and this one."""
        return "\n".join([*self._earlier, "".join(self.buf)])

    def continue_line(self, prompt: str = "> ") -> Echo:
        """The command needs more lines (an open quote, a trailing backslash …): show a
        continuation prompt and edit the next line."""
        out = self._move(self._shown, len(self.buf))
        rows = (self.start_col + len(self.buf)) // self.cols + 1
        self._above += rows
        self._earlier.append("".join(self.buf))
        self.buf, self.pos, self._shown = [], 0, 0
        self.start_col = len(prompt) % self.cols
        return Echo((out + "\r\n" + prompt).encode())

    def erase(self) -> Echo:
        """Take the command's echo off the screen (the shell is about to echo it itself):
        back to where it began, and clear to the end of the screen."""
        if self.secret:
            self.active = False
            return Echo(b"")
        out = self._move(self._shown, 0)
        if self._above:
            out += f"\x1b[{self._above}A\r" + (f"\x1b[{self._first_col}C"
                                               if self._first_col else "")
        self.active = False
        return Echo((out + "\x1b[J").encode())

    def finish(self) -> Echo:
        """Leave the command's echo as it stands and put the cursor after it."""
        self.active = False
        if self.secret:
            return Echo(b"")
        out = self._move(self._shown, len(self.buf))
        self._shown = len(self.buf)
        return Echo(out.encode())

    def remember(self, text: str) -> None:
        if text.strip() and "\n" not in text and (not self.history or self.history[-1] != text):
            self.history.append(text)
            del self.history[:-HISTORY_MAX]

    def redraw(self, col: int) -> Echo:
        """Draw the line again from column ``col`` of the cursor's row (output moved it)."""
        self.start_col = min(col, self.cols - 1)
        self._shown = 0
        return Echo(self._render().encode())

    # --- keys -------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Output]:
        """Keys in; echoes out, ending with a ``Submit`` or ``Control`` if one came (the keys
        after it are handed back in it, undecoded)."""
        out: list[Output] = []
        text = self._pending + self._decoder.decode(data)
        self._pending = ""
        echo: list[str] = []
        i = 0
        while i < len(text):
            if self._paste:
                end = text.find(_PASTE_END, i)
                chunk = text[i:] if end < 0 else text[i:end]
                cut = min((p for p in (chunk.find("\r"), chunk.find("\n")) if p >= 0),
                          default=-1)
                if cut >= 0:
                    echo.append(self._insert(chunk[:cut]))
                    rest = text[i + cut + 1:]
                    if rest.startswith("\n") and chunk[cut] == "\r":
                        rest = rest[1:]
                    if end >= 0 or rest:  # the paste goes on after this line
                        rest = _PASTE_START + rest if not rest.startswith(_PASTE_END) else rest
                    self._paste = False
                    return self._flush(out, echo, Submit(self.text(), _reencode(rest)))
                echo.append(self._insert(chunk))
                if end < 0:
                    return self._flush(out, echo, None)
                self._paste = False
                i = end + len(_PASTE_END)
                continue
            c = text[i]
            if c == "\x1b":
                seq, length = _escape(text, i)
                if length == 0:  # cut short: wait for the rest
                    self._pending = text[i:]
                    break
                i += length
                if seq == "paste":
                    self._paste = True
                else:
                    echo.append(self._key(seq))
                continue
            i += 1
            if c in ("\r", "\n", "\x0f"):
                rest = text[i:]
                if c == "\r" and rest.startswith("\n"):
                    rest = rest[1:]
                return self._flush(out, echo, Submit(self.text(), _reencode(rest)))
            if c in CONTROL_KEYS:
                return self._flush(out, echo, Control(CONTROL_KEYS[c], c.encode(),
                                                      _reencode(text[i:])))
            if c == "\x04" and not self.buf and not self._earlier:
                return self._flush(out, echo, Control("eof", b"\x04", _reencode(text[i:])))
            if c >= " " and c != "\x7f":
                echo.append(self._insert(c))
            else:
                echo.append(self._key({
                    "\x7f": "backspace", "\x08": "backspace", "\x01": "home", "\x05": "end",
                    "\x02": "left", "\x06": "right", "\x04": "delete", "\x0b": "kill-end",
                    "\x15": "kill-start", "\x17": "kill-word-back", "\x19": "yank",
                    "\x14": "transpose", "\x10": "up", "\x0e": "down"}.get(c, "bell")))
        return self._flush(out, echo, None)

    def _flush(self, out: list[Output], echo: list[str], last: Output | None) -> list[Output]:
        shown = "".join(echo)
        if shown:
            out.append(Echo(shown.encode()))
        if last is not None:
            out.append(last)
        return out

    def _insert(self, chars: str) -> str:
        chars = "".join(c for c in chars if c >= " " and c != "\x7f")
        if not chars:
            return ""
        at_end = self.pos == len(self.buf)
        self.buf[self.pos:self.pos] = chars
        self.pos += len(chars)
        if self.secret:
            return ""
        if at_end and self._shown == self.pos - len(chars):
            self._shown = self.pos  # the usual case: just the keys
            wrapped = (self.start_col + self.pos) % self.cols == 0
            return chars + ("\r\n" if wrapped else "")
        return self._render()

    def _key(self, name: str) -> str:
        buf, pos = self.buf, self.pos
        if name == "left":
            self.pos = max(pos - 1, 0)
        elif name == "right":
            self.pos = min(pos + 1, len(buf))
        elif name == "home":
            self.pos = 0
        elif name == "end":
            self.pos = len(buf)
        elif name == "word-left":
            self.pos = _word_start(buf, pos)
        elif name == "word-right":
            self.pos = _word_end(buf, pos)
        elif name == "backspace" and pos:
            del buf[pos - 1]
            self.pos -= 1
        elif name == "delete" and pos < len(buf):
            del buf[pos]
        elif name == "kill-end":
            self._kill = "".join(buf[pos:])
            del buf[pos:]
        elif name == "kill-start":
            self._kill = "".join(buf[:pos])
            del buf[:pos]
            self.pos = 0
        elif name == "kill-word-back":
            start = _word_start(buf, pos)
            self._kill = "".join(buf[start:pos])
            del buf[start:pos]
            self.pos = start
        elif name == "kill-word":
            end = _word_end(buf, pos)
            self._kill = "".join(buf[pos:end])
            del buf[pos:end]
        elif name == "yank":
            return self._insert(self._kill)
        elif name == "transpose" and 0 < pos:
            at = min(pos, len(buf) - 1)
            if at > 0:
                buf[at - 1], buf[at] = buf[at], buf[at - 1]
                self.pos = at + 1
        elif name in ("up", "down"):
            return self._browse(-1 if name == "up" else 1)
        elif name == "ignore":
            return ""
        if name in ("left", "right", "home", "end", "word-left", "word-right"):
            if self.secret:
                return ""
            out = self._move(self._shown, self.pos)  # the text is as drawn: just move
            self._shown = self.pos
            return out
        elif name == "bell" or name not in _EDITS:
            return "\x07"
        return self._render() if not self.secret else ""

    def _browse(self, step: int) -> str:
        index = self._hist + step
        if not 0 <= index <= len(self.history):
            return "\x07"
        if self._hist == len(self.history):
            self._draft = "".join(self.buf)
        self._hist = index
        self.buf = list(self.history[index] if index < len(self.history) else self._draft)
        self.pos = len(self.buf)
        return self._render() if not self.secret else ""

    # --- drawing ----------------------------------------------------------------------

    def _place(self, index: int) -> tuple[int, int]:
        return divmod(self.start_col + index, self.cols)

    def _move(self, src: int, dst: int) -> str:
        (r1, c1), (r2, c2) = self._place(src), self._place(dst)
        out = ""
        if r2 < r1:
            out += f"\x1b[{r1 - r2}A"
        elif r2 > r1:
            out += f"\x1b[{r2 - r1}B"
        if c2 != c1 or r2 != r1:
            out += "\r" + (f"\x1b[{c2}C" if c2 else "")
        return out

    def _render(self) -> str:
        """Redraw from the line's start: the text, clear what is left of the old one, and put
        the cursor back."""
        if self.secret:
            return ""
        out = self._move(self._shown, 0) + "".join(self.buf)
        end = len(self.buf)
        if end and (self.start_col + end) % self.cols == 0:
            out += "\r\n"  # at the margin the terminal waits to wrap: make it
        out += "\x1b[J" + self._move(end, self.pos)
        self._shown = self.pos
        return out


_EDITS = frozenset({"left", "right", "home", "end", "word-left", "word-right", "backspace",
                    "delete", "kill-end", "kill-start", "kill-word-back", "kill-word", "yank",
                    "transpose", "up", "down"})


def _escape(text: str, i: int) -> tuple[str, int]:
    """The key an escape sequence at ``text[i]`` stands for, and its length (0: cut short)."""
    if i + 1 >= len(text):
        return "", 0
    c = text[i + 1]
    if c in "[O":
        j = i + 2
        while j < len(text) and not ("@" <= text[j] <= "~"):
            j += 1
        if j >= len(text):
            return "", 0 if j - i < 16 else j - i
        body = text[i + 2:j + 1]
        if body == "200~":
            return "paste", j + 1 - i
        return _MOTIONS.get(body, "ignore"), j + 1 - i
    meta = {"b": "word-left", "f": "word-right", "d": "kill-word", "\x7f": "kill-word-back",
            "\x08": "kill-word-back"}
    return meta.get(c, "ignore"), 2


def _word_start(buf: list[str], pos: int) -> int:
    while pos > 0 and buf[pos - 1] not in _WORD:
        pos -= 1
    while pos > 0 and buf[pos - 1] in _WORD:
        pos -= 1
    return pos


def _word_end(buf: list[str], pos: int) -> int:
    while pos < len(buf) and buf[pos] not in _WORD:
        pos += 1
    while pos < len(buf) and buf[pos] in _WORD:
        pos += 1
    return pos


def _reencode(text: str) -> bytes:
    return text.encode(errors="surrogateescape")
