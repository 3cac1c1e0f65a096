"""One client channel and its twin on the target, relayed byte for byte and teed to the tape.

Client input goes through one queue (``_queue``, None standing for EOF) that ``_pump`` empties
in order. What the target gets depends on the channel:

- exec and sftp: the bytes as they come (the command itself was judged before the channel
  opened on the target);
- a shell with a terminal: keys go through until Enter; then the line is read off the screen
  (``lines.py``), judged, recorded, and only then is the Enter sent;
- a shell without a terminal (``ssh -T``, a script piped into ssh): each line of input is a
  command and is judged before the target sees it.

While a line is judged (or waits for an approval), input waits in the queue; above
``_QUEUE_MAX`` bytes the client channel stops being read. Flow control goes both ways: when
the client cannot take more (asyncssh calls ``pause_writing`` on our server session) the target
channel stops being read, and when the target cannot take more the client channel stops being
read; the tape's back-pressure stops reading the target too. So no buffer grows with what a peer
sends. Writes to a channel that is closing are dropped: a peer going away is not an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import asyncssh
from asyncssh import EXTENDED_DATA_STDERR

from engine.guardrail.commands import READS_INPUT, classify_command
from engine.guardrail.shellwords import ShellParseError
from engine.masking.stream import StreamMasker
from engine.ssh.lines import LineWatcher, find_enter
from engine.ssh.session import Admission, SshSession
from engine.ssh.upstream import TargetUnavailable
from engine.tasks import spawn
from store import StoreError

log = logging.getLogger(__name__)

_QUEUE_MAX = 64 * 1024  # input waiting for a verdict; beyond it the client is not read
_LINE_MAX = 64 * 1024  # a line without a terminal longer than this is judged as it stands
_ECHO_WAIT = 1.5  # at most this long for the echo of what was typed, before reading the line
_QUIET = 0.02  # the target silent this long after the echo: the line is complete on screen
_MASK_QUIET = 0.02  # terminal output held back by masking is released after this much quiet


def say(text: str) -> bytes:
    return f"\r\n[gatewatch] {text}\r\n".encode()


def _ends_continued(text: str) -> bool:
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


_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "busybox", "su", "sudo",
                     "runuser", "doas", "login"})


def _reads_commands(command: str, terminal: bool) -> str | None:
    """For an exec: whether its input is judged line by line, like a shell's: "shell" (strict)
    when it starts a shell that reads commands from its input, "other" (lenient: a line that is
    not shell words passes) for anything else that may — every program given a terminal (it
    may be or start a shell: ``perl -e 'exec "/bin/bash"'``), and without a terminal every
    command the gateway cannot see into (interpreter code, a script, eval). None for plain data
    channels (scp -t, rsync --server, cat > file), whose input is bytes, not commands."""
    try:
        facts = classify_command(command)
    except ShellParseError:
        return "other" if terminal else None
    if READS_INPUT in facts.opaque and facts.programs & _SHELLS:
        return "shell"
    if terminal or facts.opaque:
        return "other"
    return None


_TRANSFERS = frozenset({"scp", "rsync", "sftp-server", "internal-sftp"})


def _transfers_files(command: str) -> bool:
    """The server side of a file transfer (``scp -t``, ``rsync --server``)."""
    try:
        facts = classify_command(command)
    except ShellParseError:
        return False
    return bool(facts.programs & _TRANSFERS)


def _edited(keys: bytes) -> str:
    """What keys typed at a line editor spell, roughly: printable text with backspaces and
    Ctrl-U applied (escape sequences dropped)."""
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


class ChannelBridge(asyncssh.SSHServerSession):  # type: ignore[type-arg]
    def __init__(self, session: SshSession, number: int) -> None:
        self.s = session
        self.number = number
        self.chan: asyncssh.SSHServerChannel[bytes] | None = None
        self.up: asyncssh.SSHClientChannel[bytes] | None = None
        self.kind = "shell"
        self.command: str | None = None
        self.subsystem: str | None = None
        self.term: tuple[str, tuple[int, int, int, int], dict[int, int]] | None = None
        self.watcher: LineWatcher | None = None
        self._queue: deque[bytes | None] = deque()
        self._queued = 0
        self._judging = False
        self._partial = b""  # a shell without a terminal: the line being received
        self._continued = ""  # a line ended with a backslash: it goes on in the next one
        self._seq: int | None = None  # the exec/subsystem command's record
        self._up_blocks: set[str] = set()  # why the target channel is not read
        self._client_blocks: set[str] = set()  # why the client channel is not read
        self._exit: tuple[str, Any] | None = None
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_output = 0.0
        self._last_input = 0.0
        self._size: tuple[int, int, int, int] | None = None  # the latest window size
        self._typed = bytearray()  # keys since the prompt, for a line the screen does not show
        # exec of a program that reads commands from its input (bash, python, sudo -i …): its
        # lines are judged as a shell's are; "other" (not a shell) is judged leniently
        self._reads_commands: str | None = None
        self._maskers: dict[bool, StreamMasker] = {}  # stderr? → its masker
        self._data_channel = False  # sftp, scp, rsync: file transfer protocols
        self._flush_timer: asyncio.TimerHandle | None = None

    # --- asyncssh: the client's channel ---------------------------------------------------

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:  # type: ignore[override]
        self.chan = chan
        self.s.bridges.append(self)

    def pty_requested(self, term_type: str, term_size: tuple[int, int, int, int],
                      term_modes: Mapping[int, int]) -> bool:
        self.term = (term_type, term_size, dict(term_modes))
        return True

    def shell_requested(self) -> bool:
        if not self.s.conn.ssh or not self.s.conn.ssh.shell:
            log.info("session %s: interactive shell refused (exec only)", self.s.session_id)
            return False
        self.kind = "shell"
        return True

    def exec_requested(self, command: str) -> bool:
        self.kind, self.command = "exec", command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        if subsystem != "sftp":
            log.info("session %s: subsystem %r refused", self.s.session_id, subsystem)
            return False
        self.kind, self.subsystem = "subsystem", subsystem
        return True

    def session_started(self) -> None:
        self._spawn(self._start(), "channel")

    def data_received(self, data: bytes, datatype: int | None) -> None:
        self._enqueue(data)

    def eof_received(self) -> bool:
        self._enqueue(None)
        return True  # half-close: the client still reads output

    def terminal_size_changed(self, width: int, height: int, pixwidth: int,
                              pixheight: int) -> None:
        self.s.tape.mark_size(self.number, width, height)
        self._size = (width, height, pixwidth, pixheight)
        if self.watcher is not None:
            self.watcher.resize(width, height)
        if self.up is not None:
            self._guarded(lambda: self.up.change_terminal_size(  # type: ignore[union-attr]
                width, height, pixwidth, pixheight))

    def signal_received(self, signal: str) -> None:
        if self.up is not None:
            self._guarded(lambda: self.up.send_signal(signal))  # type: ignore[union-attr]

    def break_received(self, msec: int) -> bool:
        if self.up is not None:
            self._guarded(lambda: self.up.send_break(msec))  # type: ignore[union-attr]
        return True

    def pause_writing(self) -> None:
        self._block_up("client", True)

    def resume_writing(self) -> None:
        self._block_up("client", False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self in self.s.bridges:
            self.s.bridges.remove(self)
        self.cancel()
        if self.up is not None:
            self.up.close()
        if self._seq is not None and self._exit is None:
            self.s.end_command(self._seq, "interrupted", None, "the client closed the channel",
                               command=self.kind)

    # --- the session's side ---------------------------------------------------------------

    def pressure(self, on: bool) -> None:
        self._block_up("store", on)

    def close_with(self, message: str) -> None:
        if self.chan is not None and not self._closed:
            self._tell(message)
            self._guarded(lambda: self.chan.exit(255))  # type: ignore[union-attr]

    def cancel(self) -> None:
        """Stop waiting for verdicts and approvals (their requests are withdrawn)."""
        for task in list(self._tasks):
            task.cancel()

    # --- plumbing -------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        task = spawn(coro, name=f"ssh-{what}-{self.s.session_id}-{self.number}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def _guarded(write: Callable[[], object]) -> None:
        """A write to a channel that is closing is dropped: the peer went away."""
        try:
            write()
        except (BrokenPipeError, OSError, asyncssh.Error):
            pass

    def _to_target(self, data: bytes) -> None:
        if self.up is not None:
            self._last_input = time.monotonic()
            self._guarded(lambda: self.up.write(data))  # type: ignore[union-attr]

    def _block_up(self, why: str, on: bool) -> None:
        before = bool(self._up_blocks)
        (self._up_blocks.add if on else self._up_blocks.discard)(why)
        if self.up is not None and before != bool(self._up_blocks):
            (self.up.pause_reading if self._up_blocks else self.up.resume_reading)()

    def _block_client(self, why: str, on: bool) -> None:
        before = bool(self._client_blocks)
        (self._client_blocks.add if on else self._client_blocks.discard)(why)
        if self.chan is not None and before != bool(self._client_blocks):
            (self.chan.pause_reading if self._client_blocks else self.chan.resume_reading)()

    def _tell(self, message: str) -> None:
        """A message from the gateway to the user, recorded as what the user saw."""
        chan = self.chan
        if chan is None or self._closed:
            return
        if self.term is not None:
            data = say(message)
            self._guarded(lambda: chan.write(data))
            self.s.tape.add(self.number, "o", data)
            if self.watcher is not None:
                self.watcher.output(data)
        else:
            data = f"gatewatch: {message}\n".encode()
            self._guarded(lambda: chan.write_stderr(data))
            self.s.tape.add(self.number, "e", data)

    def _refuse(self, message: str, status: int) -> None:
        if self.chan is None or self._closed:
            return
        self._tell(message)
        self._exit = ("status", status)
        self._guarded(lambda: self.chan.exit(status))  # type: ignore[union-attr]

    # --- opening --------------------------------------------------------------------------

    async def _start(self) -> None:
        """Judge what the channel is for, record it, open the twin channel on the target."""
        try:
            await self._open()
        except TargetUnavailable as exc:
            if self._seq is not None:
                self.s.end_command(self._seq, "error", None, str(exc), command=self.kind)
            self._refuse(str(exc), 255)
        except Exception as exc:  # a bug in one channel must not take the engine down
            log.exception("session %s channel %d failed", self.s.session_id, self.number)
            self._refuse(f"gateway error: {type(exc).__name__}", 255)

    async def _open(self) -> None:
        try:
            await self.s.wait_open()
        except StoreError:
            self._refuse("the gateway cannot record sessions right now, so it runs nothing", 255)
            return
        if self.kind in ("exec", "subsystem"):
            text = self.command if self.kind == "exec" else f"sftp (subsystem {self.subsystem})"
            assert text is not None
            if self.kind == "exec":
                self._reads_commands = _reads_commands(text, self.term is not None)
            self._data_channel = self.kind == "subsystem" or _transfers_files(text)
            admission = await self.s.admit(text, self.kind, self._tell)
            self._seq = admission.seq
            if not admission.allowed:
                self._refuse(admission.message, 126 if admission.blocked else 1)
                return
        target = await self.s.target()
        if self._closed:
            return
        env = {k: v for k, v in (self.chan.get_environment() if self.chan else {}).items()
               if k == "LANG" or k.startswith("LC_")}
        kwargs: dict[str, Any] = {"env": env, "encoding": None}
        if self.term is not None:
            term_type, term_size, term_modes = self.term
            kwargs.update(term_type=term_type, term_size=term_size, term_modes=term_modes)
            if self.kind == "shell" or self._reads_commands:
                self.watcher = LineWatcher(term_size[0] or 80, term_size[1] or 24)
            self.s.tape.mark_size(self.number, term_size[0], term_size[1])
        if self.kind == "exec":
            kwargs["command"] = self.command
        elif self.kind == "subsystem":
            kwargs["subsystem"] = self.subsystem
        opening = spawn(target.create_session(lambda: _TargetSide(self), **kwargs),
                        name=f"ssh-open-{self.s.session_id}-{self.number}")
        try:
            up, _ = await asyncio.shield(opening)
        except asyncio.CancelledError:
            # the client left while the target opened its side: close that side once open
            opening.add_done_callback(
                lambda f: f.cancelled() or f.exception() is not None or f.result()[0].close())
            raise
        except (asyncssh.Error, OSError) as exc:
            raise TargetUnavailable(f"the target refused the channel: {exc}") from exc
        if self._closed:  # the client left while the target opened its side
            up.close()
            return
        self.up = up
        size = self._size
        if size is not None and self.term is not None and size != self.term[1]:
            self._guarded(lambda: up.change_terminal_size(*size))
        if self.s.tape.pressed:
            self._up_blocks.add("store")
        if self._up_blocks:
            up.pause_reading()
        self._pump()

    # --- client input ---------------------------------------------------------------------

    def _enqueue(self, data: bytes | None) -> None:
        self._queue.append(data)
        if data:
            self._queued += len(data)
            if self._queued > _QUEUE_MAX:
                self._block_client("queued", True)
        self._pump()

    def _pump(self) -> None:
        """Hand queued input to the target in order, stopping at a line to be judged."""
        while self._queue and not self._judging and self.up is not None and not self._closed:
            data = self._queue.popleft()
            if data is None:
                self._end_of_input()
                continue
            self._queued -= len(data)
            if self.kind != "shell" and self._reads_commands is None:
                if self.term is None:  # what is typed at a terminal is not recorded
                    self.s.tape.add(self.number, "i", data)
                self._to_target(data)
            elif self.watcher is not None:
                self._keys(data)
            else:
                self._lines(data)
        if self._queued <= _QUEUE_MAX // 2:
            self._block_client("queued", False)

    def _end_of_input(self) -> None:
        if self.kind == "shell" and self.watcher is None and self._partial:
            self._queue.appendleft(None)  # the last line has no newline: judge it first
            line, self._partial = self._partial, b""
            self._judging = True
            self._spawn(self._judge_plain_line(line), "line")
            return
        if self.up is not None:
            self._guarded(self.up.write_eof)  # type: ignore[union-attr]

    def _keys(self, data: bytes) -> None:
        """A terminal: keys go through; Enter waits for the verdict on the line on screen."""
        assert self.watcher is not None
        enter = find_enter(data)
        self.watcher.typed()
        keys = data if enter < 0 else data[:enter]
        if b"\x03" in keys or b"\x04" in keys:  # the shell drops an unfinished command
            self._continued = ""
            self._typed.clear()
            self.watcher.forget_prompt()
        self._typed += keys
        if enter < 0:
            self._to_target(data)
            return
        if enter:
            self._to_target(data[:enter])
        if len(data) > enter + 1:
            rest = data[enter + 1:]
            self._queue.appendleft(rest)
            self._queued += len(rest)
        self._judging = True
        self._spawn(self._judge_screen_line(data[enter:enter + 1]), "line")

    def _lines(self, data: bytes) -> None:
        """No terminal: every line of input is a command for the shell."""
        self._partial += data
        cut = self._partial.find(b"\n")
        if cut < 0:
            if len(self._partial) > _LINE_MAX:  # judge what there is rather than hold it all
                cut = len(self._partial) - 1
            else:
                return
        line, rest = self._partial[:cut + 1], self._partial[cut + 1:]
        self._partial = b""
        if rest:
            self._queue.appendleft(rest)
            self._queued += len(rest)
        self._judging = True
        self._spawn(self._judge_plain_line(line), "line")

    async def _judge_plain_line(self, line: bytes) -> None:
        text = line.decode(errors="replace").rstrip("\r\n")
        await self._judged(text, (text,), line, lenient=self._reads_commands == "other",
                           terminal=False)

    async def _judge_screen_line(self, enter: bytes) -> None:
        assert self.watcher is not None
        await self._echoed()
        lenient = self.watcher.full_screen or self._reads_commands == "other"
        seen = self.watcher.line()
        typed, self._typed = _edited(bytes(self._typed)), bytearray()
        if seen.incomplete and not lenient:
            self._after_verdict(Admission(False, 0, "the line is longer than the screen, so "
                                          "the gateway cannot read it whole; run it with exec "
                                          "or from a script"), enter, terminal=True)
            return
        if not seen.text and typed.strip():
            await self._unseen(typed, enter)
            return
        await self._judged(seen.text, seen.readings, enter, lenient=lenient, terminal=True)

    async def _unseen(self, typed: str, enter: bytes) -> None:
        """Keys were typed but the screen shows nothing (echo is off: a password, or
        ``stty -echo``). Judge what the keys spell; record it only if it is refused, since it
        may well be a password."""
        judgement = self.s.judge((typed,), lenient=True)
        if judgement.action == "allow":
            self._after_verdict(Admission(True, 0), enter, terminal=True)
            return
        admission = await self.s.admit("(typed without echo)", "shell", self._tell,
                                       readings=(typed,), lenient=True)
        self._after_verdict(admission, enter, terminal=True)

    async def _judged(self, text: str, readings: tuple[str, ...], send: bytes, *,
                      lenient: bool, terminal: bool) -> None:
        """Decide one line, then send it on (``send``: the Enter key or the line's bytes), or
        abort it."""
        try:
            if self._continued:
                text = self._continued + text
                readings = tuple(self._continued + r for r in readings)
            if _ends_continued(text) and not lenient:
                # the shell waits for the rest: nothing runs yet, judge it whole later
                self._continued = text[:-1]
                self._judging = False
                self._to_target(send)
                self._pump()
                return
            self._continued = ""
            if not text.strip():
                self._judging = False
                self._to_target(send)
                self._pump()
                return
            admission = await self.s.admit(text, "shell", self._tell, readings=readings,
                                           lenient=lenient)
            self._after_verdict(admission, send, terminal)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("session %s: judging a command line failed", self.s.session_id)
            self._after_verdict(Admission(False, 0, "gateway error while judging the line"),
                                send, terminal)

    def _after_verdict(self, admission: Admission, send: bytes, terminal: bool) -> None:
        if self._closed:
            return
        if admission.allowed:
            if admission.seq:
                self.s.end_command(admission.seq, "ok", None, None, command="shell")
            self._judging = False
            self._to_target(send)
            self._pump()
            return
        # Not run. At a terminal the line is aborted in the shell (Ctrl-C discards it and any
        # continuation lines); what was typed or pasted after it is dropped, an EOF kept.
        if terminal:
            self._to_target(b"\x03")
        self._tell(admission.message)
        kept = [item for item in self._queue if item is None]
        self._queue = deque(kept)
        self._queued = 0
        self._judging = False
        self._pump()

    async def _echoed(self) -> None:
        """Let what was typed reach the screen before the line is read: wait for output that
        came after the last key sent, then for a moment of silence (bounded)."""
        deadline = time.monotonic() + _ECHO_WAIT
        while time.monotonic() < deadline:
            if self._last_output >= self._last_input or not self._last_input:
                last = self._last_output
                await asyncio.sleep(_QUIET)
                if self._last_output == last:
                    return
            else:
                await asyncio.sleep(_QUIET / 2)

    # --- from the target ------------------------------------------------------------------

    def from_target(self, data: bytes, datatype: int | None) -> None:
        self._last_output = time.monotonic()
        stderr = datatype == EXTENDED_DATA_STDERR
        if self.watcher is not None and not stderr:
            # the line watcher sees the screen as the shell drew it: masking must not hide a
            # command from judgement (nor hold back its echo)
            self.watcher.output(data)
        masking = self.s.masking
        if masking is not None and masking.active and masking.values is not None:
            masker = self._maskers.get(stderr)
            if masker is None:
                masker = self._maskers[stderr] = StreamMasker(masking.values)
            if self._data_channel:
                # a file transfer protocol (sftp, scp, rsync): rewriting its bytes would break
                # it, so they reach the client as they are; the recording gets them masked
                self._record_masked(masker, data, stderr)
                self._send(data, datatype)
                return
            data = masker.feed(data)
            self._count(masker)
            if masker.held and self._flush_timer is None and self.term is not None:
                # at a terminal a prompt or an echoed key has no line break after it: release
                # it once the target is quiet for a moment (without a terminal, output is held
                # to the end of its line, or MAX_HOLD, or the end of the stream)
                self._flush_timer = asyncio.get_running_loop().call_later(
                    _MASK_QUIET, self._flush_masked)
            if not data:
                return
        self._emit(data, datatype)

    def _flush_masked(self) -> None:
        self._flush_timer = None
        for stderr, masker in self._maskers.items():
            if masker.held:
                if time.monotonic() - self._last_output < _MASK_QUIET:
                    self._flush_timer = asyncio.get_running_loop().call_later(
                        _MASK_QUIET, self._flush_masked)
                    return
                data = masker.flush()
                self._count(masker)
                if data:
                    self._emit(data, EXTENDED_DATA_STDERR if stderr else None)

    def _count(self, masker: StreamMasker) -> None:
        if masker.counts:
            assert self.s.masking is not None
            for detector, n in masker.counts.items():
                self.s.masked[self.s.masking.count_key(detector)] += n
            masker.counts.clear()

    def _record_masked(self, masker: StreamMasker, data: bytes, stderr: bool) -> None:
        masked = masker.feed(data)
        self._count(masker)
        if masked:
            self.s.tape.add(self.number, "e" if stderr else "o", masked)

    def _send(self, data: bytes, datatype: int | None) -> None:
        chan = self.chan
        if chan is not None and not self._closed:
            self._guarded(lambda: chan.write(data, datatype))

    def _emit(self, data: bytes, datatype: int | None) -> None:
        stderr = datatype == EXTENDED_DATA_STDERR
        self.s.tape.add(self.number, "e" if stderr else "o", data)
        chan = self.chan
        if chan is not None and not self._closed:
            self._guarded(lambda: chan.write(data, datatype))

    def target_eof(self) -> None:
        self._release_masked()
        if self.chan is not None and not self._closed:
            self._guarded(self.chan.write_eof)  # type: ignore[union-attr]

    def target_exit(self, how: str, value: Any) -> None:
        self._exit = (how, value)

    def _release_masked(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        for stderr, masker in self._maskers.items():
            data = masker.flush()
            self._count(masker)
            if data and self._data_channel:  # already sent as it was: only the recording
                self.s.tape.add(self.number, "e" if stderr else "o", data)
            elif data:
                self._emit(data, EXTENDED_DATA_STDERR if stderr else None)

    def target_closed(self, exc: Exception | None) -> None:
        self._release_masked()
        if self._seq is not None:
            how, value = self._exit or ("", None)
            status: int | None = value if how == "status" else None
            error = None if status == 0 else (
                f"exit status {status}" if how == "status" else
                f"signal {value and value[0]}" if how == "signal" else
                "the target closed the channel")
            self.s.end_command(self._seq, "ok" if status == 0 else "error", status, error,
                               command=self.kind)
        chan = self.chan
        if chan is None or self._closed:
            return
        if self._exit is None:
            self._guarded(chan.close)
        elif self._exit[0] == "signal":
            signal, core_dumped, msg, lang = self._exit[1]
            self._guarded(lambda: chan.exit_with_signal(signal, core_dumped, msg, lang))
        else:
            status_ = self._exit[1]
            self._guarded(lambda: chan.exit(status_))


class _TargetSide(asyncssh.SSHClientSession):  # type: ignore[type-arg]
    def __init__(self, bridge: ChannelBridge) -> None:
        self.bridge = bridge

    def data_received(self, data: bytes, datatype: int | None) -> None:
        self.bridge.from_target(data, datatype)

    def eof_received(self) -> bool:
        self.bridge.target_eof()
        return True

    def exit_status_received(self, status: int) -> None:
        self.bridge.target_exit("status", status)

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str,
                             lang: str) -> None:
        self.bridge.target_exit("signal", (signal, core_dumped, msg, lang))

    def pause_writing(self) -> None:
        self.bridge._block_client("target", True)

    def resume_writing(self) -> None:
        self.bridge._block_client("target", False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.bridge.target_closed(exc)
