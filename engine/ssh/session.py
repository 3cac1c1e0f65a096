"""One client's SSH connection through the gateway: the SSH front end of a ``Session``.

Identity, records, approvals, masking of texts, events and termination live in the
protocol-neutral ``engine.session.Session``; this class is its ``Transport`` (telling the user
goes to the open channels' stderr, refusing is a disconnect), owns the connection to the target
and the output recording (``Tape``), and judges the commands its channels run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import asyncssh

from engine.config import Connection
from engine.guardrail.commands import Cwd, could_be_shell
from engine.guardrail.guard import Judgement
from engine.guardrail.rules import SEVERITY, Verdict
from engine.identity import Identity
from engine.masking.policy import SessionMasking
from engine.session import AccessRefused, Session, SessionContext
from engine.ssh.lines import shell_reading
from engine.ssh.lingering import lingers
from engine.ssh.output import ChannelOutput, transfer_kind, transfers_files
from engine.ssh.shellstate import STARTUP_REFUSED, startup_write
from engine.ssh.tape import Tape
from engine.ssh.upstream import TargetUnavailable, connect_target
from engine.ssh.written import Memory, journal_for
from engine.tasks import spawn
from store import StoreError

log = logging.getLogger(__name__)


class Bridge(Protocol):
    """What a session needs of each of its channels."""

    def pressure(self, on: bool) -> None: ...
    def tell(self, message: str) -> None: ...
    def close_with(self, message: str) -> None: ...
    def cancel(self) -> None: ...
    def tainted(self, *, told: bool = False) -> None: ...


@dataclass(frozen=True)
class Admission:
    """The gateway's answer to one command: run it (recorded as ``seq``) or not, and why.
    ``blocked``: refused by a rule or by the gateway itself (exit status 126), as opposed to
    denied by an approver, expired, or not recorded (exit status 1)."""

    allowed: bool
    seq: int
    message: str = ""
    blocked: bool = False
    cwd: Cwd = None  # where a shell may be once the line ran (None: not known)


class AccessNotGiven(TargetUnavailable):
    """Just-in-time access was not given: the session never reaches its target."""


class SshSession:
    def __init__(self, ctx: SessionContext, conn: Connection, session_id: str,
                 client_addr: str, client_version: str) -> None:
        up = conn.upstream
        self.core = Session(ctx, conn, self, protocol="ssh", client_addr=client_addr,
                            application_name=client_version,
                            target=f"{up.user}@{up.host}:{up.port}", session_id=session_id)
        self.ctx = ctx
        self.conn = conn
        self.session_id = session_id
        self.seq = 0
        self.bridges: list[Bridge] = []
        self.client_conn: asyncssh.SSHServerConnection | None = None
        self._target: asyncio.Task[asyncssh.SSHClientConnection] | None = None
        self._notices: list[str] = []  # told before a channel was open to show them
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._opened.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.tape = Tape(ctx.recorder, session_id, self.core.started, self._pressure,
                         self._store_failed)
        # How the target last ended a channel by itself (the user typed exit, a command ran
        # to its end): a disconnect that follows is the user quitting (issue 16).
        self.quit: str | None = None
        # A line or command left state behind that changes what later ones print, which the
        # gateway cannot follow (``engine.ssh.shellstate``): from then on every channel's
        # output is masked whole (issue 14).
        self.tainted = False
        # Files written on the target by lines whose output the gateway could not read, by any
        # connection (``engine.ssh.written``): this one's view of them, once its identity is
        # known.
        self._memory: Memory | None = None
        # The lines whose readers may still be running (the last one, and those that left a
        # process running): checked again against marks made since (``recheck``).
        self._running: tuple[tuple[str, ...], Cwd, bool] | None = None
        self._left_running: deque[tuple[tuple[str, ...], Cwd, bool]] = deque(maxlen=64)
        self._journal_size: tuple[int, int, int] | None = None

    @property
    def identity(self) -> Identity | None:
        return self.core.identity

    @property
    def masking(self) -> SessionMasking | None:
        return self.core.masking

    @property
    def masked(self) -> Counter[str]:
        return self.core.masked

    @property
    def ended(self) -> bool:
        return self.core.ended

    # --- Transport ------------------------------------------------------------------------

    def tell(self, message: str) -> None:
        """To every open channel, on its stderr (or terminal); kept for channels to come."""
        for bridge in self.bridges:
            bridge.tell(message)
        if not self.bridges:
            self._notices.append(message)

    def notices(self) -> list[str]:
        """What the session said before a channel could show it (a channel shows them)."""
        said, self._notices = self._notices, []
        return said

    def refuse(self, message: str, *, denied: bool = False) -> None:
        """Open channels are told why on stderr; the disconnect says it too, for a client
        that had no channel open yet."""
        for bridge in list(self.bridges):
            bridge.close_with(message)
        if self.client_conn is not None:
            # An ended session is a clean close; access refused is an authorisation failure,
            # which clients report with its reason (asyncssh drops a clean close's reason).
            code = (asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE if denied
                    else asyncssh.DISC_BY_APPLICATION)
            with contextlib.suppress(OSError, asyncssh.Error):
                self.client_conn.disconnect(code, message)

    def close(self, reason: str) -> Awaitable[None]:
        for bridge in list(self.bridges):
            bridge.cancel()
        if self._target is not None:
            if self._target.done() and not self._target.cancelled() \
                    and self._target.exception() is None:
                self._target.result().close()
            else:
                self._target.cancel()
        if self.client_conn is not None:
            self.client_conn.close()
        if not self._opened.done():
            self._opened.set_exception(AccessNotGiven(f"the session ended: {reason}"))
        return self.tape.drain()  # the output, recorded before the session's close record

    def details(self) -> dict[str, Any]:
        return {"statements": self.seq, "channels": len(self.bridges),
                "recorded_bytes": self.tape.recorded_bytes}

    # --- life -----------------------------------------------------------------------------

    async def open(self, identity: Identity) -> None:
        """Authenticated: record the session (before anything reaches the target), register
        it, wait for just-in-time access where the connection asks for it, and start
        connecting to the target. Channels wait for this (``wait_open``)."""
        core = self.core
        core.admit(identity)  # the server checked the allow-lists before authenticating
        try:
            await core.record_open()
        except BaseException as exc:
            if not self._opened.done():
                self._opened.set_exception(exc if isinstance(exc, Exception)
                                           else StoreError("session not recorded"))
            raise
        if core.ended:
            return
        core.go_live()
        try:
            await core.access()
        except AccessRefused as exc:
            if not self._opened.done():
                self._opened.set_exception(AccessNotGiven(str(exc)))
            return
        if core.ended or self._opened.done():
            return
        self._target = spawn(connect_target(self.conn.upstream),
                             name=f"ssh-target-{self.session_id}")
        self._target.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._opened.set_result(None)

    async def wait_open(self) -> None:
        """Until the session's record is committed and access is given (StoreError if it
        could not be recorded, TargetUnavailable if access was not given)."""
        await asyncio.shield(self._opened)

    async def target(self) -> asyncssh.SSHClientConnection:
        """The connection to the target (TargetUnavailable if it cannot be had)."""
        await self.wait_open()
        assert self._target is not None
        return await asyncio.shield(self._target)

    def end(self, reason: str, status: str = "closed") -> None:
        if reason == "client disconnected" and self.quit is not None:
            reason = self.quit
        self.core.end(reason, status)

    def channel_exited(self, kind: str, how: str, value: Any) -> None:
        """The target ended a ``kind`` channel (shell, exec) with an exit status or signal."""
        ended = f"status {value}" if how == "status" else f"signal {value and value[0]}"
        what = "the shell" if kind == "shell" else "the command"
        self.quit = f"client quit ({what} ended: {ended})"

    def terminate(self, reason: str, message: str, status: str = "closed") -> None:
        self.core.terminate(reason, message, status)

    def _pressure(self, on: bool) -> None:
        for bridge in self.bridges:
            bridge.pressure(on)

    def _store_failed(self, exc: StoreError) -> None:
        log.error("session %s: output not recorded, session ended: %s", self.session_id, exc)
        self.terminate("store unwritable", "the gateway cannot record this session, so it "
                       "ends it", status="error")

    # --- commands -------------------------------------------------------------------------

    def taint(self, why: str | None = None) -> None:
        """Mask every channel's output whole from now on, those still to come too: a line left
        state behind (a file, a variable, an alias …) that a later plain reader could print
        transformed, or reads a file an earlier line left (``why``: told to the user, unless
        the output is masked whole already). Called before that line reaches the target."""
        told = False
        if why is not None and not self.tainted:
            self.tell(why)
            told = True
        if not self.tainted:
            log.info("session %s: output masked whole from now on (a line left state behind "
                     "that the gateway cannot follow)", self.session_id)
        self.tainted = True
        for bridge in list(self.bridges):
            bridge.tainted(told=told)

    def judge(self, readings: tuple[str, ...], *, lenient: bool = False,
              cwd: Cwd = None) -> Judgement:
        """The strictest verdict over every reading of a line (the first is the one shown).
        ``lenient``: a line that is not shell words (typed inside a full-screen program, or
        at a password prompt) is not refused for that alone — unless it could be shell (a
        separator, a keyword, a known program: bash reads more than the gateway's parser,
        so "does not parse" never lets shell through); the other readings are guesses, so
        only the first one's parse failure counts. ``cwd``: where the line runs, for its
        relative paths."""
        guard = self.core.guard
        assert guard is not None
        judgements = [guard.judge_command(r, cwd) for r in readings]
        first = judgements[0]
        counted = [first] if not (lenient and first.parse_error
                                  and not could_be_shell(readings[0])) else []
        counted += [j for j in judgements[1:] if not j.parse_error]
        if not counted:
            return Judgement("allow", Verdict("allow", None, "not shell words", readings[0]),
                             ())
        return max(counted, key=lambda j: SEVERITY[j.action])

    async def admit(self, text: str, kind: str,
                    on_held: Callable[[str], None] | None = None, *,
                    readings: tuple[str, ...] = (), lenient: bool = False,
                    cwd: Cwd = None, unseen: bool = False) -> Admission:
        """Judge a command, record it, and wait for an approval when a rule asks for one.
        Nothing reaches the target before the record is committed (invariant 1). An allowed
        line's admission says where the shell may be after it (``cwd``). Before it runs, the
        files it reads and writes are checked against, and added to, the files written by
        transforms (``engine.ssh.written``); a legacy scp download of one is refused."""
        lines = readings or (text,)
        refusal = (await self._download_refusal(text, kind)
                   or await self._transfer_refusal(text, kind))
        admission = await self._admit(text, kind, on_held, readings=lines, lenient=lenient,
                                      cwd=cwd, refusal=refusal)
        if admission.allowed and (kind == "shell" or (
                kind == "exec" and not transfers_files(text))):
            await self._target_known()
            # a transfer's files are the client's, or screened; a line typed into a program
            # (lenient) is the shell's only when it could be shell, as for its judgement
            self._follow_files(lines, cwd, shell=not lenient or could_be_shell(lines[0]),
                               blind=unseen)
        return admission

    async def _admit(self, text: str, kind: str, on_held: Callable[[str], None] | None, *,
                     readings: tuple[str, ...], lenient: bool, cwd: Cwd,
                     refusal: str | None) -> Admission:
        judgement = (self.judge(readings or (text,), lenient=lenient, cwd=cwd)
                     if kind != "subsystem" else None)
        after = judgement.facts.cwd_after if judgement and judgement.facts else None
        verdict = judgement.verdict if judgement is not None else None
        action = judgement.action if judgement is not None else "allow"
        if (action != "block" and not lenient and kind != "subsystem"
                and ChannelOutput.masks(self.masking)
                and any(startup_write(r, unreadable=not i)
                        for i, r in enumerate(readings or (text,)))):
            refusal = STARTUP_REFUSED  # the state later shells start with: not followed
        elif action == "block":
            refusal = None  # the rule's own refusal says why
        self.seq += 1
        seq = self.seq
        op = self.core.statement_record(
            seq, self._recorded(text), verdict="block" if refusal else action,
            rule="masking" if refusal else verdict.rule if verdict else None)
        await self.ctx.recorder.committed([op])
        self.core.running(op)
        if refusal:
            self.end_command(seq, "blocked", None, refusal)
            return Admission(False, seq, refusal, blocked=True)
        if verdict is None or action == "allow":
            return Admission(True, seq, cwd=after)
        if action == "block":
            hint = f" {verdict.hint}" if verdict.hint else ""
            message = f'blocked by rule "{verdict.rule}": {verdict.reason}.{hint}'
            self.end_command(seq, "blocked", None, message)
            return Admission(False, seq, message, blocked=True)
        return await self._review(seq, text, verdict.rule, verdict.reason, on_held, after)

    def _recorded(self, text: str) -> str:
        """A command line as the store keeps it (masked there): as the shell reads its words
        when that reading holds a value masking finds and the line as typed may hide it
        (``echo 4012''8888…``, ``4012\\8888…``, ``"4012"8888…``, ``$'\\x34'012…``: quote
        removal glues the pieces back together, the detectors never see them whole)."""
        reading = shell_reading(text)
        if (reading is None or reading == text or not ChannelOutput.masks(self.masking)
                or self.core.mask_text(reading, count=False) == reading):
            return text
        return reading

    async def _target_known(self) -> None:
        """Until the target is connected (or could not be): its host key says which machine
        it is, whatever name the connection gives it. An exec's command waits here for what it
        waits for next anyway."""
        if self._target is not None and not self._target.done():
            with contextlib.suppress(TargetUnavailable):
                await asyncio.shield(self._target)

    @property
    def memory(self) -> Memory | None:
        """This connection's view of the files written by transforms on its target (its host
        key once the target is connected)."""
        # a context built without engine settings (a unit test's) keeps no memory
        store: Path | None = getattr(self.ctx.settings, "store", None)
        if self._memory is None and self.identity is not None and store is not None:
            up = self.conn.upstream
            self._memory = Memory(journal_for(store), f"{up.host}:{up.port}",
                                  self.identity.name, self.session_id)
        target = self._target
        if (self._memory is not None and not self._memory.host_key and target is not None
                and target.done() and not target.cancelled() and target.exception() is None):
            key = target.result().get_server_host_key()
            self._memory.host_key = key.get_fingerprint() if key is not None else ""
        return self._memory

    def follow_unseen(self, readings: tuple[str, ...], cwd: Cwd) -> None:
        """A line typed without echo, let through unrecorded (a password, perhaps a shell line
        typed blind): followed like any, but no path of it is kept."""
        self._follow_files(readings, cwd, shell=False, blind=True)

    def _follow_files(self, lines: tuple[str, ...], cwd: Cwd, *, shell: bool,
                      blind: bool = False) -> None:
        """An allowed line of a masked connection is about to run: if it may read a file
        written by a transform, this connection's output is masked whole from now on; what it
        writes from output the gateway could not read is remembered for every later
        connection. (A connection whose output is not masked saw every value in clear: what it
        writes is its identity's to answer for, as what it types is.)"""
        memory = self.memory
        if memory is None or not ChannelOutput.masks(self.masking):
            return
        # typed without echo (a password perhaps): what does not parse is no shell line (what
        # follows it is masked whole at the terminal anyway, ``ChannelOutput.line_sent``)
        shell = shell and not blind
        left = memory.metadata()
        if left is not None:  # names, times, arguments made from data: any output may show
            self.taint(f"from here on this connection's output is masked whole: {left}")
        read = memory.read(lines, cwd, shell=shell)
        if read is not None:
            self.taint(f"from here on this connection's output is masked whole: {read}")
        made = memory.wrote(lines, cwd, unseen=self.tainted or read is not None, shell=shell,
                            blind=blind,
                            hide=lambda path: self.core.mask_text(path, count=False) != path)
        watched = (lines, cwd, shell)
        self._running = watched
        if lingers(lines[0], unreadable=shell):
            self._left_running.append(watched)
        self._journal_size = None  # its own marks count too (``cp marked y; cat y``)
        if any(m.metadata for m in made):
            self.taint("from here on this connection's output is masked whole: that line may "
                       "put what it read into file names, times or process arguments")

    def recheck(self) -> None:
        """Output is arriving: if a file a line of this connection may still be reading was
        marked since that line was judged (another connection's ``rev s >> x`` while
        ``tail -f x`` or ``sleep 4; cat x`` runs here; its own ``cp marked y; cat y``), mask
        this connection whole from now on — the output may be that transform's. Checked only
        when the journal has grown."""
        memory = self._memory
        if memory is None or self.tainted or self._running is None:
            return
        size = memory.journal.size()
        if size == self._journal_size:
            return
        self._journal_size = size
        for lines, cwd, shell in (*self._left_running, self._running):
            why = memory.read(lines, cwd, shell=shell)
            if why is not None:
                self.taint(f"from here on this connection's output is masked whole: {why} "
                           "(marked while a line of this connection that reads it ran)")
                return

    async def _transfer_refusal(self, text: str, kind: str) -> str | None:
        """Why a file transfer (sftp, scp) may not start: this identity put what it read,
        changed, into file names or times on this target (``Memory.metadata``), which a
        transfer's listings and attributes carry unmasked."""
        if not ((kind == "subsystem" or (kind == "exec" and transfers_files(text)))
                and ChannelOutput.masks(self.masking)):
            return None
        await self._target_known()
        why = self.memory.metadata() if self.memory is not None else None
        return None if why is None else f"file transfers refused: {why}"

    async def _download_refusal(self, text: str, kind: str) -> str | None:
        """Why a legacy scp download (``scp -f``) may not run: it reads a file written by a
        transform, which the transfer's masking would pass as it is."""
        sends = any(w.startswith("-") and not w.startswith("--") and "f" in w
                    for w in text.split())  # scp's server side sending files: -f
        if (kind != "exec" or transfer_kind(text) != "scp" or not sends
                or not ChannelOutput.masks(self.masking)):
            return None
        await self._target_known()
        if self.memory is None:
            return None
        why = self.memory.read((text,))
        return None if why is None else f"download refused: {why}"

    def download_refusal(self, path: str) -> str | None:
        """Why an SFTP request that reads, renames or links ``path`` is refused (a file
        written by a transform), or None; a refusal is recorded."""
        why = self.memory.download(path) if self.memory is not None else None
        if why is not None:
            log.info("session %s: sftp request on %r refused: %s", self.session_id, path, why)
            spawn(self.refused(f"sftp {path}", "masking", why),
                  name=f"ssh-refusal-{self.session_id}")
        return why

    async def refused(self, text: str, rule: str, reason: str) -> None:
        """Record something the gateway refused by its own settings, not by a rule."""
        self.seq += 1
        seq = self.seq  # another command may take the next number while this one commits
        op = self.core.statement_record(seq, text, verdict="block", rule=rule)
        await self.ctx.recorder.committed([op])
        self.core.running(op)
        self.end_command(seq, "blocked", None, reason, command=text.split(" ")[0])

    def note_refusal(self, text: str, reason: str) -> None:
        spawn(self.refused(text, "gateway", reason), name=f"ssh-refusal-{self.session_id}")

    async def _review(self, seq: int, text: str, rule: str | None, reason: str,
                      on_held: Callable[[str], None] | None,
                      cwd_after: Cwd = None) -> Admission:
        try:
            req, decided = await self.core.ask(text, rule, reason)
        except StoreError as exc:
            message = "the gateway could not record the approval request, so it did not run"
            self.end_command(seq, "error", None, f"{message}: {exc}")
            return Admission(False, seq, message)
        if on_held is not None:
            on_held(self.core.held_message(req, rule, reason))
        try:
            outcome = await self.core.wait(req, decided)
        except asyncio.CancelledError:
            self.end_command(seq, "denied", None, "the client went away while it waited")
            raise
        if outcome.status == "approved":
            return Admission(True, seq, f"approved by {outcome.decided_by}", cwd=cwd_after)
        why = f": {outcome.decision_reason}" if outcome.decision_reason else ""
        message = (f"denied by {outcome.decided_by}{why}" if outcome.status == "denied"
                   else f"approval request {outcome.id} {outcome.status}{why}")
        self.end_command(seq, "denied", None, message)
        return Admission(False, seq, message)

    def mask_text(self, text: str) -> str:
        """A command line as it is recorded and shown to operators: masked like the output
        (``echo 4111…`` must not put the card number in the store)."""
        return self.core.mask_text(text) or ""

    def end_command(self, seq: int, status: str, exit_status: int | None,
                    error: str | None, *, command: str | None = None,
                    now: float | None = None) -> None:
        self.core.finished(seq, status, command=command, error=error, exit_status=exit_status,
                           at=time.time() if now is None else now)


__all__ = ["AccessNotGiven", "Admission", "SshSession", "TargetUnavailable"]
