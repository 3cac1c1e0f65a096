"""One client channel and its twin on the target, relayed byte for byte and teed to the tape.

``ChannelBridge`` is the asyncssh side of a channel and nothing more: it opens the twin channel
on the target, feeds what happens to the channel's ``InputGate`` (``gate.py``, where client
input is held until its line is judged) and carries out the actions that come back — writing to
the target, asking the session to judge and record a line (``SshSession.admit``, awaited in a
task of its own; its answer goes back to the gate), telling the user, timers. Output from the
target is masked (``output.py``) before it reaches the client or the tape.

Flow control goes both ways: when the client cannot take more (asyncssh calls
``pause_writing`` on our server session) the target channel stops being read, and when the
target cannot take more the client channel stops being read; the tape's back-pressure stops
reading the target too, and the gate's queue of held input stops reading the client. So no
buffer grows with what a peer sends. Writes to a channel that is closing are dropped: a peer
going away is not an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import asyncssh
from asyncssh import EXTENDED_DATA_STDERR

from engine.masking.transfer import TransferError, TransferRefused
from engine.ssh.gate import (
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
from engine.ssh.output import (
    ChannelOutput,
    InputRecord,
    Out,
    prints_no_escapes,
    transfer_kind,
    transfers_files,
    transforms_output,
)
from engine.ssh.session import Admission, SshSession
from engine.ssh.shellstate import bare_shell, leaves_state
from engine.ssh.upstream import TargetUnavailable
from engine.tasks import spawn
from store import StoreError

log = logging.getLogger(__name__)

# Output held back by masking is released after this much quiet: at a terminal only a tail it
# cannot show at once and rewrite later (engine.masking.terminal), and an SFTP reply.
_MASK_QUIET = 0.02
_JUDGE_FAILED = "gateway error while judging the line"


def say(text: str) -> bytes:
    return f"\r\n[gatewatch] {text}\r\n".encode()


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
        self.gate: InputGate | None = None  # from session_started on
        self._seq: int | None = None  # the exec/subsystem command's record
        self._up_blocks: set[str] = set()  # why the target channel is not read
        self._client_blocks: set[str] = set()  # why the client channel is not read
        self._exit: tuple[str, Any] | None = None
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake: asyncio.TimerHandle | None = None  # the gate's WakeAfter
        self._last_output = 0.0
        self._size: tuple[int, int, int, int] | None = None  # the latest window size
        self._output: ChannelOutput | None = None  # its masking, once output comes
        self._data_channel = False  # sftp, scp, rsync: file transfer protocols
        self._transfer: str | None = None  # "sftp", "scp", "rsync" (transfer_kind)
        self._flush_timer: asyncio.TimerHandle | None = None
        self._input: InputRecord | None = None  # the recording of data channel input

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
        size = self._size or (self.term[1] if self.term is not None else None)
        settings = self.s.conn.ssh
        strict = settings is not None and settings.interactive == "strict"
        self.gate = for_channel(self.kind, self.command, size[:2] if size else None,
                                strict=strict)
        for notice in self.s.notices():  # what the session said before a channel could show it
            self.tell(notice)
        self._spawn(self._start(), "channel")

    def data_received(self, data: bytes, datatype: int | None) -> None:
        self._feed(ClientData(data))

    def eof_received(self) -> bool:
        self._feed(ClientEof())
        return True  # half-close: the client still reads output

    def terminal_size_changed(self, width: int, height: int, pixwidth: int,
                              pixheight: int) -> None:
        self.s.tape.mark_size(self.number, width, height)
        self._size = (width, height, pixwidth, pixheight)
        self._feed(Resized(width, height))
        if self._output is not None:
            self._output.resize(width, height)
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

    def tell(self, message: str) -> None:
        """A message from the gateway to the user, recorded as what the user saw."""
        chan = self.chan
        if chan is None or self._closed:
            return
        if self.term is not None:
            data = say(message)
            self._commit_masked()
            self._guarded(lambda: chan.write(data))
            self.s.tape.add(self.number, "o", data)
            self._feed(GatewayOutput(data))
        else:
            data = f"gatewatch: {message}\n".encode()
            self._guarded(lambda: chan.write_stderr(data))
            self.s.tape.add(self.number, "e", data)

    def close_with(self, message: str) -> None:
        if self.chan is not None and not self._closed:
            self.tell(message)
            self._guarded(lambda: self.chan.exit(255))  # type: ignore[union-attr]

    def tainted(self, *, told: bool = False) -> None:
        """The session left state behind that the gateway cannot follow (``SshSession.taint``):
        this channel's output is masked whole from now on; a file transfer, whose protocol
        cannot be masked whole, is closed (what it sends may have been written by that line).
        ``told``: the session told the user why already."""
        if self._output is None or self._closed:
            return
        if self._output.transfer == "allow":
            return  # passed unmasked by the connection's settings anyway
        if self._output.transfer is not None:
            self._output = None
            if self.up is not None:
                self.up.close()
            self.close_with("the file transfer was closed: this connection ran a command whose "
                            "writes the gateway cannot follow, while output is masked")
            return
        if not self._output.whole and self.term is not None and not told:
            self.tell("from here on this connection's output is masked whole: that line may "
                      "leave behind files, variables or aliases the gateway cannot follow "
                      "(open a new connection to read output again)")
        self._output.taint()

    def cancel(self) -> None:
        """Stop waiting for echoes, verdicts and approvals (their requests are withdrawn)."""
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
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
        if self._data_channel and (output := self._masked_output()) is not None:
            try:
                output.sent(data)  # SFTP: which file and offset each read asks for
            except TransferError as exc:
                log.info("session %s: file transfer closed: %s", self.s.session_id, exc)
                self.close_with(f"the file transfer was closed: {exc}"
                                if isinstance(exc, TransferRefused) else
                                "the file transfer was closed: the gateway could not read it")
                return
        if b"\x1a" in data and self._output is not None:  # Ctrl-Z: a job may go on later
            self._output.suspended()
        if self.up is not None:
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

    def _refuse(self, message: str, status: int) -> None:
        if self.chan is None or self._closed:
            return
        self.tell(message)
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
            self._data_channel = self.kind == "subsystem" or transfers_files(text)
            if self._data_channel:
                self._transfer = transfer_kind(self.command if self.kind == "exec" else None)
            admission = await self.s.admit(text, self.kind, self.tell)
            self._seq = admission.seq
            if not admission.allowed:
                self._refuse(admission.message, 126 if admission.blocked else 1)
                return
            refusal = self._transfer_refusal()
            if refusal is not None:  # recorded: the command's record says why it did not run
                self.s.end_command(self._seq, "error", None, refusal, command=self.kind)
                self._refuse(refusal, 1)
                return
            if ChannelOutput.masks(self.s.masking) and self._leaves_state():
                self.s.taint()  # before the twin channel opens
        target = await self.s.target()
        if self._closed:
            return
        env = {k: v for k, v in (self.chan.get_environment() if self.chan else {}).items()
               if k == "LANG" or k.startswith("LC_")}
        kwargs: dict[str, Any] = {"env": env, "encoding": None}
        if self.term is not None:
            term_type, term_size, term_modes = self.term
            kwargs.update(term_type=term_type, term_size=term_size, term_modes=term_modes)
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
        self._feed(TargetOpened())

    def _leaves_state(self) -> bool:
        """An exec or subsystem that may leave state behind that changes what later commands
        print (``leaves_state``): a file transfer that writes (sftp, scp -t, an rsync upload)
        too."""
        if not self._data_channel:
            return leaves_state(self.command or "")
        return self._transfer in ("sftp", "upload") or (
            self._transfer == "scp" and "-t" in (self.command or "").split())

    def _transfer_refusal(self) -> str | None:
        """Why a file transfer may not run (``ssh.transfers``), or None."""
        if not self._data_channel:
            return None
        settings = self.s.conn.ssh
        policy = settings.transfers if settings is not None else "mask"
        if self.s.tainted and policy != "allow" and ChannelOutput.masks(self.s.masking):
            return ("this connection ran a command whose writes the gateway cannot follow, so "
                    "its output is masked whole and files cannot be transferred on it; open "
                    "a new connection")
        if policy == "refuse":
            return ("file transfers (sftp, scp, rsync) are refused on this connection "
                    "(ssh.transfers: refuse); ask an administrator for another way")
        if policy == "mask" and ChannelOutput.masks(self.s.masking) \
                and self._transfer not in ("sftp", "scp", "upload"):
            return ("this file transfer cannot be masked (use sftp or scp); "
                    "the connection masks transfers (ssh.transfers: mask)")
        return None

    # --- client input: the gate ---------------------------------------------------------------

    def _feed(self, event: Event) -> None:
        gate = self.gate
        if gate is None or self._closed:
            return
        try:
            actions = gate.handle(event)
        except Exception:  # a bug: this channel's input stops, nothing more reaches the target
            log.exception("session %s channel %d: input gate failed", self.s.session_id,
                          self.number)
            self.gate = None
            self.close_with("gateway error while reading input")
            return
        for action in actions:
            self._carry_out(action)

    def _carry_out(self, action: Action) -> None:
        match action:
            case SendToTarget(data):
                self._to_target(data)
            case SendEof():
                if self.up is not None:
                    self._guarded(self.up.write_eof)
            case RecordInput(data):  # an exec's stdin: recorded masked (invariant 6)
                if self._input is None:
                    self._input = InputRecord(self.s.masking, self.s.masked,
                                              sftp=self._transfer == "sftp")
                if recorded := self._input.feed(data):
                    self.s.tape.add(self.number, "i", recorded)
            case Judge():
                self._spawn(self._judge(action), "line")
            case Tell(message):
                self.tell(message)
            case EchoToClient(data):
                self._echo(data)
            case LineSent(transforms, delimited, detaches, ends, taints, secret):
                if (output := self._masked_output()) is not None:
                    output.line_sent(transforms, delimited=delimited, detaches=detaches,
                                     ends=ends, secret=secret)
                    if taints:  # before the line reaches the shell
                        self.s.taint()
            case PauseClient():
                self._block_client("queued", True)
            case ResumeClient():
                self._block_client("queued", False)
            case WakeAfter(seconds):
                self._wake = asyncio.get_running_loop().call_later(seconds, self._woken)

    def _echo(self, data: bytes) -> None:
        """The gateway's line editor draws on the client's terminal: output that masking
        held back goes first, so that the echo lands after the prompt."""
        chan = self.chan
        if chan is None or self._closed:
            return
        self._commit_masked()
        self._guarded(lambda: chan.write(data))

    def _commit_masked(self) -> None:
        """Before the gateway writes on the terminal: masked output held back goes first, and
        what is shown can no longer be rewritten (the cursor moves)."""
        if self._output is not None:
            if self._flush_timer is not None:
                self._flush_timer.cancel()
                self._flush_timer = None
            for out in self._output.flush():
                self._emit(out)

    def _woken(self) -> None:
        self._wake = None
        self._feed(Wakeup())

    async def _judge(self, line: Judge) -> None:
        """Judge and record a line (an approval may take minutes), then tell the gate."""
        try:
            if line.unseen and self.s.judge(line.readings, lenient=True,
                                            cwd=line.cwd).action == "allow":
                admission = Admission(True, 0, cwd=line.cwd)  # not recorded: a password?
                self.s.follow_unseen(line.readings, line.cwd)  # a shell line typed blind?
            else:
                admission = await self.s.admit(line.text, "shell", self.tell,
                                               readings=line.readings, lenient=line.lenient,
                                               cwd=line.cwd, unseen=line.unseen)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("session %s: judging a command line failed", self.s.session_id)
            admission = Admission(False, 0, _JUDGE_FAILED)
        if self._closed:
            return
        if admission.allowed and admission.seq:
            self.s.end_command(admission.seq, "ok", None, None, command="shell")
        self._feed(Decided(admission.allowed, admission.message, admission.cwd))

    # --- from the target ------------------------------------------------------------------

    def from_target(self, data: bytes, datatype: int | None) -> None:
        self._last_output = time.monotonic()
        stderr = datatype == EXTENDED_DATA_STDERR
        if not stderr:
            # the gate sees the screen as the shell drew it: masking must not hide a command
            # from judgement (nor hold back its echo)
            self._feed(TargetOutput(data))
        output = self._masked_output()
        if output is None:
            self._emit(Out(stderr, data, data))
            return
        if output.transfer is None:
            # a file read here may have been marked since its line was judged (``tail -f``)
            self.s.recheck()
            output = self._masked_output() or output
        try:
            self._emit(output.feed(data, stderr))
        except TransferError as exc:  # not the protocol it claims: nothing more goes out
            log.info("session %s: file transfer closed: %s", self.s.session_id, exc)
            self._output = None
            if self.up is not None:
                self.up.close()
            self.close_with("the file transfer was closed: the gateway could not read it")
            return
        if output.held and self._flush_timer is None and (
                (self.term is not None and output.transfer is None) or output.quiet_flush):
            # at a terminal a prompt or an echoed key has no line break after it: release it
            # once the target is quiet for a moment (without a terminal, output is held to the
            # end of its line, or MAX_HOLD, or the end of the stream)
            self._flush_timer = asyncio.get_running_loop().call_later(
                _MASK_QUIET, self._flush_masked)

    def _masked_output(self) -> ChannelOutput | None:
        if self._output is None and ChannelOutput.masks(self.s.masking):
            assert self.s.masking is not None
            settings = self.s.conn.ssh
            transfer = None
            if self._data_channel:
                allowed = settings is not None and settings.transfers == "allow"
                transfer = ("allow" if allowed or self._transfer == "upload"
                            else self._transfer)
            size = self._size or (self.term[1] if self.term is not None else None)
            command = self.command or ""
            # a shell started by the exec whose lines are judged (bash -i) is a shell channel;
            # anything else that starts one (perl -e 'exec "bash"') is masked whole until its
            # first prompt, then command by command — when its output cannot forge that prompt
            shell = self.gate is not None and self.gate.shell_lines
            transforms = (self.kind == "exec" and not self._data_channel
                          and not (shell and bare_shell(command))
                          and (transforms_output(command) or leaves_state(command)))
            delimited = shell and prints_no_escapes(command)
            self._output = ChannelOutput(
                self.s.masking, self.s.masked, transfer=transfer,
                whole=transforms and not delimited, until_prompt=transforms and delimited,
                screen=size[:2] if size is not None else None,
                refuse=self.s.download_refusal)  # files written by transforms (sftp)
            if self.s.tainted and transfer is None:
                self._output.taint()
        return self._output

    def _flush_masked(self) -> None:
        self._flush_timer = None
        if self._output is None or not self._output.held:
            return
        if time.monotonic() - self._last_output < _MASK_QUIET:
            self._flush_timer = asyncio.get_running_loop().call_later(
                _MASK_QUIET, self._flush_masked)
            return
        for out in self._output.flush():
            self._emit(out)

    def _release_masked(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self._output is not None:
            for out in self._output.flush(end=True):
                self._emit(out)
        if self._input is not None and (recorded := self._input.flush()):
            self.s.tape.add(self.number, "i", recorded)

    def _emit(self, out: Out) -> None:
        """Output to the tape, and to the client."""
        if out.recorded:
            self.s.tape.add(self.number, "e" if out.stderr else "o", out.recorded)
        chan = self.chan
        if out.sent and chan is not None and not self._closed:
            datatype = EXTENDED_DATA_STDERR if out.stderr else None
            self._guarded(lambda: chan.write(out.sent, datatype))

    def target_eof(self) -> None:
        self._release_masked()
        if self.chan is not None and not self._closed:
            self._guarded(self.chan.write_eof)  # type: ignore[union-attr]

    def target_exit(self, how: str, value: Any) -> None:
        output = self._masked_output()  # a command that printed nothing has none yet
        if (output is not None and output.transfer is None and output.hides_status
                and (how, value) != ("status", 0)):
            # a transform's exit status (or the signal it chose) is a byte of what it read:
            # only its failure goes on (issue 14)
            how, value = "status", 1
        self._exit = (how, value)

    def target_closed(self, exc: Exception | None) -> None:
        self._release_masked()
        if self._exit is not None and self.kind in ("shell", "exec"):
            self.s.channel_exited(self.kind, *self._exit)
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
