"""What an interactive shell is about to run when the user presses Enter.

Keystrokes alone cannot say it (editing keys, history, tab completion, a paste), so the output
stream is fed into a terminal emulator (pyte) and, at Enter, the line is read off the screen as
the shell displays it. The prompt is whatever stood before the cursor when the user began to
type. Honest limits: a full-screen program (the alternate screen: vim, less, top) is not judged;
input that a program reads without echo is invisible (and so is not recorded — on purpose, for
passwords); readline's edit-and-execute (Ctrl-X Ctrl-E) runs what an editor wrote.
"""

from __future__ import annotations

from engine.ssh.emulator import Emulator

ENTER_KEYS = (b"\r", b"\n", b"\x0f")  # Enter, Ctrl-J and readline's operate-and-get-next
_ALT_SCREENS = {mode << 5 for mode in (47, 1047, 1049)}


def find_enter(data: bytes) -> int:
    """Index of the first key in ``data`` that makes a shell run its line, or -1."""
    found = [i for i in (data.find(k) for k in ENTER_KEYS) if i >= 0]
    return min(found) if found else -1


class LineWatcher:
    def __init__(self, cols: int, rows: int) -> None:
        self._emulator = Emulator(cols, rows)
        self.screen = self._emulator.screen
        self._prompt: tuple[int, str] | None = None  # (row, text before the cursor)
        self._output_since_typing = True

    def output(self, data: bytes) -> None:
        self._emulator.feed(data)
        self._output_since_typing = True

    def resize(self, cols: int, rows: int) -> None:
        self._emulator.resize(cols, rows)

    def typed(self) -> None:
        """The user sends keys: the first keys after output start a new line to read."""
        if self._output_since_typing and self._prompt is None:
            cursor = self.screen.cursor
            self._prompt = (cursor.y, self.screen.display[cursor.y][: cursor.x])
        self._output_since_typing = False

    @property
    def full_screen(self) -> bool:
        return bool(self.screen.mode & _ALT_SCREENS)

    def line(self) -> str:
        """The command line on screen now (prompt removed), and start afresh."""
        display = self.screen.display
        y = self.screen.cursor.y
        row, prompt = self._prompt if self._prompt is not None else (y, "")
        self._prompt = None
        self._output_since_typing = True
        if row > y:
            row, prompt = y, ""  # the screen scrolled or was cleared since
        text = "".join(display[r].rstrip() if r == y else display[r]
                       for r in range(row, y + 1))
        if prompt and text.startswith(prompt):
            text = text[len(prompt):]
        return text.strip()
