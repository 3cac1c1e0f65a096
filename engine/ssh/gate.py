"""The input side of one SSH channel: what the client sends, held until the gateway judged it.

``InputGate`` is a state machine without I/O, in the manner of mitmproxy's protocol layers: the
bridge (``bridge.py``) hands it events — client bytes, the client's end of input, the target's
terminal output, a verdict on a line it asked to have judged, a wake-up it asked for — and
carries out the actions it returns, in order: send bytes to the target, record input, judge a
line, tell the user, stop or resume reading the client, wake it later. It holds no socket, task
or clock, so a conversation with it is a test (``tests/engine/ssh/test_gate.py``).

What reaches the target depends on the channel (``for_channel``):

- ``PASS`` (sftp, scp, an exec whose input is data): the bytes as they come, recorded when there
  is no terminal; the command itself was judged before the channel opened.
- ``KEYS`` (a terminal): keys go through until Enter; then, once the echo has reached the
  screen, the line is read off it (``lines.py``) and judged, and only an allowed line gets its
  Enter. A refused line is aborted with Ctrl-C. Keys after an Enter wait for the shell's answer
  (its next prompt), so that a pasted line is read under its own prompt.
- ``LINES`` (no terminal: ``ssh -T``, a script piped into ssh): each line is judged before the
  target sees any of it.

``strict`` (``ssh.interactive: strict``) changes what a terminal does: the gateway owns the
line. Keys go to the gateway's own line editor (``editor.py``), which echoes them; at Enter the
whole command (continued over lines while it needs more: an open quote, a here-document) is
judged, its echo taken off the screen, and only then is it sent to the shell, with its Enter —
so readline bindings, macros and screen tricks have nothing to act on, and what was judged is
what the shell got. A refused line never reaches the shell at all. A full-screen program (the
alternate screen) gets its keys raw, and the lines typed there are not shell lines — but only
when the line that started it names a known full-screen program (``vim``, ``less``, ``top`` …):
anything else that turns the alternate screen on still meets the editor. Inside one, a shell
escape (vim's ``:!cmd``, less's ``!cmd``) is judged as the command it runs, and ``:terminal``
is refused. A line typed at a password prompt is not echoed, and is judged like a line typed
without echo in lenient mode. The working directory is followed from the lines judged (and
from the shell's OSC 7 report before the first line), so that relative paths can be judged.

While a line waits for its echo, its verdict or the shell's answer, later input waits in the
gate's queue, in order (nothing typed reaches the target before its line is judged:
ARCHITECTURE.md invariant 1); above ``QUEUE_MAX`` bytes the client stops being read. After a
refused line what was sent behind it is dropped, an end of input kept. What cannot be read whole
(a line longer than the screen, a command longer than ``LINE_MAX``) is refused (invariant 9)
unless the gate is lenient: a program that is not a shell, or a full-screen one, whose lines may
not be shell words at all.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from engine.guardrail.commands import CDPATH_SET, READS_INPUT, SHELLS, Cwd, classify_command
from engine.guardrail.shellwords import ShellParseError, needs_more
from engine.ssh.editor import Control, Echo, LineEditor, Submit
from engine.ssh.lines import MODE_EVENTS_MAX, LineWatcher, continues, find_enter, spelled
from engine.ssh.output import detaches, prints_no_escapes, transforms_output
from engine.ssh.shellstate import leaves_state

QUEUE_MAX = 64 * 1024  # input waiting for a verdict; beyond it the client is not read
LINE_MAX = 64 * 1024  # the longest command the gateway reads (a line, or continued lines)
QUIET = 0.02  # the target silent this long after the echo: the line is complete on screen
ECHO_WAITS = 75  # at most this many QUIET periods (1.5 s) for the echo before reading the line

CTRL_C = b"\x03"  # aborts the line in a shell, continuation lines included
UNSEEN = "(typed without echo)"  # how a line the screen did not show is recorded
LONGER_THAN_SCREEN = ("the line is longer than the screen, so the gateway cannot read it whole; "
                      "run it with exec or from a script")
TOO_LONG = (f"the command is longer than {LINE_MAX // 1024} KiB, so the gateway cannot read it "
            "whole; put it in a script on the target and run that")
NO_TERMINAL = ("a command inside a full-screen program that could run code or a terminal the "
               "gateway never sees; leave the program and run it at the prompt")
CONTROL_CHARACTERS = "the line holds control characters, which the shell could read as keys"
# Programs whose alternate screen gets raw keys in strict mode (what they run is judged).
# Programs with a command line of their own that runs anything (emacs's M-x, mc's command
# line, mutt's and tig's shell escapes) are not here: they meet the editor.
FULL_SCREEN = frozenset({"vi", "vim", "vim.tiny", "vim.basic", "nvim", "view", "vimdiff",
                         "nano", "pico", "less", "more", "most", "man", "top", "htop",
                         "btop", "atop", "iotop", "nmtui", "alsamixer"})
# … of those, the ones that turn bracketed paste on themselves (after the alternate screen)
_PASTING = frozenset({"vi", "vim", "vim.tiny", "vim.basic", "nvim", "view", "vimdiff", "nano",
                      "pico"})
_VIM = frozenset({"vi", "vim", "vim.tiny", "vim.basic", "nvim", "view", "vimdiff"})
_SECRET = re.compile(r"(?i)(password|passphrase|passcode|\bpin\b|token)[^:\n]*:\s*$")
_OSC7 = re.compile(rb"\x1b\]7;file://[^/\x07\x1b]*(/[^\x07\x1b]*)(?:\x07|\x1b\\)")
# A shell escape: vim's ``:!cmd``/``:r !cmd``, less's ``!cmd`` and ``|Xcmd``, nano's and
# emacs's prompts for a command.
_SHELL_ESCAPE = re.compile(r"^\s*(?::[^!]*!|!|\|.|(?:[A-Za-z ]*[Cc]ommand[A-Za-z ]*|"
                           r"[Ee]xecute[A-Za-z ]*)(?:\[[^]]*\])?:\s*)(?P<command>.+)$")
_UNPIPED_ESCAPE = re.compile(r"^\s*(?::\s*(?:r|read)?\s*)?!")
# vim's command line: only what cannot run code passes (writing, quitting, moving, plain
# settings, searching and substituting without expressions); anything else — :terminal under
# any spelling (:vert ter, :tab ter), :py, :lua, :call system(), :exe, :source, :normal … —
# is refused rather than enumerated.
_VIM_SAFE = re.compile(
    r"^:\s*(?:[0-9,.$%'<>+-]*\s*)?(?:(?:w|wq|wa|wqa|wall|x|xa|xit|q|qa|qall|quit|wn|n|N|next|"
    r"prev|e|edit|up|update|u|undo|red|redo|noh|nohlsearch|set?|setl|setlocal|syn|syntax|"
    r"ls|buffers|b|bn|bp|help|h|sp|vs|split|vsplit|only|close|bd|pwd|d|y|j|m|t|co|>|<|=|)"
    r"!?(?:\s+[^!|`$=\\]*)?|(?:s|substitute|&&?)(?:([^\w\s\\|\"])(?:(?!\1).)*\1(?:(?!\1)"
    r"[^=\\])*(?:\1[gciInp&#lr]*)?)?)\s*$")


# --- events: what the bridge tells the gate -------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientData:
    """Bytes from the client: keys at a terminal, else input."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ClientEof:
    """The client's input ended (it still reads output)."""


@dataclass(frozen=True, slots=True)
class TargetOpened:
    """The target's channel is open: input may flow."""


@dataclass(frozen=True, slots=True)
class TargetOutput:
    """What the target wrote to the client's terminal (stdout, before masking: masking must not
    hide a command from judgement)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class GatewayOutput:
    """What the gateway itself wrote to the client's terminal: on the screen, but not an echo."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Resized:
    cols: int
    rows: int


@dataclass(frozen=True, slots=True)
class Wakeup:
    """The time asked for with ``WakeAfter`` has passed."""


@dataclass(frozen=True, slots=True)
class Decided:
    """The verdict on the line of the last ``Judge``: run it or not, and why not; ``cwd``:
    where the shell may be once it ran (None: not known)."""

    allowed: bool
    message: str = ""
    cwd: Cwd = None


Event = (ClientData | ClientEof | TargetOpened | TargetOutput | GatewayOutput | Resized
         | Wakeup | Decided)


# --- actions: what the gate asks of the bridge ----------------------------------------------


@dataclass(frozen=True, slots=True)
class SendToTarget:
    data: bytes


@dataclass(frozen=True, slots=True)
class SendEof:
    pass


@dataclass(frozen=True, slots=True)
class RecordInput:
    """Record input as the client sent it (data channels without a terminal)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Judge:
    """Judge and record one command line, then answer with ``Decided``. ``readings``: every
    plausible reading of the line, ``text`` first. ``unseen``: keys the screen did not show (a
    password, perhaps): recorded only if refused."""

    text: str
    readings: tuple[str, ...]
    lenient: bool
    unseen: bool = False
    cwd: Cwd = None  # the working directories the line may run in (None: not known)


@dataclass(frozen=True, slots=True)
class EchoToClient:
    """Bytes for the client's terminal from the gateway's line editor (strict mode): not
    recorded (the shell echoes the line it is sent, and that is recorded)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class LineSent:
    """A judged command line is sent to the shell (``ChannelOutput.line_sent``): whether it
    ``transforms`` its output, whether readline reads it (``delimited``: bracketed paste is
    on, so its output is delimited), whether it ``detaches`` something that writes later,
    whether its output ``ends`` at the next prompt (it cannot forge one:
    ``prints_no_escapes``), and whether it ``taints`` the session: it may leave state behind
    that changes what later lines print (``engine.ssh.shellstate.leaves_state``)."""

    transforms: bool
    delimited: bool
    detaches: bool
    ends: bool = False
    taints: bool = False
    # typed where the screen showed a password prompt and not readline's (nothing of it is
    # known): input to the program that asked, or a line for a shell without bracketed paste
    secret: bool = False


@dataclass(frozen=True, slots=True)
class Tell:
    """A message from the gateway to the user."""

    message: str


@dataclass(frozen=True, slots=True)
class PauseClient:
    pass


@dataclass(frozen=True, slots=True)
class ResumeClient:
    pass


@dataclass(frozen=True, slots=True)
class WakeAfter:
    """Send ``Wakeup`` after this many seconds (one at a time)."""

    seconds: float


# A line typed at a password prompt goes on (``ChannelOutput.line_sent``)
SECRET_LINE = LineSent(True, delimited=False, detaches=False, secret=True)

Action = (SendToTarget | SendEof | RecordInput | Judge | Tell | PauseClient | ResumeClient
          | WakeAfter | EchoToClient | LineSent)


# --- which gate a channel gets --------------------------------------------------------------


class Mode(enum.Enum):
    PASS = "pass"
    KEYS = "keys"
    LINES = "lines"





def reads_commands(command: str, terminal: bool) -> str | None:
    """For an exec: whether its input is judged line by line, like a shell's: "shell" (strict)
    when it runs something that can start a shell on its input — a shell, ``find -exec sh``,
    awk's ``system()``, interpreter code, a script, eval, a program only known at run time —
    "other" (lenient: a line that is not shell words passes) for anything else given a
    terminal. None for plain data channels (scp -t, rsync --server, cat > file), whose input
    is bytes, not commands."""
    try:
        facts = classify_command(command)
    except ShellParseError:
        return "shell"
    if (READS_INPUT in facts.opaque or facts.programs & SHELLS or facts.unknown_program
            or facts.kinds & _RUNS_CODE):
        return "shell"
    if terminal or facts.opaque:
        return "other"
    return None


_RUNS_CODE = frozenset({"INTERPRETER CODE", "SCRIPT FILE", "EVAL", "COMMAND IN OPTION"})


def full_screen_program(line: str) -> bool:
    """Whether a line runs one known full-screen program and nothing else (``sudo vim f``)."""
    return bool(_full_screen_name(line))


def _full_screen_name(line: str) -> str:
    """The known full-screen program a line runs, and nothing else; "" if none."""
    try:
        facts = classify_command(line)
    except ShellParseError:
        return ""
    if (len(facts.commands) == 1 and not facts.unseen and not facts.opaque
            and facts.commands[0][0] in FULL_SCREEN):
        return facts.commands[0][0]
    return ""


def for_channel(kind: str, command: str | None, size: tuple[int, int] | None, *,
                strict: bool = False) -> InputGate:
    """The gate of a channel: ``kind`` as the client asked for it ("shell", "exec",
    "subsystem"), an exec's command, the terminal's columns and rows (None: no terminal);
    ``strict``: the connection's ``ssh.interactive`` is strict."""
    if kind == "shell":
        reads: str | None = "shell"
    elif kind == "exec" and command is not None:
        reads = reads_commands(command, size is not None)
    else:
        reads = None
    if reads is None:  # keys typed at a terminal are not recorded: they may be a password
        return InputGate(Mode.PASS, record=size is None)
    if size is None:
        return InputGate(Mode.LINES, lenient=reads == "other")
    if strict:
        return InputGate(Mode.KEYS, size=size, strict=True, full_screen=(
            _full_screen_name(command) if kind == "exec" and command is not None else ""))
    return InputGate(Mode.KEYS, size=size, lenient=reads == "other")


# --- the gate -------------------------------------------------------------------------------


Waiting = Literal["echo", "verdict", "answer"]  # for the line's echo, its verdict, the shell


class InputGate:
    """The input of one channel; ``handle`` takes an event and returns the actions it calls
    for, in order."""

    def __init__(self, mode: Mode, *, size: tuple[int, int] | None = None,
                 lenient: bool = False, record: bool = False, strict: bool = False,
                 full_screen: str | bool = "", history: list[str] | None = None) -> None:
        self.mode = mode
        self.lenient = lenient  # lines that are not shell words pass; what is not whole too
        self.record = record  # PASS: input is recorded as it goes
        # strict: the gateway's own line editor owns the line (KEYS only)
        self.editor = LineEditor(history) if strict and mode is Mode.KEYS else None
        # strict: the full-screen program the last judged line started ("" none): its
        # alternate screen gets raw keys while it runs (``_raw_allowed``)
        self._program = ("vim" if full_screen is True else full_screen or "")
        self._raw_enter = False  # the Enter held is a full-screen program's, not a line's
        self._escape_judged = False  # the line being judged is a full-screen program's
        self._line = ""  # strict: the command being judged
        self._command = False  # the line being judged is a command for the shell (seen)
        self._secret = False  # … typed at a password prompt
        self._unseen = False  # the line being judged was typed without echo
        self._prompt = ""  # strict: what stood before the command on its row
        self._displaced = False  # strict: output came while a line was being edited
        self._unseen_pending = ""  # unseen lines let through though they did not parse
        self.cwd: Cwd = None  # where the shell is, as far as the gateway can follow
        self._follow_cwd = True  # False once CDPATH is set: a cd may go anywhere
        self._lines_judged = 0
        self.watcher: LineWatcher | None = None
        if mode is Mode.KEYS:
            cols, rows = size or (80, 24)
            self.watcher = LineWatcher(cols or 80, rows or 24)
            if self._program:
                self.watcher.watch_modes()
        self._out: list[Action] = []
        self._queue: deque[bytes | None] = deque()  # None: the client's end of input
        self._queued = 0  # bytes in the queue
        self._paused = False  # the client is not read
        self._open = False  # the target's channel
        self._pumping = False  # in _pump's loop (a line released there lets it go on)
        self._waiting: Waiting | None = None  # meanwhile input stays queued
        self._send = b""  # what the line being judged sends if allowed: Enter, or its bytes
        self._continued = ""  # a line ended with a backslash: it goes on in the next one
        self._partial = b""  # LINES: the line being received
        self._discarding = False  # LINES: the rest of a refused line is dropped
        self._typed = bytearray()  # KEYS: keys since the prompt, for a line the screen hides
        self._typed_whole = True  # … all of them (at most LINE_MAX are kept)
        self._echo_due = False  # KEYS: keys were sent and no output came after them yet
        self._quiet = True  # no output since the last wake-up
        self._waits = 0  # wake-ups spent waiting for the echo or the answer

    def handle(self, event: Event) -> list[Action]:
        out = self._out = []
        match event:
            case ClientData(data) if data:
                self._queue.append(data)
                self._queued += len(data)
                self._pump()
            case ClientEof():
                self._queue.append(None)
                self._pump()
            case TargetOpened():
                self._open = True
                self._pump()
            case TargetOutput(data) if self.watcher is not None:
                self.watcher.output(data)
                self._echo_due = self._quiet = False
                self._target_output(data)
            case GatewayOutput(data) if self.watcher is not None:
                self.watcher.output(data)
            case Resized(cols, rows) if self.watcher is not None:
                self.watcher.resize(cols, rows)
                if self.editor is not None:
                    self.editor.resize(cols)
            case Wakeup() if self._waiting in ("echo", "answer"):
                self._wakeup()
            case Decided(allowed, message, cwd) if self._waiting == "verdict":
                if allowed:
                    self._follow(cwd)
                self._decided(allowed, message)
        if not self._paused and self._queued > QUEUE_MAX:
            self._paused = True
            out.append(PauseClient())
        elif self._paused and self._queued <= QUEUE_MAX // 2:
            self._paused = False
            out.append(ResumeClient())
        self._out = []
        return out

    # --- the queue ----------------------------------------------------------------------------

    def _pump(self) -> None:
        """Hand queued input on in order, stopping at a line to be judged. A line released
        while pumping (empty, continued) lets the loop go on rather than pump again inside
        it: a script of ten thousand empty lines must not nest ten thousand calls."""
        if self._pumping:
            return
        self._pumping = True
        try:
            while self._queue and self._open and self._waiting is None:
                data = self._queue.popleft()
                if data is None:
                    self._end_of_input()
                    continue
                self._queued -= len(data)
                if self.mode is Mode.KEYS:
                    self._keys(data)
                elif self.mode is Mode.LINES:
                    self._lines(data)
                else:
                    if self.record:
                        self._out.append(RecordInput(data))
                    self._out.append(SendToTarget(data))
        finally:
            self._pumping = False

    def _put_back(self, rest: bytes) -> None:
        if rest:
            self._queue.appendleft(rest)
            self._queued += len(rest)

    def _to_target(self, data: bytes) -> None:
        self._out.append(SendToTarget(data))
        self._echo_due = True

    def _end_of_input(self) -> None:
        if self.mode is Mode.LINES and self._partial:
            self._queue.appendleft(None)  # the last line has no newline: judge it first
            line, self._partial = self._partial, b""
            self._plain_line(line)
            return
        self._out.append(SendEof())

    # --- a terminal ---------------------------------------------------------------------------

    def _follow(self, cwd: Cwd) -> None:
        """Where the shell is once a judged line ran."""
        self._lines_judged += 1
        if self._follow_cwd and _may_set_cdpath(self._line):
            self._follow_cwd = False  # for the rest of the session
        self.cwd = cwd if self._follow_cwd else CDPATH_SET

    def _target_output(self, data: bytes) -> None:
        """The shell's OSC 7 report of its directory is believed before the first line only:
        after that, a line's output could forge it."""
        if self._lines_judged == 0 and b"\x1b]7;" in data:
            for match in _OSC7.finditer(data):
                self.cwd = frozenset({unquote(match.group(1).decode(errors="replace"))})
        if self.editor is not None and self.editor.active and self._waiting is None:
            self._displaced = True

    # --- strict: the gateway's line editor ------------------------------------------------

    def _strict_keys(self, data: bytes) -> None:
        assert self.watcher is not None and self.editor is not None
        editor, screen = self.editor, self.watcher.screen
        if not editor.active and self._raw_allowed():
            self._raw_keys(data)
            return
        y = min(max(screen.cursor.y, 0), screen.lines - 1)
        x = min(screen.cursor.x, screen.columns - 1)
        if not editor.active:
            self._prompt = screen.display[y][:x]
            # a password prompt is not readline's: a shell's prompt saying "token:" is not one
            self._secret = bool(_SECRET.search(self._prompt)) and \
                not self.watcher.bracketed_paste
            editor.start(x, screen.columns, secret=self._secret)
        elif self._displaced:  # output moved the cursor: draw the line again there
            self._echo(editor.redraw(x).data)
        self._displaced = False
        for out in editor.feed(data):
            if isinstance(out, Echo):
                self._echo(out.data)
            elif isinstance(out, Submit):
                self._put_back(out.rest)
                self._submit(out.text)
            elif isinstance(out, Control):
                self._put_back(out.rest)
                self._control(out)

    def _echo(self, data: bytes) -> None:
        if data:
            assert self.watcher is not None
            self._out.append(EchoToClient(data))
            self.watcher.output(data)

    def _submit(self, text: str) -> None:
        """Enter: a command that needs more lines goes on; a whole one is judged."""
        assert self.editor is not None
        if not self._secret and (needs_more(text) or continues(text)) \
                and len(text) <= LINE_MAX:
            self._echo(self.editor.continue_line().data)
            return
        self._echo(self.editor.finish().data)
        self._line = text
        self._send = self._keys_for(text)
        if any((c < " " and c not in "\n\t") or "\x7f" <= c <= "\x9f" for c in text):
            self._refuse(CONTROL_CHARACTERS)
        elif self._secret:
            readings = (text, self._unseen_pending + "\n" + text) if self._unseen_pending \
                else (text,)
            self._waiting = "verdict"
            self._out.append(Judge(UNSEEN, readings, lenient=True, unseen=True, cwd=self.cwd))
        elif not text.strip():
            self._decided(True, "")
        elif len(text) > LINE_MAX:
            self._refuse(TOO_LONG)
        else:
            self._waiting = "verdict"
            self._command = True
            self._out.append(Judge(text, (text,), lenient=False, cwd=self.cwd))

    def _strict_decided(self, allowed: bool, message: str) -> None:
        assert self.editor is not None
        self._waiting = None
        if not allowed:
            self._refuse(message)
            return
        if self._secret:
            self._unseen_pending = _unparsed(self._line, self._unseen_pending)
            self._out.append(SECRET_LINE)
        else:
            self._echo(self.editor.erase().data)  # the shell echoes the line it gets
            self.editor.remember(self._line)
            self._unseen_pending = ""
        self._program = "" if self._secret else _full_screen_name(self._line)
        assert self.watcher is not None
        if self._program:
            self.watcher.watch_modes()  # from here on, what the program does to the screen
        else:
            self.watcher.events = None
        self._line_sent()
        self._to_target(self._send)
        self._next_line()

    def _keys_for(self, text: str) -> bytes:
        """What is sent for a judged line: when the target's line editor takes pasted text
        literally (readline 8.1+ with bracketed paste on: it said so with ``ESC[?2004h``), the
        line goes as a paste, so that no key binding or macro can act on its characters;
        otherwise (a program reading plain lines, a password prompt) as typed."""
        assert self.watcher is not None
        if self.watcher.bracketed_paste and not self._secret:
            return b"\x1b[200~" + text.encode() + b"\x1b[201~\r"
        return text.replace("\n", "\r").encode() + b"\r"

    def _raw_allowed(self) -> bool:
        """Whether keys go raw to the full-screen program the last judged line started: only
        while that program holds the alternate screen it turned on. It ends for good (until
        another full-screen line is judged) once the alternate screen is left, once readline
        starts reading a line before the program took the screen (its prompt is back), once
        the shell's prompt shows again, or when the screen's modes changed more often than
        the gateway keeps count of: screen state alone never grants raw keys."""
        watcher = self.watcher
        if not self._program or watcher is None:
            return False
        events = watcher.events or []
        ok = (watcher.full_screen and events[:1] == ["alt+"] and "alt-" not in events
              and len(events) < MODE_EVENTS_MAX
              and ("paste+" not in events or self._program in _PASTING))
        if ok and self._prompt.strip():
            screen = watcher.screen
            y = min(max(screen.cursor.y, 0), screen.lines - 1)
            ok = screen.display[y][:screen.cursor.x] != self._prompt  # the prompt is back
        if not ok:
            self._program = ""
            watcher.events = None
        return ok

    def _control(self, key: Control) -> None:
        """Ctrl-C, Ctrl-D on an empty line, Ctrl-Z, Ctrl-\\: the key goes to the shell (or
        the program it runs), with nothing of the line; Ctrl-L clears the screen."""
        assert self.editor is not None and self.watcher is not None
        if key.name == "clear" and self.editor.buf:
            self._echo(b"\x1b[H\x1b[2J" + self._prompt.encode())
            self._echo(self.editor.redraw(len(self._prompt)).data)
            return
        self._echo(self.editor.finish().data)
        self._unseen_pending = ""
        self._to_target(key.key)
        self._next_line()

    def _raw_keys(self, data: bytes) -> None:
        """A full-screen program has the keys; an Enter waits until the screen shows what it
        confirms, in case that is a shell escape."""
        enter = find_enter(data)
        if enter < 0:
            self._to_target(data)
            return
        if enter:
            self._to_target(data[:enter])
        self._put_back(data[enter + 1:])
        self._send = data[enter:enter + 1]
        self._raw_enter = True
        self._wait_for("echo")

    def _raw_line(self) -> None:
        """The row the cursor is on, at an Enter in a full-screen program: a shell escape
        (``:!cmd``, ``!cmd``, ``:r !cmd``) is judged as the command it runs; ``:terminal`` is
        refused; anything else is the program's own business."""
        assert self.watcher is not None
        screen = self.watcher.screen
        y = min(max(screen.cursor.y, 0), screen.lines - 1)
        row = screen.display[y].rstrip()
        self._raw_enter = False
        escape = _SHELL_ESCAPE.match(row)
        self._escape_judged = True
        if self._program in _VIM and row.lstrip().startswith(":") and \
                not _VIM_SAFE.match(row.strip()) and not (
                    escape is not None and re.match(r"^\s*:[0-9,.$%'<>+-]*(?:r|read|w|"
                                                    r"write)?\s*!", row)):
            self._refuse(NO_TERMINAL)
        elif escape is not None and escape.group("command").strip():
            command = escape.group("command").strip()
            self._line = command
            self._waiting = "verdict"
            # ``:w !cmd``, ``:%!cmd``, less's ``|Xcmd``: the command reads the file on its
            # standard input, which the gateway does not see (``:w !sh`` runs the buffer)
            piped = () if _UNPIPED_ESCAPE.match(row) else (f"cat | {command}",)
            self._command = True
            self._out.append(Judge(command, (command, *piped), lenient=False, cwd=self.cwd))
        else:
            self._escape_judged = False
            self._release()

    def _keys(self, data: bytes) -> None:
        """Keys go through; Enter waits for the echo, then for the verdict on the line."""
        if self.editor is not None:
            self._strict_keys(data)
            return
        assert self.watcher is not None
        enter = find_enter(data)
        self.watcher.typed()
        interrupt = data.find(CTRL_C)
        if interrupt >= 0 and (enter < 0 or interrupt < enter):
            # The shell drops the line and draws a new prompt. Keys typed after the Ctrl-C
            # wait for that answer: sent at once, they would be read off the screen with what
            # stood before the new prompt (a line the gateway cannot judge as typed).
            self._continued = ""
            self._typed.clear()
            self._typed_whole = True
            self.watcher.forget_prompt()
            self._to_target(data[:interrupt + 1])
            self._put_back(data[interrupt + 1:])
            self._wait_for("answer")
            return
        keys = data if enter < 0 else data[:enter]
        dropped = max(keys.rfind(b"\x03"), keys.rfind(b"\x04"))
        if dropped >= 0:  # the shell drops an unfinished command
            self._continued = ""
            self._typed.clear()
            self._typed_whole = True
            self.watcher.forget_prompt()
        self._typed += keys[dropped + 1:]
        if len(self._typed) > LINE_MAX:
            del self._typed[LINE_MAX:]
            self._typed_whole = False
        if enter < 0:
            self._to_target(data)
            return
        if enter:
            self._to_target(data[:enter])
        self._put_back(data[enter + 1:])
        self._send = data[enter:enter + 1]
        self._wait_for("echo")

    def _wait_for(self, what: Waiting) -> None:
        """Let the screen catch up with what was sent: output after the last key, then a
        moment of silence (or, at most, ECHO_WAITS moments). For the "echo" of a line before
        it is read; for the shell's "answer" to an Enter or a Ctrl-C before more keys go: keys
        typed ahead would otherwise take the line the shell is leaving for their prompt, and
        the next line be read with that one's output in front of it."""
        self._waiting, self._waits, self._quiet = what, 0, True
        self._out.append(WakeAfter(QUIET))

    def _wakeup(self) -> None:
        self._waits += 1
        if (self._echo_due or not self._quiet) and self._waits < ECHO_WAITS:
            self._quiet = True
            self._out.append(WakeAfter(QUIET))
            return
        waited, self._waiting = self._waiting, None
        if waited == "echo" and self._raw_enter:
            self._raw_line()
        elif waited == "echo":
            self._screen_line()
        else:
            self._pump()

    def _screen_line(self) -> None:
        assert self.watcher is not None
        lenient = self.watcher.full_screen or self.lenient
        seen = self.watcher.line()
        typed, whole = spelled(bytes(self._typed)), self._typed_whole
        self._typed.clear()
        self._typed_whole = True
        if seen.incomplete and not lenient:
            self._refuse(LONGER_THAN_SCREEN)
        elif seen.text or not typed.strip():
            self._judged(seen.text, seen.readings, lenient)
        elif not whole and not lenient:
            self._refuse(TOO_LONG)
        else:
            # Keys were typed but the screen shows nothing: echo is off (a password, or
            # ``stty -echo``). What the keys spell is judged, and recorded only if refused.
            self._waiting = "verdict"
            self._unseen = True
            self._out.append(Judge(UNSEEN, (typed,), lenient=True, unseen=True, cwd=self.cwd))

    # --- no terminal --------------------------------------------------------------------------

    def _lines(self, data: bytes) -> None:
        """Every line of input is a command for the shell."""
        if self._discarding:
            cut = data.find(b"\n")
            if cut < 0:
                return
            self._discarding = False
            data = data[cut + 1:]
        self._partial += data
        cut = self._partial.find(b"\n")
        if cut < 0:
            if len(self._partial) <= LINE_MAX:
                return
            if not self.lenient:  # refused, and the rest of it dropped as it comes
                self._partial, self._discarding = b"", True
                self._refuse(TOO_LONG)
                return
            cut = len(self._partial) - 1  # judged as it stands rather than held whole
        line, rest = self._partial[:cut + 1], self._partial[cut + 1:]
        self._partial = b""
        self._put_back(rest)
        self._plain_line(line)

    def _plain_line(self, line: bytes) -> None:
        text = line.decode(errors="replace").rstrip("\r\n")
        self._send = line
        self._judged(text, (text,), self.lenient)

    # --- judging ------------------------------------------------------------------------------

    def _raw_escape(self) -> bool:
        """The line judged is a shell escape typed in a full-screen program."""
        return self._escape_judged

    def _judged(self, text: str, readings: tuple[str, ...], lenient: bool) -> None:
        """Decide what to do with one line: send it on (``_send``: its Enter or its bytes),
        have it judged, or refuse it."""
        if self._continued:
            text = self._continued + text
            readings = tuple(self._continued + r for r in readings)
        if len(text) > LINE_MAX and not lenient:
            self._refuse(TOO_LONG)
        elif continues(text) and not lenient:
            # the shell waits for the rest: nothing runs yet, judge it whole later
            self._continued = text[:-1]
            self._release()
        elif not text.strip():
            self._continued = ""
            self._release()
        else:
            self._waiting = "verdict"
            self._line = text
            self._command = not self.lenient  # a shell's line, not a program's input
            self._out.append(Judge(text, readings, lenient, cwd=self.cwd))

    def _decided(self, allowed: bool, message: str) -> None:
        if self.editor is not None and self.mode is Mode.KEYS and not self._raw_escape():
            self._strict_decided(allowed, message)
            return
        self._waiting = None
        unseen, self._unseen = self._unseen, False
        if allowed:
            self._escape_judged = False
            self._continued = ""
            self._line_sent()
            if unseen:
                self._out.append(SECRET_LINE)
            self._release()
        else:
            self._refuse(message)

    def _line_sent(self) -> None:
        """The output side learns of a judged command about to go to the shell: whether its
        output is masked whole (``engine.ssh.output``)."""
        if self._command:
            self._command = False
            delimited = self.watcher is not None and self.watcher.bracketed_paste
            taints = leaves_state(self._line)
            transforms = taints or transforms_output(self._line)
            if transforms or delimited:
                self._out.append(LineSent(transforms, delimited, detaches(self._line),
                                          ends=prints_no_escapes(self._line), taints=taints))

    @property
    def shell_lines(self) -> bool:
        """The target reads shell lines at a terminal, each judged (``LineSent`` tells which
        go on)."""
        return self.mode is Mode.KEYS and not self.lenient

    def _release(self) -> None:
        self._to_target(self._send)
        self._next_line()

    def _next_line(self) -> None:
        """After a line went or was aborted: at a terminal, the shell's answer first."""
        if self.mode is Mode.KEYS:
            self._wait_for("answer")
        else:
            self._pump()

    def _refuse(self, message: str) -> None:
        """The line does not run. At a terminal it is aborted in the shell (Ctrl-C discards it
        and its continuation lines); without one, nothing of it was sent, and the shell still
        holds the lines continued before it, so they stay in front of the next line. What was
        typed or sent after it is dropped, an end of input kept."""
        self._waiting = None
        self._command = False
        raw = self._raw_escape()
        self._escape_judged = False
        if self.editor is not None and raw:
            self._to_target(b"\x15\x03")  # the program's command line: cleared, left
        elif self.editor is not None:
            self.editor.active = False  # nothing of it reached the shell
        elif self.mode is Mode.KEYS:
            self._to_target(CTRL_C)
            self._continued = ""
        self._out.append(Tell(message))
        if self.editor is not None and not raw:
            self._echo(self._prompt.encode())  # the shell's prompt, as it stood
        self._queue = deque(item for item in self._queue if item is None)
        self._queued = 0
        if self.editor is not None and not raw:
            self._pump()  # nothing reached the shell: it has nothing to answer
        else:
            self._next_line()


def _may_set_cdpath(line: str) -> bool:
    """Whether a line may change ``CDPATH`` (by any spelling, or by running code the gateway
    cannot read): a relative ``cd`` may then go anywhere."""
    try:
        return classify_command(line).cdpath
    except ShellParseError:
        return True


def _unparsed(line: str, pending: str) -> str:
    """What an unseen line let through adds to the text a shell may still be reading as one
    command (an open quote over several lines): the next unseen line is also judged joined
    to it."""
    text = f"{pending}\n{line}" if pending else line
    try:
        classify_command(text)
    except ShellParseError:
        return text[-LINE_MAX:]
    return ""
