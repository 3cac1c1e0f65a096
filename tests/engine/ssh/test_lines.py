"""``LineWatcher`` and ``find_enter``: what a shell is about to run, read off a pyte screen.

Each test is a conversation without sockets: ``output`` is what the target's shell wrote (its
prompt, the echo of the keys, the edits as bash draws them), ``typed`` is the user pressing keys
and ``line`` is the moment Enter arrives. The cases that show bugs are in
``test_bridge_review.py``.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.ssh.lines import ENTER_KEYS, LineWatcher, find_enter

FUZZ = settings(database=None, deadline=None, max_examples=300)

PROMPT = b"user@host:~$ "


def prompt_then(echo: bytes, *, cols: int = 80, rows: int = 24,
                before: bytes = b"") -> LineWatcher:
    """A watcher that saw ``before`` and a prompt, then the user typed and the shell echoed."""
    watcher = LineWatcher(cols, rows)
    watcher.output(before + PROMPT)
    watcher.typed()
    watcher.output(echo)
    return watcher


# --- find_enter ------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "index"), [
    (b"ls -l\r", 5),
    (b"ls -l\n", 5),  # Ctrl-J
    (b"ls -l\x0f", 5),  # Ctrl-O: readline's operate-and-get-next
    (b"\r", 0),
    (b"ls -l", -1),
    (b"", -1),
    (b"a\x0fb\rc\n", 1),  # the first of several
    (b"ab\nc\r", 2),
    (b"\x1b[A\x1b[D", -1),  # arrows are not Enter
])
def test_find_enter(data: bytes, index: int) -> None:
    assert find_enter(data) == index


def test_enter_keys_are_cr_ctrl_j_and_ctrl_o() -> None:
    assert set(ENTER_KEYS) == {b"\r", b"\n", b"\x0f"}


# --- reading the line ------------------------------------------------------------------------


def test_typed_command_is_read_without_the_prompt() -> None:
    assert prompt_then(b"ls -la /tmp").line().text == "ls -la /tmp"


def test_prompt_is_taken_at_the_first_key_not_at_later_ones() -> None:
    watcher = LineWatcher(80, 24)
    watcher.output(PROMPT)
    watcher.typed()
    watcher.output(b"e")  # the echo of the first key
    watcher.typed()  # a later key: the prompt stays "user@host:~$ ", not "user@host:~$ e"
    watcher.output(b"cho hi")
    assert watcher.line().text == "echo hi"


def test_keys_sent_in_pieces_with_their_echo_in_between() -> None:
    watcher = LineWatcher(80, 24)
    watcher.output(PROMPT)
    for key in b"uname -a":
        watcher.typed()
        watcher.output(bytes([key]))
    assert watcher.line().text == "uname -a"


@pytest.mark.parametrize("rubout", [b"\b \b", b"\x08\x1b[K"], ids=["bs-space-bs", "bs-el"])
def test_backspaces_as_bash_echoes_them(rubout: bytes) -> None:
    # keys: "echo forbiddX" DEL "en-word"
    watcher = prompt_then(b"echo forbiddX" + rubout + b"en-word")
    assert watcher.line().text == "echo forbidden-word"


def test_rubbing_out_several_characters() -> None:
    watcher = prompt_then(b"rm -rf /tmp/x" + b"\b \b" * 6 + b"/var/tmp/x")
    assert watcher.line().text == "rm -rf /var/tmp/x"


def test_cursor_left_then_insert_redraws_the_rest_of_the_line() -> None:
    # keys: "echo helo", Left, "l": readline moves back, then writes "lo" and steps back over
    # the "o" again
    watcher = prompt_then(b"echo helo" + b"\x1b[D" + b"lo\b")
    assert watcher.screen.cursor.x == len(PROMPT) + len("echo hell")  # on the "o"
    assert watcher.line().text == "echo hello"


def test_cursor_left_then_insert_with_insert_character() -> None:
    # the same, drawn with ICH (CSI @): open a gap, write into it
    watcher = prompt_then(b"echo wrld" + b"\x1b[D" * 3 + b"\x1b[@o")
    assert watcher.line().text == "echo world"


def test_cursor_home_then_insert_at_the_start() -> None:
    # keys: "ls /", Home, "sudo ": readline goes back with backspaces and redraws the whole line
    watcher = prompt_then(b"ls /" + b"\b" * 4 + b"sudo ls /" + b"\b" * 4)
    assert watcher.line().text == "sudo ls /"


def test_a_command_that_wraps_over_two_rows_of_a_narrow_screen() -> None:
    watcher = LineWatcher(20, 5)
    watcher.output(b"gw$ ")
    watcher.typed()
    watcher.output(b"echo 0123456789abcdefghijkl")
    assert watcher.screen.display[:2] == ["gw$ echo 0123456789a", "bcdefghijkl         "]
    assert watcher.line().text == "echo 0123456789abcdefghijkl"


def test_a_command_that_ends_exactly_at_the_margin() -> None:
    # With automatic margins readline writes " \r" to move to the next row itself.
    watcher = LineWatcher(20, 5)
    watcher.output(b"gw$ ")
    watcher.typed()
    watcher.output(b"echo 01234567890" + b" \r")
    assert watcher.screen.cursor.y == 1
    assert watcher.line().text == "echo 01234567890"


def test_a_command_over_three_rows() -> None:
    command = b"printf '%s\\n' " + b"x" * 30
    watcher = LineWatcher(20, 10)
    watcher.output(b"gw$ ")
    watcher.typed()
    watcher.output(command)
    assert watcher.screen.cursor.y == 2
    assert watcher.line().text == command.decode()


def test_a_screen_that_scrolled_before_the_prompt() -> None:
    output = b"".join(b"line %d\r\n" % i for i in range(40))
    watcher = prompt_then(b"ls -l", cols=20, rows=5, before=output)
    assert watcher.screen.cursor.y == 4  # the prompt is on the bottom row
    assert watcher.screen.display[3] == "line 39             "
    assert watcher.line().text == "ls -l"


def test_commands_one_after_another_while_the_screen_scrolls() -> None:
    watcher = LineWatcher(30, 4)
    watcher.output(b"gw$ ")
    for i in range(10):
        watcher.typed()
        watcher.output(b"echo %d" % i)
        assert watcher.line().text == f"echo {i}"
        watcher.output(b"\r\n%d\r\ngw$ " % i)  # the Enter's echo, the output, the next prompt
    assert watcher.screen.cursor.y == 3


def test_a_prompt_in_colour() -> None:
    coloured = (b"\x1b[01;32muser@host\x1b[00m:\x1b[01;34m~/src\x1b[00m\x1b[1m$\x1b[0m ")
    watcher = LineWatcher(80, 24)
    watcher.output(b"previous output\r\n" + coloured)
    watcher.typed()
    watcher.output(b"git status")
    assert watcher.line().text == "git status"


def test_a_prompt_with_a_window_title_and_a_bell() -> None:
    watcher = LineWatcher(80, 24)
    watcher.output(b"\x1b]0;user@host: ~\x07user@host:~$ ")
    watcher.typed()
    watcher.output(b"id")
    assert watcher.line().text == "id"


def test_a_two_line_prompt() -> None:
    watcher = LineWatcher(80, 24)
    watcher.output(b"[user@host ~/src (main)]\r\n$ ")
    watcher.typed()
    watcher.output(b"make test")
    assert watcher.line().text == "make test"


def test_the_line_is_read_afresh_after_each_enter() -> None:
    watcher = prompt_then(b"echo one")
    assert watcher.line().text == "echo one"
    watcher.output(b"\r\none\r\n" + PROMPT)
    watcher.typed()
    watcher.output(b"echo two")
    assert watcher.line().text == "echo two"


def test_a_line_recalled_from_history() -> None:
    # keys: Up; readline draws the previous command after the prompt
    watcher = prompt_then(b"cat /etc/hostname")
    assert watcher.line().text == "cat /etc/hostname"


def test_a_line_without_a_prompt() -> None:
    # a program reading a line after its own output ended with a newline (cat, read)
    watcher = LineWatcher(80, 24)
    watcher.output(b"type something:\r\n")
    watcher.typed()
    watcher.output(b"hello there")
    assert watcher.line().text == "hello there"


def test_an_empty_line_on_an_empty_row() -> None:
    watcher = LineWatcher(80, 24)
    watcher.output(b"some output\r\n")
    assert watcher.line().text == ""
    watcher.typed()
    assert watcher.line().text == ""


def test_wide_characters_and_utf8() -> None:
    watcher = prompt_then("echo héllo 日本".encode())
    assert watcher.line().text == "echo héllo 日本"


# --- full screen and size --------------------------------------------------------------------


@pytest.mark.parametrize("mode", [1049, 1047, 47])
def test_the_alternate_screen_is_full_screen(mode: int) -> None:
    watcher = LineWatcher(80, 24)
    assert not watcher.full_screen
    watcher.output(b"\x1b[?%dh" % mode)
    assert watcher.full_screen
    watcher.output(b"\x1b[?%dl" % mode)
    assert not watcher.full_screen


def test_vim_like_session_enters_and_leaves_full_screen() -> None:
    watcher = prompt_then(b"vim notes.txt")
    assert watcher.line().text == "vim notes.txt"
    watcher.output(b"\r\n\x1b[?1049h\x1b[22;0;0t\x1b[?1h\x1b=\x1b[H\x1b[2J~\r\n~\r\n")
    assert watcher.full_screen
    watcher.output(b"\x1b[?1l\x1b>\x1b[?1049l\x1b[23;0;0t" + PROMPT)
    assert not watcher.full_screen
    watcher.typed()
    watcher.output(b"ls")
    assert watcher.line().text == "ls"


def test_other_private_modes_are_not_full_screen() -> None:
    watcher = LineWatcher(80, 24)
    watcher.output(b"\x1b[?25l\x1b[?2004h\x1b[?1h")  # hide cursor, bracketed paste, app keys
    assert not watcher.full_screen


def test_resize_changes_the_screen() -> None:
    watcher = LineWatcher(80, 24)
    watcher.resize(100, 30)
    assert (watcher.screen.columns, watcher.screen.lines) == (100, 30)
    watcher.resize(20, 5)
    assert (watcher.screen.columns, watcher.screen.lines) == (20, 5)


def test_resize_to_zero_keeps_a_one_cell_screen() -> None:
    watcher = LineWatcher(0, 0)
    assert (watcher.screen.columns, watcher.screen.lines) == (1, 1)
    watcher.resize(0, 0)
    assert (watcher.screen.columns, watcher.screen.lines) == (1, 1)
    watcher.output(b"gw$ ls\r\n")
    assert isinstance(watcher.line().text, str)


def test_resize_is_bounded() -> None:
    watcher = LineWatcher(80, 24)
    watcher.resize(10**6, 10**6)  # a client's window-change is not trusted with memory
    assert watcher.screen.columns <= 1000 and watcher.screen.lines <= 500


def test_output_after_a_hostile_escape_is_still_read() -> None:
    watcher = LineWatcher(80, 24)
    watcher.output(b"\x1b[" + b"9" * 5000 + b"m")
    watcher.output(b"gw$ ")
    watcher.typed()
    watcher.output(b"id")
    assert watcher.line().text == "id"


def test_a_wider_screen_after_resize_keeps_a_long_command_on_one_row() -> None:
    watcher = LineWatcher(20, 5)
    watcher.resize(80, 5)
    watcher.output(b"gw$ ")
    watcher.typed()
    watcher.output(b"echo 0123456789abcdefghijkl")
    assert watcher.screen.cursor.y == 0
    assert watcher.line().text == "echo 0123456789abcdefghijkl"


def test_resize_while_a_line_is_typed() -> None:
    watcher = prompt_then(b"df -h")
    watcher.resize(120, 40)
    watcher.output(b" /")
    assert watcher.line().text == "df -h /"


# --- the screen cleared or redrawn under the line (Ctrl-L) ------------------------------------

CLEAR = b"\x1b[H\x1b[2J"  # what bash writes for Ctrl-L before it draws the prompt again


def test_a_line_typed_after_ctrl_l_is_read_without_the_prompt() -> None:
    # Ctrl-L is the first key: the prompt is taken on row 3, then drawn again on row 0
    watcher = prompt_then(b"", before=b"a\r\nb\r\nc\r\n")
    watcher.output(CLEAR + PROMPT)
    watcher.typed()
    watcher.output(b"ls -l")
    line = watcher.line()
    assert line.text == "ls -l"
    assert "user@host:~$ ls -l" in line.readings  # where it begins is a guess: both judged


def test_ctrl_l_in_the_middle_of_a_line() -> None:
    watcher = prompt_then(b"echo x", before=b"a\r\nb\r\n")
    watcher.output(CLEAR + PROMPT + b"echo x")  # readline draws the prompt and the line again
    watcher.typed()
    watcher.output(b"y")
    assert watcher.line().text == "echo xy"


def test_a_line_that_wraps_after_ctrl_l_is_read_from_its_first_row() -> None:
    watcher = LineWatcher(20, 10)
    watcher.output(b"a\r\nb\r\ngw$ ")
    watcher.typed()
    watcher.output(CLEAR + b"gw$ " + b"echo 0123456789abcdefghijkl")
    assert watcher.screen.cursor.y == 1
    assert watcher.line().text == "echo 0123456789abcdefghijkl"


def test_a_prompt_drawn_inside_a_command_after_ctrl_l_does_not_hide_its_start() -> None:
    watcher = LineWatcher(20, 10)
    watcher.output(b"a\r\nb\r\ngw$ ")
    watcher.typed()
    # the second row of the command begins with the prompt's text
    watcher.output(CLEAR + b"gw$ " + b"rm -rf /etc;: xx" + b"gw$ ls")
    assert watcher.screen.display[1].startswith("gw$ ls")
    line = watcher.line()
    assert "rm -rf /etc;: xxgw$ ls" in line.readings


# --- fuzz ------------------------------------------------------------------------------------


@FUZZ
@given(st.lists(st.binary(max_size=200), max_size=20))
@example([b"\x1b[" + b"9" * 5000 + b"m", b"gw$ ls"])  # int() of 5000 digits raises
@example([b"\x1b[?" + b"1;" * 3000 + b"h"])
@example([b"\x1b[" + b"9" * 40, b"9" * 40 + b"H"])  # a long parameter split between reads
def test_arbitrary_output_never_raises(chunks: list[bytes]) -> None:
    watcher = LineWatcher(20, 5)
    for chunk in chunks:
        watcher.output(chunk)
    assert isinstance(watcher.full_screen, bool)
    assert "\n" not in watcher.line().text


_ESCAPE_HEAVY = st.lists(st.sampled_from([
    b"\x1b[", b"\x1b]", b"\x1b[?1049h", b"\x1b[?1049l", b"\x1b[2J", b"\x1b[H", b"\x1b[K",
    b"\x1b[D", b"\x1b[@", b"\x1b[10;200r", b"\x1b[999;999H", b"\x1b[?3h", b"\x1b#8", b"\x1bc",
    b"\x1b[1000L", b"\x1b[1000M", b"\x1b[1000P", b"\x08", b"\r", b"\n", b"\t", b"\x07",
    b"\x00", b"\xff", b"\xc3", b"x", b";", b"9", b"\x9b", b"\x1b(0", b"\x0e", b"\x0f",
]), max_size=60).map(b"".join)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["output", "typed", "line", "resize"]),
                          _ESCAPE_HEAVY | st.binary(max_size=64),
                          st.integers(0, 300), st.integers(0, 100)), max_size=25))
def test_any_conversation_never_raises(steps: list[tuple[str, bytes, int, int]]) -> None:
    # The screen only grows here: shrinking it below the cursor's row makes typed() and
    # line() raise (a bug, see test_bridge_review.py), which this fuzz found.
    watcher = LineWatcher(20, 5)
    for action, data, cols, rows in steps:
        if action == "output":
            watcher.output(data)
        elif action == "typed":
            watcher.typed()
        elif action == "resize":
            watcher.resize(max(cols, watcher.screen.columns), max(rows, watcher.screen.lines))
        else:
            assert "\n" not in watcher.line().text
        assert find_enter(data) in range(-1, len(data))
