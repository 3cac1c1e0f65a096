"""``LineEditor``: keys in, the line and its echo out — the gateway's own line in strict mode.

The echo is checked by playing it on a terminal emulator (what the user would see), not by
comparing escape sequences.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.ssh.editor import Control, Echo, LineEditor, Submit
from recordings.emulator import Emulator

FUZZ = settings(database=None, deadline=None, max_examples=200)


def edit(keys: bytes, history: list[str] | None = None, col: int = 4,
         cols: int = 80) -> tuple[LineEditor, list[object]]:
    editor = LineEditor(history)
    editor.start(col, cols)
    return editor, list(editor.feed(keys))


def submitted(keys: bytes, history: list[str] | None = None) -> str:
    _, outs = edit(keys, history)
    last = outs[-1]
    assert isinstance(last, Submit), outs
    return last.text


@pytest.mark.parametrize(("keys", "line"), [
    (b"echo hi\r", "echo hi"),
    (b"echo hX\x7fi\r", "echo hi"),  # backspace
    (b"echo hX\x08i\r", "echo hi"),  # Ctrl-H
    (b"cho hi\x01e\r", "echo hi"),  # Ctrl-A, insert at the start
    (b"echo i\x1b[Dh\r", "echo hi"),  # ←
    (b"echo i\x1bOD\x1bOCx\r", "echo ix"),  # application-mode arrows
    (b"xecho hi\x01\x1b[3~\r", "echo hi"),  # Home, Delete
    (b"xecho hi\x01\x04\r", "echo hi"),  # Ctrl-D deletes under the cursor
    (b"echo hi there\x17\x17\r", "echo "),  # Ctrl-W twice
    (b"echo hi\x15ls\r", "ls"),  # Ctrl-U
    (b"echo hi there\x01\x1bf\x0b\r", "echo"),  # Alt-F, Ctrl-K
    (b"echo hi there\x1bb\x1bd\r", "echo hi "),  # Alt-B, Alt-D
    (b"a b\x17\x19\x19\r", "a bb"),  # Ctrl-W then Ctrl-Y twice
    (b"ab\x14\r", "ba"),  # Ctrl-T
    (b"echo\x1b[H\x1b[F!\r", "echo!"),  # Home, End
    (b"ls\x1b[1;5D\x1b[1;5Cx\r", "lsx"),  # Ctrl-←, Ctrl-→
    (b"ls\tx\r", "lsx"),  # Tab: nothing to complete with
    (b"echo \x1b[200~a b\x1b[201~ c\r", "echo a b c"),  # bracketed paste
    ("echo é€\r".encode(), "echo é€"),
    (b"echo\x1b[99~x\r", "echox"),  # an unknown key does nothing
])
def test_keys_edit_the_line(keys: bytes, line: str) -> None:
    assert submitted(keys) == line


def test_keys_after_enter_are_handed_back() -> None:
    _, outs = edit(b"ls\r\nnext\r")
    assert outs[-1] == Submit("ls", b"next\r")


def test_a_pasted_newline_is_an_enter_and_the_paste_goes_on() -> None:
    editor, outs = edit(b"\x1b[200~echo a\necho b\x1b[201~")
    last = outs[-1]
    assert isinstance(last, Submit) and last.text == "echo a"
    editor.start(4, 80)
    again = editor.feed(last.rest + b"\r")
    assert isinstance(again[-1], Submit) and again[-1].text == "echo b"


def test_an_escape_cut_in_two_waits_for_its_end() -> None:
    editor = LineEditor()
    editor.start(0, 80)
    editor.feed(b"ab\x1b[")
    assert editor.feed(b"D") == [Echo(b"\r\x1b[1C")]
    assert isinstance(editor.feed(b"x\r")[-1], Submit)
    assert editor.text() == "axb"


@pytest.mark.parametrize(("key", "name"), [(b"\x03", "interrupt"), (b"\x1a", "suspend"),
                                           (b"\x1c", "quit"), (b"\x0c", "clear")])
def test_control_keys_are_the_gateway_s(key: bytes, name: str) -> None:
    _, outs = edit(b"sleep 9" + key + b"rest")
    assert outs[-1] == Control(name, key, b"rest")


def test_ctrl_d_on_an_empty_line_is_end_of_input() -> None:
    _, outs = edit(b"\x04")
    assert outs == [Control("eof", b"\x04", b"")]


def test_up_and_down_walk_this_session_s_lines_and_keep_the_draft() -> None:
    history = ["ls", "pwd"]
    assert submitted(b"\x1b[A\r", history) == "pwd"
    assert submitted(b"\x1b[A\x1b[A\r", history) == "ls"
    assert submitted(b"\x10\x10\x0e\r", history) == "pwd"  # Ctrl-P, Ctrl-P, Ctrl-N
    assert submitted(b"dra\x1b[A\x1b[Bft\r", history) == "draft"
    editor, _ = edit(b"")
    editor.remember("echo one")
    editor.remember("echo one")
    editor.remember("a\nb")  # a command over several lines is not offered again
    assert editor.history == ["echo one"]


def test_a_secret_line_is_not_echoed() -> None:
    editor = LineEditor()
    editor.start(10, 80, secret=True)
    outs = editor.feed(b"hunter2\x7f2\r")
    assert outs == [Submit("hunter2", b"")]


def test_a_continued_command_is_one_text() -> None:
    editor, _ = edit(b"echo 'a")
    editor.continue_line()
    outs = editor.feed(b"b'\r")
    assert isinstance(outs[-1], Submit) and outs[-1].text == "echo 'a\nb'"


def screen_after(prompt: bytes, editor: LineEditor, keys: bytes,
                 cols: int = 20) -> tuple[str, int]:
    """What the user sees: the prompt, then the editor's echo, on a terminal."""
    emulator = Emulator(cols, 6)
    emulator.feed(prompt)
    editor.start(emulator.screen.cursor.x, cols)
    for out in editor.feed(keys):
        if isinstance(out, Echo):
            emulator.feed(out.data)
    text = "".join(emulator.screen.display).replace(" ", "")
    return text, emulator.screen.cursor.x + emulator.screen.cursor.y * cols


@given(st.lists(st.sampled_from([b"a", b"b", b" ", b"\x7f", b"\x01", b"\x05", b"\x02",
                                 b"\x06", b"\x0b", b"\x15", b"\x17", b"\x19", b"\x14",
                                 b"\x1b[D", b"\x1b[C", b"\x1b[3~", b"\x1bb", b"\x1bf"]),
                max_size=60))
@FUZZ
def test_the_echo_shows_the_line_and_the_cursor_where_it_is(keys: list[bytes]) -> None:
    """Whatever is typed, the screen shows exactly the line, wrapped at the margin, with the
    cursor on the character being edited."""
    editor = LineEditor()
    shown, cursor = screen_after(b"$ ", editor, b"".join(keys))
    assert shown == "$" + "".join(editor.buf).replace(" ", "")
    assert cursor == 2 + editor.pos


@given(st.text(alphabet="abc '\"", max_size=50))
@FUZZ
def test_erasing_leaves_only_the_prompt(text: str) -> None:
    editor = LineEditor()
    emulator = Emulator(20, 6)
    emulator.feed(b"$ ")
    editor.start(2, 20)
    for out in editor.feed(text.encode()):
        if isinstance(out, Echo):
            emulator.feed(out.data)
    emulator.feed(editor.finish().data)
    emulator.feed(editor.erase().data)
    assert "".join(emulator.screen.display).strip() == "$"
    assert (emulator.screen.cursor.x, emulator.screen.cursor.y) == (2, 0)
