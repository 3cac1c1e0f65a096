"""What an interactive shell is about to run when the user presses Enter.

Keystrokes alone cannot say it (editing keys, history, tab completion, a paste), so the output
stream is fed into a terminal emulator (pyte) and, at Enter, the line is read off the screen as
the shell displays it. The prompt is whatever stood before the cursor when the user began to
type; the row it was on is followed as the screen scrolls. When the screen was cleared or
redrawn since (Ctrl-L: bash draws the prompt and the line again on the top row), the line
begins at the nearest row at or above the cursor that begins with that prompt, and is also
read from the top of the screen. When the prompt cannot be found again, the line is also read
from after each usual prompt ending (``$ ``, ``# ``, ``> ``, ``% ``); the strictest verdict
of all those readings applies, and the first is the one recorded.

Honest limits: input that a program reads without echo is invisible (and so is not recorded —
on purpose, for passwords); lines typed inside full-screen programs (the alternate screen: vim,
less) are judged like shell lines but what PostgreSQL's or Python's REPL does with a line is
not shell; readline's edit-and-execute (Ctrl-X Ctrl-E) runs what an editor wrote.

``continues`` and ``spelled`` read a line the other ways the gate needs: whether the shell waits
for more of it (a backslash at its end), and what keys spell when the screen shows nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.guardrail.shellwords import ShellParseError, SimpleCommand, parse, pipelines
from recordings.emulator import Emulator

ENTER_KEYS = (b"\r", b"\n", b"\x0f")  # Enter, Ctrl-J and readline's operate-and-get-next
_ALT_SCREENS = {mode << 5 for mode in (47, 1047, 1049)}
_PROMPT_ENDINGS = ("$ ", "# ", "> ", "% ")
BRACKETED_PASTE = 2004 << 5  # pyte keeps private modes shifted
MODE_EVENTS_MAX = 64  # screen-mode changes kept while a full-screen program may run
_AT_ESCAPE = re.compile(rb"(?=\x1b)")


def find_enter(data: bytes) -> int:
    """Index of the first key in ``data`` that makes a shell run its line, or -1."""
    found = [i for i in (data.find(k) for k in ENTER_KEYS) if i >= 0]
    return min(found) if found else -1


@dataclass(frozen=True)
class Line:
    text: str  # the command as read after the prompt
    readings: tuple[str, ...]  # every plausible reading, ``text`` first
    incomplete: bool = False  # its start scrolled off the top of the screen


class LineWatcher:
    def __init__(self, cols: int, rows: int) -> None:
        self._emulator = Emulator(cols, rows)
        self.screen = self._emulator.screen
        self._prompt: tuple[int, str, int] | None = None  # row, text before the cursor, scrolls
        self._output_since_typing = True
        # While ``events`` is a list, each change of the alternate screen ("alt+", "alt-")
        # and each time the target turns bracketed paste on ("paste+": readline starting to
        # read a line) is appended, in order, even when several come in one chunk of output
        # (a program leaving the alternate screen and a prompt turning it on again).
        self.events: list[str] | None = None
        self._alt = False
        self._paste = False

    def output(self, data: bytes) -> None:
        if self.events is None or b"\x1b" not in data:
            self._emulator.feed(data)
            self._observe()
        else:  # cut before each escape: no change of mode hides behind a later one
            for piece in _AT_ESCAPE.split(data):
                if piece:
                    self._emulator.feed(piece)
                    self._observe()
        self._output_since_typing = True

    def watch_modes(self) -> None:
        """Start a fresh list of mode changes (a full-screen program is about to start)."""
        self.events = []

    def _observe(self) -> None:
        alt, paste = self.full_screen, self.bracketed_paste
        if self.events is not None and len(self.events) < MODE_EVENTS_MAX:  # full: over
            if alt != self._alt:
                self.events.append("alt+" if alt else "alt-")
            if paste and not self._paste:
                self.events.append("paste+")
        self._alt, self._paste = alt, paste

    @property
    def bracketed_paste(self) -> bool:
        """The target asked for pasted text to be marked (readline reading a line, 8.1+)."""
        return BRACKETED_PASTE in self.screen.mode

    def resize(self, cols: int, rows: int) -> None:
        self._emulator.resize(cols, rows)

    def _cursor_row(self) -> int:
        return min(max(self.screen.cursor.y, 0), self.screen.lines - 1)

    def typed(self) -> None:
        """The user sends keys: the first keys after output start a new line to read."""
        if self._output_since_typing and self._prompt is None:
            y = self._cursor_row()
            x = min(self.screen.cursor.x, self.screen.columns)
            self._prompt = (y, self.screen.display[y][:x], self.screen.scrolled)
        self._output_since_typing = False

    def forget_prompt(self) -> None:
        """The line was abandoned (Ctrl-C): the next keys start a new one under a new prompt."""
        self._prompt = None
        self._output_since_typing = True

    @property
    def full_screen(self) -> bool:
        return bool(self.screen.mode & _ALT_SCREENS)

    def line(self) -> Line:
        """The command line on screen now, and start afresh."""
        display = self.screen.display
        y = self._cursor_row()
        known = self._prompt is not None
        row, prompt, scrolls = self._prompt if self._prompt is not None else (y, "", 0)
        self._prompt = None
        self._output_since_typing = True
        row -= self.screen.scrolled - scrolls
        incomplete = row < 0 and known
        lost = prompt
        redrawn = False
        if not incomplete and not (row <= y and display[max(row, 0)].startswith(prompt)):
            # The screen was cleared or redrawn since the first key (Ctrl-L, a program
            # repainting): the shell draws the same prompt again, nearest above the cursor.
            found = self._find_prompt(prompt, y)
            redrawn = found is not None
            row = found if found is not None else min(row, y)
        if row > y or row < 0:
            row, prompt = max(min(row, y), 0), ""  # scrolled away, or redrawn out of sight
        text = self._text(row, y)
        readings = []
        bare = prompt.rstrip()
        if prompt and text.startswith(bare):
            readings.append(text[len(bare):].strip())
        if redrawn or not readings:
            # Where the line begins is a guess: every other reading is judged too, from the
            # top of the screen, so a prompt drawn inside a command does not hide its start.
            whole = self._text(0, y) if redrawn else text
            readings.append(whole.strip())
            if lost.strip() and lost.strip() in whole:  # the prompt, elsewhere on the row
                readings.append(whole[whole.find(lost.strip()) + len(lost.strip()):].strip())
            for ending in _PROMPT_ENDINGS:
                at = whole.find(ending)
                while at >= 0:
                    readings.append(whole[at + len(ending):].strip())
                    at = whole.find(ending, at + 1)
        unique = tuple(dict.fromkeys(r for r in readings))
        return Line(unique[0], unique, incomplete)

    def _text(self, first: int, last: int) -> str:
        """Rows ``first`` to ``last`` as one line (a command wraps from row to row)."""
        display = self.screen.display
        return "".join(display[r] if r < last else display[r].rstrip()
                       for r in range(first, last + 1))

    def _find_prompt(self, prompt: str, y: int) -> int | None:
        """The nearest row at or above the cursor that begins with ``prompt``."""
        if not prompt.strip():
            return None
        display = self.screen.display
        return next((r for r in range(y, -1, -1) if display[r].startswith(prompt)), None)


def continues(text: str) -> bool:
    """A line ending in an unescaped backslash continues on the next one, unless that
    backslash is in a comment."""
    if (len(text) - len(text.rstrip("\\"))) % 2 == 0:
        return False
    quote, escaped, previous = "", False, " "
    for char in text[:-1]:
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and previous in " \t;&|()":
            return False  # a comment runs to the end of the line
        previous = char
    return True


def spelled(keys: bytes) -> str:
    """What keys typed at a line editor spell, roughly: printable text with backspaces and
    Ctrl-U applied (escape sequences dropped). For a line the screen does not show."""
    out: list[str] = []
    text = keys.decode(errors="replace")
    i = 0
    while i < len(text):
        char = text[i]
        if char in "\x7f\b":
            if out:
                out.pop()
        elif char == "\x15":
            out.clear()
        elif char == "\x1b":  # skip an escape sequence
            i += 1
            if i < len(text) and text[i] in "[O":
                i += 1
                while i < len(text) and not ("@" <= text[i] <= "~"):
                    i += 1
        elif char >= " ":
            out.append(char)
        i += 1
    return "".join(out)


def shell_reading(line: str) -> str | None:
    """``line``'s words as the shell reads them — quotes and backslashes removed, ``$'…'``
    decoded, here-documents' bodies and substitutions' commands included — joined by spaces,
    its commands by ``; `` (None: it does not parse). For the record (``SshSession``): a value
    written in quoted pieces is whole here, where the detectors see it."""
    try:
        script = parse(line)
    except ShellParseError:
        return None
    parts: list[str] = []
    for pipeline in pipelines(script):
        for stage in pipeline.stages:
            words: list[str] = []
            if isinstance(stage, SimpleCommand):
                words += [*stage.assignments, *stage.argv]
            words += [r.target for r in stage.redirects]
            if words:
                parts.append(" ".join(words))
    return "; ".join(parts)
