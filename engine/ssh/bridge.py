"""One client channel and its twin on the target, relayed byte for byte and teed to the tape.

Flow control goes both ways: when the client cannot take more (asyncssh calls
``pause_writing`` on our server session) the target channel stops being read, and when the
target cannot take more the client channel stops being read; the tape's back-pressure stops
reading the target too. So no buffer grows with what a peer sends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import asyncssh
from asyncssh import EXTENDED_DATA_STDERR

from engine.ssh.lines import LineWatcher, find_enter
from engine.ssh.session import SshSession
from engine.ssh.upstream import TargetUnavailable
from engine.tasks import spawn
from store import StoreError

log = logging.getLogger(__name__)

# Output filter hook (masking plugs in here): bytes from the target → bytes for the client
# and the recording. It must keep state across calls for values split between chunks.
OutputFilter = Callable[[bytes], bytes]

_HELD_INPUT_MAX = 64 * 1024  # typed ahead while a line is judged; beyond it, reading pauses


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
        self.watcher: LineWatcher | None = None
        self.output_filter: OutputFilter | None = None
        # Client input waiting (for the target, or for a verdict); None stands for EOF.
        self._held: list[bytes | None] = []
        self._held_size = 0
        self._judging = False
        self._seq: int | None = None  # the exec/subsystem command's record
        self._up_blocks: set[str] = set()  # why the target channel is not read
        self._client_blocks: set[str] = set()  # why the client channel is not read
        self._exit: tuple[str, Any] | None = None
        self._closed = False

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
        spawn(self._start(), name=f"ssh-channel-{self.s.session_id}-{self.number}")

    def data_received(self, data: bytes, datatype: int | None) -> None:
        if self.up is None or self._judging or self._held:
            self._hold(data)
            return
        self._from_client(data)

    def eof_received(self) -> bool:
        if self.up is not None and not self._held and not self._judging:
            self.up.write_eof()
        else:
            self._held.append(None)  # EOF after what is held
        return True  # half-close: the client still reads output

    def terminal_size_changed(self, width: int, height: int, pixwidth: int,
                              pixheight: int) -> None:
        self.s.tape.mark_size(self.number, width, height)
        if self.watcher is not None:
            self.watcher.resize(width, height)
        if self.up is not None:
            self.up.change_terminal_size(width, height, pixwidth, pixheight)

    def signal_received(self, signal: str) -> None:
        if self.up is not None:
            self.up.send_signal(signal)

    def break_received(self, msec: int) -> bool:
        if self.up is not None:
            self.up.send_break(msec)
        return True

    def pause_writing(self) -> None:
        self._block_up("client", True)

    def resume_writing(self) -> None:
        self._block_up("client", False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self in self.s.bridges:
            self.s.bridges.remove(self)
        if self.up is not None:
            self.up.close()
        if self._seq is not None and self._exit is None:
            self.s.end_command(self._seq, "interrupted", None, "the client closed the channel",
                               command=self.kind)

    # --- the gateway's side ---------------------------------------------------------------

    def pressure(self, on: bool) -> None:
        self._block_up("store", on)

    def close_with(self, message: str) -> None:
        if self.chan is not None and not self._closed:
            self._tell(message)
            self.chan.exit(255)

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

    def _hold(self, data: bytes) -> None:
        self._held.append(data)
        self._held_size += len(data)
        if self._held_size > _HELD_INPUT_MAX:
            self._block_client("held", True)

    def _tell(self, message: str) -> None:
        """A message from the gateway to the user, recorded as what the user saw."""
        if self.chan is None or self._closed:
            return
        if self.term is not None:
            data = say(message)
            self.chan.write(data)
            self.s.tape.add(self.number, "o", data)
            if self.watcher is not None:
                self.watcher.output(data)
        else:
            data = f"gatewatch: {message}\n".encode()
            self.chan.write_stderr(data)
            self.s.tape.add(self.number, "e", data)

    def _refuse(self, message: str, status: int) -> None:
        if self.chan is None or self._closed:
            return
        self._tell(message)
        self._exit = ("status", status)
        self.chan.exit(status)

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
            admission = await self.s.admit(text, self.kind, self._tell)
            self._seq = admission.seq
            if not admission.allowed:
                self._refuse(admission.message, 126 if "blocked" in admission.message else 1)
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
            if self.kind == "shell":
                self.watcher = LineWatcher(term_size[0] or 80, term_size[1] or 24)
            self.s.tape.mark_size(self.number, term_size[0], term_size[1])
        if self.kind == "exec":
            kwargs["command"] = self.command
        elif self.kind == "subsystem":
            kwargs["subsystem"] = self.subsystem
        try:
            self.up, _ = await target.create_session(lambda: _TargetSide(self), **kwargs)
        except (asyncssh.Error, OSError) as exc:
            raise TargetUnavailable(f"the target refused the channel: {exc}") from exc
        if self._up_blocks:
            self.up.pause_reading()
        self._release()

    def _release(self) -> None:
        """Send, in order, what the client sent while we were not ready; stop again at a line
        that must be judged. Reading from the client resumes only once all of it is out."""
        while self._held and not self._judging and self.up is not None:
            data = self._held.pop(0)
            if data is None:
                self.up.write_eof()
            else:
                self._held_size -= len(data)
                self._from_client(data)
        if not self._held:
            self._held_size = 0
            self._block_client("held", False)

    def _from_client(self, data: bytes) -> None:
        assert self.up is not None
        watcher = self.watcher
        if watcher is None:
            if self.term is None:  # a terminal's input is not recorded (passwords)
                self.s.tape.add(self.number, "i", data)
            self.up.write(data)
            return
        if watcher.full_screen:
            self.up.write(data)
            return
        enter = find_enter(data)
        if enter < 0:
            watcher.typed()
            self.up.write(data)
            return
        if enter:
            watcher.typed()
            self.up.write(data[:enter])
        self._judging = True
        self._held.insert(0, data[enter:])
        self._held_size += len(data) - enter
        spawn(self._judge_line(), name=f"ssh-line-{self.s.session_id}-{self.number}")

    async def _judge_line(self) -> None:
        try:
            await self._judge_line_inner()
        except Exception:
            log.exception("session %s: judging a command line failed", self.s.session_id)
            self._refuse("gateway error while judging the command line", 255)

    async def _judge_line_inner(self) -> None:
        assert self.watcher is not None and self.up is not None
        await self._quiet()
        line = self.watcher.line()
        if not line:
            self._judging = False
            self._release()
            return
        admission = await self.s.admit(line, "shell", self._tell)
        if self._closed:
            return
        first = self._held[0] if self._held else None
        enter = first[:1] if first else b"\r"
        if admission.allowed:
            self.s.end_command(admission.seq, "ok", None, None, command="shell")
            self._judging = False
            if first:
                self._held_size -= 1
                if first[1:]:
                    self._held[0] = first[1:]
                else:
                    self._held.pop(0)
            self.up.write(enter)
            self._release()
            return
        # Not run: abort the line in the shell (Ctrl-C discards it, continuation lines too),
        # drop whatever was typed or pasted after it, and tell the user why.
        self.up.write(b"\x03")
        self._tell(admission.message)
        self._judging = False
        self._held, self._held_size = [], 0
        self._block_client("held", False)

    async def _quiet(self) -> None:
        """Let the echo of what was typed reach the screen: wait until the target has been
        silent for a moment (at most a fraction of a second)."""
        import asyncio

        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            last = self._last_output
            await asyncio.sleep(0.02)
            if self._last_output == last:
                return

    _last_output = 0.0

    # --- from the target ------------------------------------------------------------------

    def from_target(self, data: bytes, datatype: int | None) -> None:
        self._last_output = time.monotonic()
        if self.output_filter is not None:
            data = self.output_filter(data)
        stderr = datatype == EXTENDED_DATA_STDERR
        self.s.tape.add(self.number, "e" if stderr else "o", data)
        if self.watcher is not None and not stderr:
            self.watcher.output(data)
        if self.chan is not None and not self._closed:
            self.chan.write(data, datatype)

    def target_eof(self) -> None:
        if self.chan is not None and not self._closed:
            self.chan.write_eof()

    def target_exit(self, how: str, value: Any) -> None:
        self._exit = (how, value)

    def target_closed(self, exc: Exception | None) -> None:
        if self._seq is not None:
            how, value = self._exit or ("", None)
            status: int | None = value if how == "status" else None
            error = None if status == 0 else (
                f"exit status {status}" if how == "status" else
                f"signal {value and value[0]}" if how == "signal" else
                "the target closed the channel")
            self.s.end_command(self._seq, "ok" if status == 0 else "error", status, error,
                               command=self.kind)
        if self.chan is None or self._closed:
            return
        if self._exit is None:
            self.chan.close()
        elif self._exit[0] == "signal":
            signal, core_dumped, msg, lang = self._exit[1]
            self.chan.exit_with_signal(signal, core_dumped, msg, lang)
        else:
            self.chan.exit(self._exit[1])


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
