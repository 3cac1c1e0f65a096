"""``InputGate`` as conversations: client keys and target output in, actions out.

No sockets, tasks or clocks: the test plays the bridge. It feeds what the client sent
(``keys``), what the target's shell echoed (``shows``), the wake-ups the gate asked for
(``settle``) and the session's verdicts (``decide``), and reads back what the gate would have
the bridge do. The shell on the other side is imagined: its echo is written out in each test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.guardrail.commands import CDPATH_SET, classify_command
from engine.ssh.gate import (
    CTRL_C,
    ECHO_WAITS,
    LINE_MAX,
    LONGER_THAN_SCREEN,
    QUEUE_MAX,
    QUIET,
    SECRET_LINE,
    TOO_LONG,
    UNSEEN,
    Action,
    ClientData,
    ClientEof,
    Decided,
    EchoToClient,
    Event,
    GatewayOutput,
    InputGate,
    Judge,
    LineSent,
    Mode,
    PauseClient,
    RecordInput,
    Resized,
    ResumeClient,
    SendEof,
    SendToTarget,
    TargetOpened,
    TargetOutput,
    Tell,
    WakeAfter,
    Wakeup,
    for_channel,
)

FUZZ = settings(database=None, deadline=None, max_examples=300)
PROMPT = b"gw$ "
BLOCKED = 'blocked by rule "no-rm": RM RECURSIVE.'


class Conversation:
    """One channel's gate, and the bridge's side of the talk."""

    def __init__(self, gate: InputGate) -> None:
        self.gate = gate

    def __call__(self, *events: Event) -> list[Action]:
        return [action for event in events for action in self.gate.handle(event)]

    def keys(self, data: bytes) -> list[Action]:
        return self(ClientData(data))

    def shows(self, data: bytes) -> list[Action]:
        """The target's shell writes to the terminal (a prompt, an echo)."""
        return self(TargetOutput(data))

    def settle(self) -> list[Action]:
        """Wake the gate each time it asks, until it does something else than ask again."""
        for _ in range(ECHO_WAITS):
            actions = self(Wakeup())
            if actions != [WakeAfter(QUIET)]:
                return actions
        pytest.fail("the gate never stopped waiting")

    def answer(self, output: bytes = b"") -> list[Action]:
        """The shell answers an Enter or a Ctrl-C: its output, then a new prompt."""
        self.shows(b"\r\n" + output + PROMPT)
        return self.settle()

    def typed(self, line: bytes) -> list[Action]:
        """The user types ``line`` and the shell echoes it, then Enter: what the gate does
        once it has read the line off the screen."""
        assert self.keys(line) == [SendToTarget(line)]
        assert self.shows(line) == []
        assert self.keys(b"\r") == [WakeAfter(QUIET)]
        return self.settle()

    def decide(self, allowed: bool, message: str = "") -> list[Action]:
        return self(Decided(allowed, message))


def judge(text: str, *readings: str, lenient: bool = False) -> Judge:
    return Judge(text, readings or (text,), lenient)


def sent(actions: list[Action]) -> bytes:
    return b"".join(a.data for a in actions if isinstance(a, SendToTarget))


@pytest.fixture
def term() -> Conversation:
    """A shell with an 80x24 terminal, its target channel open, its prompt on screen."""
    conv = Conversation(for_channel("shell", None, (80, 24)))
    assert conv(TargetOpened()) == []
    conv.shows(PROMPT)
    return conv


@pytest.fixture
def script() -> Conversation:
    """A shell without a terminal (``ssh -T``, a script piped into ssh)."""
    conv = Conversation(for_channel("shell", None, None))
    assert conv(TargetOpened()) == []
    return conv


def test_the_gate_does_no_io() -> None:
    """Importing it brings in no event loop, SSH library or socket."""
    check = ("import sys, engine.ssh.gate; "
             "print(sorted({'asyncio', 'asyncssh', 'socket'} & set(sys.modules)))")
    root = Path(__file__).resolve().parents[3]
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                         check=True, cwd=root)
    assert run.stdout.strip() == "[]"


# --- which gate a channel gets ---------------------------------------------------------------


@pytest.mark.parametrize(("kind", "command", "size", "mode", "lenient", "record"), [
    ("shell", None, (80, 24), Mode.KEYS, False, False),
    ("shell", None, None, Mode.LINES, False, False),
    ("exec", "bash", None, Mode.LINES, False, False),  # a script piped into `ssh gw bash`
    ("exec", "sudo -i", None, Mode.LINES, False, False),
    ("exec", "bash --norc -i", (80, 24), Mode.KEYS, False, False),
    ("exec", "top", (80, 24), Mode.KEYS, True, False),  # any program given a terminal
    ("exec", "python3 script.py", None, Mode.LINES, False, False),  # may start a shell
    ("exec", "find /tmp -maxdepth 0 -exec sh \\;", None, Mode.LINES, False, False),
    ("exec", "awk 'BEGIN{system(\"sh\")}'", None, Mode.LINES, False, False),
    ("exec", "perl -e 'exec \"/bin/sh\"'", None, Mode.LINES, False, False),
    ("exec", "xargs -I{} sh -c {}", None, Mode.LINES, False, False),
    ("exec", "$SHELL", None, Mode.LINES, False, False),
    ("exec", "./deploy.sh", None, Mode.LINES, False, False),
    ("exec", "cat > /tmp/f", None, Mode.PASS, False, True),  # data, recorded
    ("exec", "scp -t /tmp", None, Mode.PASS, False, True),
    ("subsystem", None, None, Mode.PASS, False, True),
    ("subsystem", None, (80, 24), Mode.PASS, False, False),  # keys at a terminal: unrecorded
])
def test_the_gate_of_a_channel(kind: str, command: str | None, size: tuple[int, int] | None,
                               mode: Mode, lenient: bool, record: bool) -> None:
    gate = for_channel(kind, command, size)
    assert (gate.mode, gate.lenient, gate.record) == (mode, lenient, record)
    assert (gate.watcher is not None) == (mode is Mode.KEYS)


# --- a terminal: the line judged at Enter ----------------------------------------------------


def test_keys_go_through_until_enter(term: Conversation) -> None:
    assert term.keys(b"ls") == [SendToTarget(b"ls")]
    assert term.keys(b" -l") == [SendToTarget(b" -l")]


def test_a_plain_line_is_judged_at_enter_and_its_enter_sent_once_allowed(
        term: Conversation) -> None:
    assert term.typed(b"ls -l /tmp") == [judge("ls -l /tmp")]
    assert term.keys(b"x") == []  # held behind the line being judged
    assert term.decide(True) == [SendToTarget(b"\r"), WakeAfter(QUIET)]
    assert term.keys(b"y") == []  # and behind the shell's answer
    assert term.answer(b"file\r\n") == [SendToTarget(b"x"), SendToTarget(b"y")]


def test_the_line_is_read_off_the_screen_not_from_the_keys(term: Conversation) -> None:
    term.keys(b"ls -k\x7fl")
    term.shows(b"ls -k\b \bl")  # the shell rubs the k out
    term.keys(b"\r")
    assert term.settle() == [judge("ls -l")]


# Found while moving the logic into the gate (the bridge had it too): a paste of two lines sent
# the second line's keys right after the first one's Enter, before the shell drew its next
# prompt, so the prompt was taken from the first line's row and the second was read as the first
# one's output + prompt + line ('one gw$ rm -rf …': the command 'one') and ran
def test_a_pasted_line_is_read_under_its_own_prompt(term: Conversation) -> None:
    assert term.keys(b"echo one\rrm -rf /etc/x\r") == [SendToTarget(b"echo one"),
                                                        WakeAfter(QUIET)]
    term.shows(b"echo one")
    assert term.settle() == [judge("echo one")]
    assert term.decide(True) == [SendToTarget(b"\r"), WakeAfter(QUIET)]
    assert term(Wakeup()) == [WakeAfter(QUIET)]  # no answer yet: the next keys wait
    assert term.answer(b"one\r\n") == [SendToTarget(b"rm -rf /etc/x"), WakeAfter(QUIET)]
    term.shows(b"rm -rf /etc/x")
    assert term.settle() == [judge("rm -rf /etc/x")]


# Regression (found in review, fixed): bridge.py _quiet/_judge_line_inner: the line is read once
# the target has been silent for 20 ms; when its echo takes longer (any target further than 20 ms
# away, a busy host) the gateway judges the bare prompt ('gw$') and then lets the Enter through,
# so a pasted or scripted line runs unjudged
def test_a_line_whose_echo_is_slow_is_still_judged(term: Conversation) -> None:
    assert term.keys(b"rm -rf /etc/x\r") == [SendToTarget(b"rm -rf /etc/x"), WakeAfter(QUIET)]
    for _ in range(10):  # no echo yet: the gate keeps waiting, the Enter stays
        assert term(Wakeup()) == [WakeAfter(QUIET)]
    term.shows(b"rm -rf /etc/x")
    assert term(Wakeup()) == [WakeAfter(QUIET)]  # output came: wait for a quiet moment
    assert term(Wakeup()) == [judge("rm -rf /etc/x")]


def test_the_echo_is_waited_for_a_bounded_time(term: Conversation) -> None:
    term.keys(b"ls\r")
    waits = [term(Wakeup()) for _ in range(ECHO_WAITS)]
    assert waits[:-1] == [[WakeAfter(QUIET)]] * (ECHO_WAITS - 1)
    assert waits[-1] == [Judge(UNSEEN, ("ls",), lenient=True, unseen=True)]


# Regression (found in review, fixed): bridge.py _from_client calls watcher.typed() only when
# Enter is not the first key, so an Enter alone at a prompt is read with the prompt in it: every
# empty line is judged and recorded as the command 'gw$'
def test_enter_alone_at_a_prompt_is_sent_unjudged(term: Conversation) -> None:
    assert term.keys(b"\r") == [WakeAfter(QUIET)]
    assert term.settle() == [SendToTarget(b"\r"), WakeAfter(QUIET)]


@pytest.mark.parametrize("enter", [b"\r", b"\n", b"\x0f"])
def test_every_enter_key_waits_for_the_verdict(term: Conversation, enter: bytes) -> None:
    term.keys(b"ls")
    term.shows(b"ls")
    assert term.keys(enter) == [WakeAfter(QUIET)]
    assert term.settle() == [judge("ls")]
    assert term.decide(True) == [SendToTarget(enter), WakeAfter(QUIET)]


# --- a terminal: refused and held lines ------------------------------------------------------


def test_a_blocked_line_is_aborted_and_the_user_told_why(term: Conversation) -> None:
    assert term.typed(b"rm -rf /etc/x") == [judge("rm -rf /etc/x")]
    assert term.keys(b"echo typed-meanwhile\r") == []
    actions = term.decide(False, BLOCKED)
    assert actions == [SendToTarget(CTRL_C), Tell(BLOCKED), WakeAfter(QUIET)]  # no Enter
    assert term.answer(b"^C") == []  # what was typed meanwhile is gone
    assert term.typed(b"ls") == [judge("ls")]


# Regression (found in review, fixed): bridge.py _judge_line_inner: a refused line clears _held,
# including the None that stands for the client's EOF, so the target never sees the EOF and the
# channel stays open (printf 'cmd\n' | ssh -tt hangs)
def test_eof_after_a_refused_line_reaches_the_target(term: Conversation) -> None:
    term.typed(b"rm -rf /etc/x")
    assert term(ClientEof()) == []  # held behind the line being judged
    assert term.decide(False, BLOCKED) == [SendToTarget(CTRL_C), Tell(BLOCKED),
                                           WakeAfter(QUIET)]
    assert term.answer(b"^C") == [SendEof()]


def test_a_held_line_waits_and_keys_typed_meanwhile_are_not_sent(term: Conversation) -> None:
    assert term.typed(b"echo needs-review") == [judge("echo needs-review")]
    # the session holds it for an approval; the bridge shows what the session says
    assert term(GatewayOutput(b"\r\n[gatewatch] held for approval ab12\r\n")) == []
    assert term.keys(b"rm -rf /etc/x") == []
    assert term.keys(b"\r") == []
    assert term(Wakeup()) == []  # nothing is waited for but the verdict


def test_the_approval_sends_the_enter_of_the_line_approved_and_then_what_waited(
        term: Conversation) -> None:
    term.typed(b"echo needs-review")
    term.keys(b"echo after\r")
    actions = term.decide(True, "approved by oncall")
    assert actions == [SendToTarget(b"\r"), WakeAfter(QUIET)]
    assert term.answer(b"needs-review\r\n") == [SendToTarget(b"echo after"), WakeAfter(QUIET)]
    term.shows(b"echo after")
    assert term.settle() == [judge("echo after")]  # judged in its turn, not waved through


def test_a_denied_line_is_aborted_like_a_blocked_one(term: Conversation) -> None:
    term.typed(b"echo needs-review")
    term.keys(b"echo after\r")
    denied = "denied by oncall: not now"
    assert term.decide(False, denied) == [SendToTarget(CTRL_C), Tell(denied), WakeAfter(QUIET)]
    assert term.answer(b"^C") == []


def test_a_verdict_nobody_asked_for_does_nothing(term: Conversation) -> None:
    assert term.decide(True) == []
    term.keys(b"ls\r")
    assert term.decide(True) == []  # still waiting for the echo: no Enter
    term.shows(b"ls")
    assert term.settle() == [judge("ls")]


# --- a terminal: lines that cannot be read whole ---------------------------------------------


def test_a_line_longer_than_the_screen_is_refused(term: Conversation) -> None:
    small = Conversation(for_channel("shell", None, (20, 5)))
    small(TargetOpened())
    small.shows(PROMPT)
    line = b"rm -rf /etc/x # " + b"x" * 140  # its start scrolls off the top
    assert small.typed(line) == [SendToTarget(CTRL_C), Tell(LONGER_THAN_SCREEN),
                                 WakeAfter(QUIET)]


def test_a_line_longer_than_the_screen_is_judged_as_seen_when_lenient() -> None:
    top = Conversation(for_channel("exec", "top", (20, 5)))
    top(TargetOpened())
    top.shows(PROMPT)
    [judged] = top.typed(b"x" * 150)
    assert isinstance(judged, Judge) and judged.lenient


def test_a_line_longer_than_the_screen_at_a_continuation_prompt_forgets_it() -> None:
    """Ctrl-C drops the continued lines in the shell: the gate drops them too, or the next
    line would be judged behind them ('echo ' + 'rm -rf …' passes, the shell runs rm)."""
    small = Conversation(for_channel("shell", None, (20, 5)))
    small(TargetOpened())
    small.shows(PROMPT)
    assert small.typed(b"echo \\") == [SendToTarget(b"\r"), WakeAfter(QUIET)]
    small.shows(b"\r\n> ")
    assert small.settle() == []
    assert small.typed(b"x" * 150) == [SendToTarget(CTRL_C), Tell(LONGER_THAN_SCREEN),
                                       WakeAfter(QUIET)]
    assert small.answer(b"^C") == []
    assert small.typed(b"rm -rf /etc/x") == [judge("rm -rf /etc/x")]


# --- a terminal: continued lines -------------------------------------------------------------


def test_a_line_continued_with_a_backslash_is_judged_whole(term: Conversation) -> None:
    # nothing runs yet: the Enter goes and the shell asks for more
    assert term.typed(b"echo forbidden-\\") == [SendToTarget(b"\r"), WakeAfter(QUIET)]
    term.shows(b"\r\n> ")
    assert term.settle() == []
    assert term.typed(b"word | tr a-z A-Z") == [judge("echo forbidden-word | tr a-z A-Z")]


def test_a_backslash_in_a_comment_does_not_continue(term: Conversation) -> None:
    assert term.typed(b"#\\") == [judge("#\\")]
    term.decide(True)
    assert term.answer() == []
    assert term.typed(b"rm -rf /etc/x") == [judge("rm -rf /etc/x")]


def test_ctrl_c_abandons_a_continuation(term: Conversation) -> None:
    term.typed(b"echo \\")
    term.shows(b"\r\n> ")
    assert term.settle() == []
    assert term.keys(b"\x03") == [SendToTarget(b"\x03"), WakeAfter(QUIET)]
    term.shows(b"^C\r\n" + PROMPT)
    assert term.settle() == []
    assert term.typed(b"rm -rf /etc/x") == [judge("rm -rf /etc/x")]


def test_keys_typed_after_a_ctrl_c_wait_for_the_new_prompt(term: Conversation) -> None:
    """Sent at once, they were echoed before the shell's new prompt and read with what stood
    before it (CI: ``sleep 30``, Ctrl-C, then ``echo after-interrupt`` typed at once)."""
    assert term.typed(b"sleep 30") == [judge("sleep 30")]
    assert term(Decided(True)) == [SendToTarget(b"\r"), WakeAfter(QUIET)]
    term.shows(b"\r\n")
    assert term.settle() == []
    assert term.keys(b"\x03") == [SendToTarget(b"\x03"), WakeAfter(QUIET)]
    assert term.keys(b"echo hi\r") == []  # queued until the shell answers
    term.shows(b"^C\r\n" + PROMPT)
    assert term.settle() == [SendToTarget(b"echo hi"), WakeAfter(QUIET)]
    term.shows(b"echo hi")
    assert term.settle() == [judge("echo hi")]


def test_a_continued_command_longer_than_line_max_is_refused(term: Conversation) -> None:
    chunk = b"x" * 1000 + b" \\"
    for _ in range(LINE_MAX // 1000):
        assert term.typed(chunk) == [SendToTarget(b"\r"), WakeAfter(QUIET)]
        assert term.answer() == []
    assert term.typed(chunk) == [SendToTarget(CTRL_C), Tell(TOO_LONG), WakeAfter(QUIET)]


# --- a terminal: echo off --------------------------------------------------------------------


# Regression (found in review, fixed): bridge.py _judged: a line that reads as empty is let
# through without a judgement or a record; after `stty -echo` bash shows nothing of what is
# typed, so every line reads as empty and runs unjudged and unrecorded
def test_keys_typed_without_echo_are_judged_as_they_spell(term: Conversation) -> None:
    assert term.keys(b"echo forbidden-wore\x7fd") == [SendToTarget(b"echo forbidden-wore\x7fd")]
    assert term.keys(b"\r") == [WakeAfter(QUIET)]
    assert term.settle() == [Judge(UNSEEN, ("echo forbidden-word",), lenient=True, unseen=True)]
    assert term.decide(True) == [SECRET_LINE, SendToTarget(b"\r"), WakeAfter(QUIET)]


def test_keys_typed_without_echo_and_refused_are_aborted(term: Conversation) -> None:
    term.keys(b"rm -rf /etc/x\r")
    term.settle()
    assert term.decide(False, BLOCKED) == [SendToTarget(CTRL_C), Tell(BLOCKED), WakeAfter(QUIET)]


def test_keys_before_a_ctrl_c_are_not_part_of_the_next_line(term: Conversation) -> None:
    term.keys(b"abc\x03")
    term.shows(b"\r\n" + PROMPT)  # echo is off: only the new prompt shows
    term.keys(b"def\r")
    assert term.settle() == [SendToTarget(b"def"), WakeAfter(QUIET)]
    assert term.settle() == [Judge(UNSEEN, ("def",), lenient=True, unseen=True)]


def test_more_keys_without_echo_than_line_max_are_refused(term: Conversation) -> None:
    term.keys(b"x" * (LINE_MAX + 1) + b"\r")
    assert term.settle() == [SendToTarget(CTRL_C), Tell(TOO_LONG), WakeAfter(QUIET)]


# --- a terminal: the screen ------------------------------------------------------------------


def test_a_resize_reaches_the_screen(term: Conversation) -> None:
    assert term(Resized(120, 40)) == []
    assert term.gate.watcher is not None
    assert (term.gate.watcher.screen.columns, term.gate.watcher.screen.lines) == (120, 40)


def test_the_gateways_own_messages_are_no_echo(term: Conversation) -> None:
    term.keys(b"ls\r")
    term(GatewayOutput(b"\r\n[gatewatch] something\r\n"))
    assert term(Wakeup()) == [WakeAfter(QUIET)]  # still waiting for the echo of "ls"


# --- no terminal: every line judged before the target sees it --------------------------------


def test_each_line_of_a_script_is_judged_before_it_is_sent(script: Conversation) -> None:
    assert script.keys(b"ls\nrm -rf /etc/x\necho after\n") == [judge("ls")]
    assert script.decide(True) == [SendToTarget(b"ls\n"), judge("rm -rf /etc/x")]
    assert script.decide(False, BLOCKED) == [Tell(BLOCKED)]  # nothing of it sent
    assert script.keys(b"echo later\n") == [judge("echo later")]


def test_a_line_arriving_in_pieces_is_judged_whole(script: Conversation) -> None:
    assert script.keys(b"echo forb") == []
    assert script.keys(b"idden-word\r\n") == [judge("echo forbidden-word")]
    assert script.decide(True) == [SendToTarget(b"echo forbidden-word\r\n")]


def test_the_last_line_without_a_newline_is_judged_at_the_end(script: Conversation) -> None:
    assert script.keys(b"echo last") == []
    assert script(ClientEof()) == [judge("echo last")]
    assert script.decide(True) == [SendToTarget(b"echo last"), SendEof()]


def test_empty_lines_go_through(script: Conversation) -> None:
    assert script.keys(b"\n  \n") == [SendToTarget(b"\n"), SendToTarget(b"  \n")]


def test_many_lines_released_at_once_do_not_nest(script: Conversation) -> None:
    assert sent(script.keys(b"\n" * 20_000 + b"x \\\n" * 5_000)) == (
        b"\n" * 20_000 + b"x \\\n" * 5_000)


def test_continued_lines_of_a_script_are_judged_whole(script: Conversation) -> None:
    assert script.keys(b"echo forbidden-\\\n") == [SendToTarget(b"echo forbidden-\\\n")]
    assert script.keys(b"word\n") == [judge("echo forbidden-word")]


# Regression (found in review, fixed): bridge.py _judged: a shell without a terminal takes '#\\'
# as continued too, so the next line of the script is judged as a comment and runs
def test_a_comment_ending_in_a_backslash_in_a_script(script: Conversation) -> None:
    assert script.keys(b"#\\\n") == [judge("#\\")]
    assert script.decide(True) == [SendToTarget(b"#\\\n")]
    assert script.keys(b"rm -rf /etc/x\n") == [judge("rm -rf /etc/x")]


def test_a_refused_line_keeps_the_continuation_the_shell_still_holds(
        script: Conversation) -> None:
    """Without a terminal there is no Ctrl-C: the shell still holds 'rm -rf \\' after the
    refusal, and joins the next line to it; so must the gate ('/etc/x' alone passes)."""
    script.keys(b"rm -rf \\\n")
    assert script.keys(b"echo forbidden-word\n") == [judge("rm -rf echo forbidden-word")]
    script.decide(False, BLOCKED)
    assert script.keys(b"/etc/x\n") == [judge("rm -rf /etc/x")]


def test_a_line_longer_than_line_max_is_refused_and_dropped_to_its_end(
        script: Conversation) -> None:
    """Judged in pieces, 'rm -rf /tmp/aaa…' and '/../../etc' would each pass."""
    assert script.keys(b"rm -rf /tmp/" + b"a" * LINE_MAX) == [Tell(TOO_LONG)]
    assert script.keys(b"/../../etc") == []
    assert script.keys(b"/x\necho next\n") == [judge("echo next")]


def test_a_line_longer_than_line_max_is_judged_as_it_stands_when_lenient() -> None:
    data = Conversation(InputGate(Mode.LINES, lenient=True))
    data(TargetOpened())
    line = b"{" + b"1," * (LINE_MAX // 2)
    assert data.keys(line) == [judge(line.decode(), lenient=True)]
    assert data.decide(True) == [SendToTarget(line)]


def test_an_exec_of_a_shell_has_its_input_judged() -> None:
    bash = Conversation(for_channel("exec", "bash", None))
    bash(TargetOpened())
    assert bash.keys(b"rm -rf /etc/x\n") == [judge("rm -rf /etc/x")]


@pytest.mark.parametrize("command", [
    "python3 script.py", "find /tmp -maxdepth 0 -exec sh \\;", "awk 'BEGIN{system(\"sh\")}'",
    "perl -e 'system(\"sh\")'", "xargs -I{} sh -c {}", "timeout 9 sh", "env sh -s"])
def test_what_can_start_a_shell_has_its_input_judged_as_a_shell_s(command: str) -> None:
    program = Conversation(for_channel("exec", command, None))
    program(TargetOpened())
    assert program.keys(b"rm -rf /etc/x\n") == [judge("rm -rf /etc/x")]
    assert program.decide(False, BLOCKED) == [Tell(BLOCKED)]


# --- data channels ---------------------------------------------------------------------------


def test_a_data_channel_passes_its_bytes_and_records_them() -> None:
    upload = Conversation(for_channel("exec", "cat > /tmp/f", None))
    assert upload.keys(b"rm -rf /etc/x\n") == []  # the target channel is not open yet
    assert upload(TargetOpened()) == [RecordInput(b"rm -rf /etc/x\n"),
                                      SendToTarget(b"rm -rf /etc/x\n")]
    assert upload.keys(b"more") == [RecordInput(b"more"), SendToTarget(b"more")]
    assert upload(ClientEof()) == [SendEof()]


def test_keys_at_a_terminal_of_a_data_channel_are_not_recorded() -> None:
    sftp = Conversation(for_channel("subsystem", None, (80, 24)))
    sftp(TargetOpened())
    assert sftp.keys(b"secret\r") == [SendToTarget(b"secret\r")]


# --- flow control ----------------------------------------------------------------------------


def test_nothing_reaches_the_target_before_its_channel_opens() -> None:
    conv = Conversation(for_channel("shell", None, (80, 24)))
    assert conv.keys(b"ls") == []
    assert conv(ClientEof()) == []
    assert conv(TargetOpened()) == [SendToTarget(b"ls"), SendEof()]


def test_the_client_is_not_read_while_too_much_input_waits(term: Conversation) -> None:
    term.typed(b"echo needs-review")
    assert term.keys(b"y" * QUEUE_MAX) == []
    assert term.keys(b"y") == [PauseClient()]
    assert term.keys(b"y") == []  # said once
    assert term.decide(True) == [SendToTarget(b"\r"), WakeAfter(QUIET)]
    actions = term.answer()
    assert sent(actions) == b"y" * (QUEUE_MAX + 2)
    assert actions[-1] == ResumeClient()


def test_a_refusal_drops_what_waited_and_resumes_reading(term: Conversation) -> None:
    term.typed(b"rm -rf /etc/x")
    term.keys(b"y" * (QUEUE_MAX + 1))
    assert term.decide(False, BLOCKED) == [SendToTarget(CTRL_C), Tell(BLOCKED), WakeAfter(QUIET),
                                           ResumeClient()]


# --- properties ------------------------------------------------------------------------------


KEYS = st.binary(max_size=12) | st.sampled_from(
    [b"\r", b"\n", b"\x0f", b"\x03", b"\x7f", b"ls", b"rm -rf /etc/x", b" \\", b"#", b"\x1b[A"])
EVENTS = st.one_of(
    KEYS.map(ClientData),
    KEYS.map(TargetOutput),
    st.just(Wakeup()),
    st.just(TargetOpened()),
    st.just(ClientEof()),
    st.builds(Decided, st.booleans(), st.sampled_from(["", BLOCKED])),
    st.builds(Resized, st.integers(1, 120), st.integers(1, 40)),
)
CHANNELS = st.sampled_from([("shell", (20, 5)), ("shell", None), ("exec", (80, 24))])


@FUZZ
@given(CHANNELS, st.lists(EVENTS, max_size=60))
def test_nothing_is_sent_while_a_line_is_judged(channel: tuple[str, tuple[int, int] | None],
                                                events: list[Event]) -> None:
    """Between a Judge and its verdict the target gets nothing; an allowed verdict sends the
    judged line's Enter (or, without a terminal, its bytes) first (invariants 1 and 10)."""
    kind, size = channel
    gate = for_channel(kind, "bash -i" if kind == "exec" else None, size)
    judged: Judge | None = None
    for event in events:
        actions = gate.handle(event)
        if judged is not None and isinstance(event, Decided):
            if event.allowed:  # after what the output side is told of the line
                first = next(a for a in actions if not isinstance(a, LineSent))
                assert isinstance(first, SendToTarget)
                if size is not None:
                    assert first.data in (b"\r", b"\n", b"\x0f")
                else:  # the line's bytes: what was judged, after the lines it continues
                    shown = first.data.decode(errors="replace").rstrip("\r\n")
                    assert judged.text.endswith(shown)
            judged = None
        for action in actions:
            if judged is not None:
                assert not isinstance(action, SendToTarget | SendEof), (judged, action)
            if isinstance(action, Judge):
                judged = action


@FUZZ
@given(st.lists(st.binary(min_size=1, max_size=40), max_size=30))
def test_a_script_whose_lines_are_all_allowed_reaches_the_target_unchanged(
        chunks: list[bytes]) -> None:
    conv = Conversation(for_channel("shell", None, None))
    out = conv(TargetOpened())
    for chunk in [*chunks, None]:
        actions = conv.keys(chunk) if chunk is not None else conv(ClientEof())
        while any(isinstance(a, Judge) for a in actions):
            out += actions
            actions = conv.decide(True)
        out += actions
    assert sent(out) == b"".join(chunks)
    assert out[-1] == SendEof()


# --- strict: the gateway's own line editor ---------------------------------------------------


def strict(size: tuple[int, int] = (80, 24)) -> Conversation:
    chat = Conversation(InputGate(Mode.KEYS, size=size, strict=True))
    chat(TargetOpened())
    chat.shows(PROMPT)
    return chat


def echoed(actions: list[Action]) -> bytes:
    return b"".join(a.data for a in actions if isinstance(a, EchoToClient))


def test_strict_keys_are_echoed_by_the_gateway_and_reach_the_shell_only_when_judged() -> None:
    chat = strict()
    typing = chat.keys(b"echo hi")
    assert sent(typing) == b"" and echoed(typing) == b"echo hi"
    assert chat.keys(b"\r") == [judge("echo hi")]
    went = chat.decide(True)
    assert sent(went) == b"echo hi\r"  # the whole line with its Enter, at once
    assert b"\x1b[J" in echoed(went)  # the gateway's echo is taken off: the shell echoes it
    assert went.index(next(a for a in went if isinstance(a, EchoToClient))) < went.index(
        SendToTarget(b"echo hi\r"))


@pytest.mark.parametrize("keys", [
    b"bind -x '\"\\C-t\":rm -rf /etc'\r\x14\r",  # the bound key never reaches readline
    b"rm -rf /etc\r",
    b"rm -rf /e\x1b[Dtc\r",
])
def test_strict_a_refused_line_never_reaches_the_shell(keys: bytes) -> None:
    chat = strict()
    actions = chat.keys(keys)
    assert sent(actions) == b""
    judged = [a for a in actions if isinstance(a, Judge)]
    refused = chat.decide(False, BLOCKED)
    assert sent(refused) == b""
    assert Tell(BLOCKED) in refused
    assert echoed(refused).endswith(PROMPT)  # the prompt drawn again, nothing for the shell
    assert judged


@pytest.mark.parametrize(("lines", "whole"), [
    ([b"echo '", b"'; rm -rf /etc; echo '", b"'"], "echo '\n'; rm -rf /etc; echo '\n'"),
    ([b"cat <<EOF | sh", b"rm -rf /etc", b"EOF"], "cat <<EOF | sh\nrm -rf /etc\nEOF"),
    ([b"rm -rf /e\\", b"tc"], "rm -rf /e\\\ntc"),
    ([b"echo $(", b"rm -rf /etc)"], "echo $(\nrm -rf /etc)"),
    ([b"if true", b"then rm -rf /etc; fi"], None),  # complete lines, each judged
])
def test_strict_a_command_that_needs_more_lines_is_judged_whole(lines: list[bytes],
                                                                whole: str | None) -> None:
    chat = strict()
    judged: list[Judge] = []
    for line in lines:
        actions = chat.keys(line + b"\r")
        assert sent(actions) == b""
        judged += [a for a in actions if isinstance(a, Judge)]
        if judged and whole is None:
            chat.decide(True)
            chat.answer()
    if whole is not None:
        assert [j.text for j in judged] == [whole]
        assert sent(chat.decide(True)) == whole.replace("\n", "\r").encode() + b"\r"


def test_strict_ctrl_c_and_ctrl_d_go_to_the_shell_without_the_line() -> None:
    chat = strict()
    assert sent(chat.keys(b"sleep 9\x03")) == CTRL_C
    chat.answer()
    assert sent(chat.keys(b"\x04")) == b"\x04"


def test_strict_up_recalls_this_session_s_lines() -> None:
    chat = strict()
    chat.keys(b"echo one\r")
    chat.decide(True)
    chat.answer()
    assert chat.keys(b"\x1b[A\r") == [EchoToClient(b"echo one\x1b[J"),
                                      judge("echo one")]


def test_strict_history_expansion_is_judged_as_typed() -> None:
    chat = strict()
    assert [a for a in chat.keys(b"!!\r") if isinstance(a, Judge)] == [judge("!!")]


def test_strict_a_password_prompt_is_not_echoed_and_judged_unseen() -> None:
    chat = strict()
    chat.shows(b"\r\n[sudo] password for alice: ")
    actions = chat.keys(b"s3cr'et\r")
    assert echoed(actions) == b""
    assert actions[-1] == Judge(UNSEEN, ("s3cr'et",), lenient=True, unseen=True)
    assert sent(chat.decide(True)) == b"s3cr'et\r"
    chat.answer()
    chat.shows(b"\r\nPassword: ")
    # an open quote let through at a prompt that hides input: the next line is read with it
    actions = chat.keys(b"; rm -rf /etc #'\r")
    assert actions[-1].readings == ("; rm -rf /etc #'",  # type: ignore[union-attr]
                                    "s3cr'et\n; rm -rf /etc #'")


def test_strict_the_alternate_screen_is_raw_only_for_a_known_full_screen_program() -> None:
    chat = strict()
    chat.keys(b"printf '\\033[?1049h'\r")
    chat.decide(True)
    chat.shows(b"\x1b[?1049h")
    chat.settle()
    actions = chat.keys(b"rm -rf /etc\r")
    assert sent(actions) == b"" and actions[-1] == judge("rm -rf /etc")  # still the editor
    chat.decide(False, BLOCKED)
    vim = strict()
    vim.keys(b"vim notes.txt\r")
    vim.decide(True)
    vim.shows(b"\x1b[?1049h\x1b[H\x1b[2J")
    vim.settle()
    assert sent(vim.keys(b"ihello\x1b")) == b"ihello\x1b"  # raw keys
    vim.keys(b":w\r")
    vim.shows(b"\x1b[24;1H:w")
    assert sent(vim.settle()) == b"\r"  # vim's own command line: not a shell line


def test_strict_a_shell_escape_in_a_full_screen_program_is_judged() -> None:
    chat = Conversation(InputGate(Mode.KEYS, size=(80, 24), strict=True, full_screen=True))
    chat(TargetOpened())
    chat.shows(b"\x1b[?1049h\x1b[H\x1b[2J")
    chat.keys(b":!rm -rf /etc\r")
    chat.shows(b"\x1b[24;1H:!rm -rf /etc")
    assert chat.settle() == [judge("rm -rf /etc")]
    refused = chat.decide(False, BLOCKED)
    assert sent(refused) == b"\x15\x03" and Tell(BLOCKED) in refused
    chat.answer()
    chat.keys(b":terminal\r")
    chat.shows(b"\x1b[24;1H:terminal")
    assert any(isinstance(a, Tell) for a in chat.settle())


def test_strict_the_working_directory_is_followed() -> None:
    chat = strict()
    chat.shows(b"\x1b]7;file://host/srv/app\x07")
    assert chat.gate.cwd == frozenset({"/srv/app"})  # the shell's report, before any line
    actions = chat.keys(b"rm -rf build\r")
    assert actions[-1] == Judge("rm -rf build", ("rm -rf build",), False,
                                cwd=frozenset({"/srv/app"}))
    chat(Decided(True, "", frozenset({"/srv/app", "/tmp"})))
    chat.shows(b"\x1b]7;file://host/etc\x07")  # after a line ran, output could forge it
    assert chat.gate.cwd == frozenset({"/srv/app", "/tmp"})


def test_the_gate_of_a_strict_terminal() -> None:
    assert for_channel("shell", None, (80, 24), strict=True).editor is not None
    assert for_channel("shell", None, (80, 24)).editor is None
    assert for_channel("exec", "bash", None, strict=True).editor is None  # no terminal
    vim = for_channel("exec", "vim notes", (80, 24), strict=True)
    assert vim.editor is not None and vim._program == "vim"


# --- issue 13, second round: the classes an outside attacker found -------------------------

ALT_ON, ALT_OFF, PASTE_ON = b"\x1b[?1049h", b"\x1b[?1049l", b"\x1b[?2004h"


def full_screen_started(chat: Conversation, line: bytes = b"less /etc/hostname") -> None:
    chat.keys(line + b"\r")
    chat.decide(True)


@pytest.mark.parametrize("after", [
    ALT_ON + b"(END)" + ALT_OFF + b"\r\n" + ALT_ON + PROMPT,  # the prompt turns it on again
    ALT_ON + b"(END)" + ALT_OFF + b"\r\n" + PASTE_ON + ALT_ON + PROMPT,
    b"\r\n" + PASTE_ON + ALT_ON + PROMPT,  # less -FX exits at once: never took the screen
    ALT_ON + b"(END)\x1b[?10" ,  # a mode change cut in two by the network …
])
def test_strict_raw_keys_end_with_the_full_screen_program(after: bytes) -> None:
    """Finding 1: after less (or whatever the judged line started) ends, a prompt that turns
    the alternate screen on again gets the gateway's editor, not raw keys."""
    chat = strict()
    full_screen_started(chat)
    chat.shows(after)
    if after.endswith(b"\x1b[?10"):
        chat.shows(b"49l\r\n" + ALT_ON + PROMPT)  # … still seen leaving the screen
    chat.settle()
    typed = chat.keys(b"rm -rf /etc")
    assert sent(typed) == b"" and echoed(typed) == b"rm -rf /etc"  # the editor has it
    assert chat.keys(b"\r") == [judge("rm -rf /etc")]


def test_strict_raw_keys_while_the_full_screen_program_runs() -> None:
    chat = strict()
    full_screen_started(chat)
    chat.shows(b"less /etc/hostname\r\n" + ALT_ON + b"\x1b[H\x1b[2Jhost\r\n(END)")
    chat.settle()
    assert sent(chat.keys(b"q")) == b"q"  # the program's key, at once


def test_strict_screen_state_alone_never_grants_raw_keys() -> None:
    chat = strict()
    chat.keys(b"printf x\r")
    chat.decide(True)
    chat.shows(b"x" + ALT_ON + PROMPT)
    chat.settle()
    assert sent(chat.keys(b"rm -rf /etc")) == b""


@pytest.mark.parametrize("row", [b":vert ter", b":tab ter", b":bo terminal", b":py import os",
                                 b':call system("rm -rf /etc")', b':call term_start("sh")',
                                 b':exe "ter"', b":s/x/\\=system('id')/"])
def test_strict_vim_commands_that_can_run_code_are_refused(row: bytes) -> None:
    """Finding 12: vim's command line passes only what cannot run code."""
    chat = Conversation(InputGate(Mode.KEYS, size=(80, 24), strict=True, full_screen="vim"))
    chat(TargetOpened())
    chat.shows(ALT_ON + b"\x1b[H\x1b[2J")
    chat.keys(row + b"\r")
    chat.shows(b"\x1b[24;1H" + row)
    refused = chat.settle()
    assert any(isinstance(a, Tell) for a in refused) and b"\r" not in sent(refused)


def test_strict_vim_writing_the_buffer_into_a_command_is_judged_as_piped_code() -> None:
    chat = Conversation(InputGate(Mode.KEYS, size=(80, 24), strict=True, full_screen="vim"))
    chat(TargetOpened())
    chat.shows(ALT_ON + b"\x1b[H\x1b[2J")
    chat.keys(b":w !sh\r")
    chat.shows(b"\x1b[24;1H:w !sh")
    assert chat.settle() == [judge("sh", "sh", "cat | sh")]


def test_strict_lines_go_as_a_bracketed_paste_when_readline_takes_one() -> None:
    """Finding 2: no key binding or macro can act on a judged line's characters."""
    chat = Conversation(InputGate(Mode.KEYS, size=(80, 24), strict=True))
    chat(TargetOpened())
    chat.shows(PASTE_ON + PROMPT)
    chat.keys(b"echo hi\r")
    assert sent(chat.decide(True)) == b"\x1b[200~echo hi\x1b[201~\r"


def test_strict_a_readline_prompt_is_not_a_password_prompt() -> None:
    """Finding 3: PS1='token: ' does not make lines lenient."""
    chat = Conversation(InputGate(Mode.KEYS, size=(80, 24), strict=True))
    chat(TargetOpened())
    chat.shows(PASTE_ON + b"token: ")
    assert chat.keys(b"rm -rf /etc\r")[-1] == judge("rm -rf /etc")


@pytest.mark.parametrize("line", ['declare -x CD""PATH=/tmp/prot', "export CDPATH=/x",
                                  "source ~/.profile", "read -r CDPATH"])
def test_strict_cdpath_by_any_spelling_ends_following_the_directory(line: str) -> None:
    """Finding 9."""
    chat = strict()
    chat.keys(line.encode() + b"\r")
    chat(Decided(True, "", frozenset({"/tmp"})))
    chat.answer()
    chat.keys(b"cd /tmp\r")
    chat(Decided(True, "", frozenset({"/tmp"})))
    chat.answer()
    assert chat.gate.cwd == CDPATH_SET
    assert chat.keys(b"cd x && rm -rf ../x\r")[-1].cwd == CDPATH_SET  # type: ignore[union-attr]
    assert classify_command("cd /tmp && cd x && rm -rf ../x", CDPATH_SET).unknown_paths


# --- the output side learns which lines transform (issue 14) ----------------------------------


PASTING = b"\x1b[?2004h"  # readline reads a line (bash 5.1+)


def test_a_transforming_line_tells_the_output_side_before_its_enter() -> None:
    conv = Conversation(for_channel("shell", None, (80, 24)))
    conv(TargetOpened())
    conv.shows(PASTING + PROMPT)
    conv.typed(b"rev secrets.txt")
    went = conv.decide(True)
    assert went[:2] == [LineSent(True, delimited=True, detaches=False), SendToTarget(b"\r")]
    conv.answer(b"1111\r\n")
    conv.shows(PASTING)
    assert conv.typed(b"cat f") == [judge("cat f")]
    # a plain line is told too when readline reads it: the output side counts the lines
    assert conv.decide(True)[0] == LineSent(False, delimited=True, detaches=False)


def test_a_plain_line_without_bracketed_paste_tells_nothing(term: Conversation) -> None:
    assert term.typed(b"cat f") == [judge("cat f")]
    assert term.decide(True) == [SendToTarget(b"\r"), WakeAfter(QUIET)]


def test_a_transforming_line_without_bracketed_paste_is_told_undelimited(
        term: Conversation) -> None:
    term.typed(b"od -c f &")
    assert term.decide(True)[0] == LineSent(True, delimited=False, detaches=True, ends=True)


def test_strict_a_transforming_line_tells_the_output_side() -> None:
    chat = strict()
    chat.shows(PASTING)
    chat.keys(b"xxd f\r")
    went = chat.decide(True)
    told = [a for a in went if isinstance(a, LineSent)]
    assert told == [LineSent(True, delimited=True, detaches=False, ends=True)]
    assert went.index(told[0]) < went.index(next(a for a in went if isinstance(a, SendToTarget)))


@pytest.mark.parametrize("line", [b"rev s > g", b"alias cat=rev", b"export PATH=/tmp",
                                  b"sed -i s/x/y/ f", b"python3 -c 1"])
def test_a_line_that_leaves_state_behind_taints_the_session_before_its_enter(
        line: bytes) -> None:
    chat = strict()
    chat.shows(PASTING)
    chat.keys(line + b"\r")
    went = chat.decide(True)
    told = [a for a in went if isinstance(a, LineSent)]
    assert len(told) == 1 and told[0].taints and told[0].transforms
    assert went.index(told[0]) < went.index(next(a for a in went if isinstance(a, SendToTarget)))


def test_lines_without_a_terminal_tell_the_output_side_what_they_leave_behind() -> None:
    conv = Conversation(for_channel("shell", None, None))
    conv(TargetOpened())
    conv(ClientData(b"cat f > g\n"))
    assert not [a for a in conv.decide(True) if isinstance(a, LineSent)]
    conv(ClientData(b"rev f > g\n"))
    assert [a for a in conv.decide(True) if isinstance(a, LineSent)] == [
        LineSent(True, delimited=False, detaches=False, taints=True)]


def test_refused_lines_tell_the_output_side_nothing_and_passwords_that_they_are_secret(
        term: Conversation) -> None:
    term.typed(b"rev f")
    assert not [a for a in term.decide(False, BLOCKED) if isinstance(a, LineSent)]
    term.answer()
    term.keys(b"hunter2")  # typed without echo: a password, or a line for a shell
    term.keys(b"\r")
    term.settle()
    assert [a for a in term.decide(True) if isinstance(a, LineSent)] == [SECRET_LINE]


def test_strict_a_line_typed_at_a_password_prompt_tells_the_output_side() -> None:
    chat = strict()
    chat.shows(b"Password: ")  # no bracketed paste: not readline's prompt
    chat.keys(b"rev secrets\r")
    assert [a for a in chat.decide(True) if isinstance(a, LineSent)] == [SECRET_LINE]


def test_lines_given_to_a_program_that_is_not_a_shell_tell_nothing() -> None:
    conv = Conversation(for_channel("exec", "cat", (80, 24)))  # lenient: input to cat
    conv(TargetOpened())
    conv.typed(b"rev f")
    assert not [a for a in conv.decide(True) if isinstance(a, LineSent)]
