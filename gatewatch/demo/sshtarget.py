"""The demo's SSH target: an in-process asyncssh server that runs a real shell on loopback.

``gatewatch demo`` needs an SSH host that behaves like one — interactive shells on a real
pseudo-terminal, exec with separate stdout/stderr and exit status, signals, ``scp``, ``sftp``,
``rsync`` and ``ssh -L`` — without root and without installing sshd. This module is that host:

- ``DemoSshTarget`` listens on 127.0.0.1 (a free port), accepts one user by password (or one
  authorised key), and serves a scratch directory seeded with files that hold fake secrets.
- ``_SessionRouter`` decides, when the client says what the channel is for, who serves it:
  shells and commands go to ``_ProcessSession``; the ``sftp`` subsystem and legacy
  ``scp -t/-f`` commands go to asyncssh's own SFTP/SCP server, rooted at the scratch directory.
- ``_ProcessSession`` runs the child on a pty (``os.openpty`` and ``os.login_tty``, so that the
  shell owns a controlling terminal and Ctrl-C works) or on three pipes, and relays bytes with
  the event loop's reader/writer callbacks. Reading from the child stops while asyncssh says the
  channel's send buffer is full (``pause_writing``), and the client's input is held back
  (``pause_reading``) while the child does not read: neither direction buffers without bound.

Who the children run as: ``run_as`` names an unprivileged account (what ``gatewatch demo``
passes when it runs as root, see ``account.py``); shells, commands and file transfers then run
as that account in its own home, and file transfers go through OpenSSH's ``sftp-server`` and
``scp`` as that account too, because asyncssh's in-process file server would serve them with
the demo's own rights (its ``chroot`` only maps paths; a symlink in the home leads anywhere).
Without ``run_as`` everything runs as the current OS user, with asyncssh's file server rooted
in the home: a throw-away host for tests, not a sandbox. Every child carries a per-target
marker in its environment, so that ``stop()`` also ends what a session left running in the
background (``nohup``, ``setsid``) and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hmac
import logging
import os
import pwd
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import termios
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import cast

import asyncssh
from asyncssh.channel import SSHChannel
from asyncssh.sftp import MIN_SFTP_VERSION
from asyncssh.stream import SSHServerStreamSession

log = logging.getLogger(__name__)

_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_CHUNK = 65536
# After the shell exits, output from background jobs that still hold the pty is read for this
# long, then the pty is closed (sshd closes it at once; a little grace loses nothing in flight).
_PTY_LINGER = 0.1
# Signal names that RFC 4254 section 6.10 lets a client send.
_SIGNALS = {
    name: signal.Signals[f"SIG{name}"]
    for name in ("ABRT", "ALRM", "FPE", "HUP", "ILL", "INT", "KILL", "PIPE", "QUIT", "SEGV",
                 "TERM", "USR1", "USR2")
}
# Runs in the child before the shell: a new session whose controlling terminal is the pty on
# fd 0 (setsid + TIOCSCTTY + dup to 0/1/2), then exec. A preexec_fn would do the same inside
# our own process, which is unsafe once threads exist; this costs one short interpreter start.
_LOGIN_TTY = "import os, sys; os.login_tty(0); os.execvp(sys.argv[1], sys.argv[1:])"
# util-linux's setsid does the same without an interpreter, and works for an account that may
# not run ours (a virtualenv under /root is out of its reach).
_SETSID = shutil.which("setsid")
_SFTP_SERVERS = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                 "/usr/libexec/sftp-server")
# The environment variable that marks the children of one target (see ``stop()``).
_MARK = "GATEWATCH_DEMO_TARGET"

_SAMPLE_FILES = {
    "notes.txt": (
        "Demo host notes\n"
        "- app.log rotates nightly; keep a week of it\n"
        "- credentials for the shop app live in .env (do not cat it on a shared screen)\n"
        "- escalations: ops-oncall@example.com\n"
    ),
    ".env": (
        "# Fake credentials for the Gatewatch demo; masking should hide the values.\n"
        "DATABASE_URL=postgres://shop:Demo-Pa55word@db.internal.example:5432/shop\n"
        "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n"
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
    ),
    "app.log": (
        "2024-05-02T09:14:03Z INFO  signup ok user=alice.martin@example.com plan=pro\n"
        "2024-05-02T09:15:41Z WARN  payment retry user=bob.nguyen@example.org "
        "card=4111 1111 1111 1111\n"
        "2024-05-02T09:17:12Z INFO  password reset sent to carol.diaz@example.net\n"
        "2024-05-02T09:20:55Z ERROR smtp bounce for dave@example.com: mailbox full\n"
    ),
}


class DemoSshTarget:
    """An SSH host on 127.0.0.1 for the demo and the tests; ``start()`` it, then connect.

    ``user``/``password`` log in (the password is random unless given), as does
    ``authorized_key`` when set. ``host_key`` is an ed25519 key made for this target;
    ``known_hosts_line()`` is the line an OpenSSH ``known_hosts`` file needs to trust it.
    With ``run_as`` the children run as that account (whose name is then the login name
    unless ``user`` says otherwise) in ``workdir``, which becomes theirs (mode 0700).
    """

    def __init__(self, workdir: Path, *, user: str | None = None, password: str | None = None,
                 authorized_key: asyncssh.SSHKey | None = None,
                 run_as: pwd.struct_passwd | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.run_as = run_as
        self.user = user or (run_as.pw_name if run_as is not None else "demo")
        self.mark = secrets.token_hex(8)
        self.password = password if password is not None else secrets.token_urlsafe(24)
        self.authorized_key = authorized_key
        self.workdir = Path(workdir)
        self.host_key: asyncssh.SSHKey = asyncssh.generate_private_key("ssh-ed25519")
        self.shell = "/bin/bash" if Path("/bin/bash").exists() else "/bin/sh"
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._connections: set[asyncssh.SSHServerConnection] = set()
        self._processes: set[_ProcessSession] = set()

    async def start(self) -> None:
        """Seed the scratch directory and listen on a free loopback port."""
        self.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name, text in _SAMPLE_FILES.items():
            path = self.workdir / name
            if not path.exists():
                path.write_text(text)
        if self.run_as is not None:
            # Seeded before any session exists, then handed over: from here on only the
            # account writes in its home, and only it (and root) can look inside.
            for path in (self.workdir, *(self.workdir / name for name in _SAMPLE_FILES)):
                os.chown(path, self.run_as.pw_uid, self.run_as.pw_gid)
            self.workdir.chmod(0o700)
        self._acceptor = await asyncssh.listen(
            self.host, 0,
            server_factory=lambda: _DemoServer(self),
            server_host_keys=[self.host_key],
            encoding=None,          # bytes end to end: the child's output is not ours to decode
            line_editor=False,      # the pty's line discipline edits lines, not asyncssh
            agent_forwarding=False,
            x11_forwarding=False,
            allow_pty=True,
        )
        self.port = self._acceptor.get_port()
        log.info("demo SSH target listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Close every connection, hang up every child (SIGKILL if it lingers), stop listening."""
        if self._acceptor is not None:
            self._acceptor.close()
        for conn in list(self._connections):
            conn.close()
        for conn in list(self._connections):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(conn.wait_closed(), 2)
        for sig in (signal.SIGHUP, signal.SIGKILL):
            running = [p for p in self._processes if not p.reaped.done()]
            if not running:
                break
            for process in running:
                process.hang_up(sig)
            await asyncio.wait([p.reaped for p in running], timeout=2)
        # What a session left behind in a session of its own (nohup, setsid, a daemon) is no
        # longer in any process group above; it still carries this target's marker.
        _kill_marked(f"{_MARK}={self.mark}".encode())
        if self._acceptor is not None:
            await self._acceptor.wait_closed()
            self._acceptor = None

    async def __aenter__(self) -> DemoSshTarget:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    def known_hosts_line(self) -> str:
        """``[127.0.0.1]:PORT ssh-ed25519 AAAA…`` for an OpenSSH known_hosts file."""
        if not self.port:
            raise RuntimeError("the SSH target has no port yet: start() it first")
        algorithm, blob = self.host_key.export_public_key("openssh").decode().split()[:2]
        return f"[{self.host}]:{self.port} {algorithm} {blob}"

    # Used by the server and sessions below.

    def check_password(self, username: str, password: str) -> bool:
        user_ok = hmac.compare_digest(username.encode(), self.user.encode())
        password_ok = hmac.compare_digest(password.encode(), self.password.encode())
        return user_ok and password_ok

    def check_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        if self.authorized_key is None:
            return False
        user_ok = hmac.compare_digest(username.encode(), self.user.encode())
        key_ok = hmac.compare_digest(key.public_data, self.authorized_key.public_data)
        return user_ok and key_ok

    def sftp_server(self) -> str | None:
        """OpenSSH's sftp-server, which serves file transfers when the children run as
        ``run_as``; None when it is not installed."""
        return next((path for path in _SFTP_SERVERS if os.access(path, os.X_OK)), None)

    def file_server(self, chan: SSHChannel[bytes]) -> asyncssh.SFTPServer:
        # asyncssh types the factory's argument as any channel; it is always the server's.
        server_chan = cast("asyncssh.SSHServerChannel[bytes]", chan)
        return _FileServer(server_chan, chroot=os.fsencode(self.workdir))


class _FileServer(asyncssh.SFTPServer):
    """asyncssh's SFTP (and SCP) server, rooted in the target's home."""

    def exit(self) -> None:
        # sftp-server exits 0 when the client is done, and OpenSSH's scp (which speaks SFTP
        # since 9.0) exits 1 after a good transfer unless it sees that status; asyncssh closes
        # the channel without one. SCP reports its errors inside its own protocol.
        if not self.channel.is_closing():
            self.channel.exit(0)


class _DemoServer(asyncssh.SSHServer):
    """Authentication and channel policy for one client connection."""

    def __init__(self, target: DemoSshTarget) -> None:
        self._target = target
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._target._connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._target._connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True     # every user must authenticate

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return self._target.check_password(username, password)

    def public_key_auth_supported(self) -> bool:
        return self._target.authorized_key is not None

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return self._target.check_key(username, key)

    def session_requested(self) -> asyncssh.SSHServerSession[bytes]:
        return _SessionRouter(self._target)

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str,
                             orig_port: int) -> bool:
        # ``ssh -L``: loopback only, so that forwarding through the gateway can be tested
        # without this target ever reaching another machine.
        if dest_host in ("127.0.0.1", "localhost"):
            return True
        raise asyncssh.ChannelOpenError(
            asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
            f"the demo target forwards only to 127.0.0.1, not to {dest_host}",
        )


class _SessionRouter(asyncssh.SSHServerSession[bytes]):
    """Picks the session that serves a channel once the client names shell, exec or subsystem.

    asyncssh serves SFTP and SCP only through its stream sessions, and builds those itself only
    when the listener has no ``session_requested`` policy of its own; so this router builds one
    for ``sftp``/``scp`` channels and hands every later callback to whichever session it chose.
    """

    def __init__(self, target: DemoSshTarget) -> None:
        self._target = target
        self._chan: asyncssh.SSHServerChannel[bytes] | None = None
        self._inner: asyncssh.SSHServerSession[bytes] | None = None

    def _route(self, session: asyncssh.SSHServerSession[bytes]) -> asyncssh.SSHServerSession[bytes]:
        assert self._chan is not None
        self._inner = session
        session.connection_made(self._chan)
        return session

    def _file_transfer(self) -> asyncssh.SSHServerSession[bytes]:
        return self._route(SSHServerStreamSession[bytes](
            None, self._target.file_server, MIN_SFTP_VERSION, allow_scp=True))

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self._chan = chan

    def pty_requested(self, term_type: str, term_size: tuple[int, int, int, int],
                      term_modes: Mapping[int, int]) -> bool:
        return True     # the channel keeps type and size; the process session reads them there

    def shell_requested(self) -> bool:
        return self._route(_ProcessSession(self._target, None)).shell_requested()

    def exec_requested(self, command: str) -> bool:
        # Legacy scp (``scp -O``; OpenSSH 9 uses sftp): in-process unless the children run
        # as another account, whose own scp then runs the command like any other.
        if command.startswith("scp ") and self._target.run_as is None:
            return self._file_transfer().exec_requested(command)
        return self._route(_ProcessSession(self._target, command)).exec_requested(command)

    def subsystem_requested(self, subsystem: str) -> bool:
        if subsystem != "sftp":
            return False
        if self._target.run_as is None:
            return self._file_transfer().subsystem_requested(subsystem)
        server = self._target.sftp_server()
        if server is None:
            log.warning("demo SSH target: no sftp-server installed; sftp refused")
            return False
        return self._route(_ProcessSession(self._target, None, program=[server])
                           ).subsystem_requested(subsystem)

    def session_started(self) -> None:
        if self._inner is not None:
            self._inner.session_started()

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if self._inner is not None:
            self._inner.data_received(data, datatype)

    def eof_received(self) -> bool:
        return self._inner.eof_received() if self._inner is not None else True

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def terminal_size_changed(self, width: int, height: int, pixwidth: int,
                              pixheight: int) -> None:
        if self._inner is not None:
            self._inner.terminal_size_changed(width, height, pixwidth, pixheight)

    def signal_received(self, signal: str) -> None:
        if self._inner is not None:
            self._inner.signal_received(signal)

    def break_received(self, msec: int) -> bool:
        return self._inner.break_received(msec) if self._inner is not None else False

    def soft_eof_received(self) -> None:
        if self._inner is not None:
            self._inner.soft_eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is not None:
            self._inner.connection_lost(exc)
        self._inner = None
        self._chan = None


class _ProcessSession(asyncssh.SSHServerSession[bytes]):
    """One shell, command or file server: a child on a pty or on pipes, relayed with flow
    control. ``program`` runs as it is (sftp-server), ``command`` through the shell."""

    def __init__(self, target: DemoSshTarget, command: str | None, *,
                 program: list[str] | None = None) -> None:
        self._target = target
        self._command = command
        self._program = program
        self._loop = asyncio.get_running_loop()
        self._chan: asyncssh.SSHServerChannel[bytes] | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._pty: int | None = None                    # pty master: output, input and size
        self._outputs: dict[int, asyncssh.DataType] = {}  # open fds we read -> channel datatype
        self._stdin: int | None = None
        self._stdin_buf = bytearray()
        self._stdin_waiting = False                     # add_writer armed, channel paused
        self._eof_pending = False
        self._paused = False
        self._pidfd: int | None = None
        self._exit: tuple[int, str | None, bool] | None = None  # status, signal name, core
        self._finished = False
        self.reaped: asyncio.Future[None] = self._loop.create_future()

    # Requests

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self._chan = chan

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        return True

    def session_started(self) -> None:
        assert self._chan is not None
        try:
            self._spawn(self._chan)
        except OSError as exc:
            log.warning("demo SSH target could not start %r: %s",
                        self._command or self._program or "shell", exc)
            self._close_fds()
            self._chan.write_stderr(f"gatewatch demo target: cannot start: {exc}\r\n".encode())
            self._chan.exit(127)
            return
        self._target._processes.add(self)

    def _spawn(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        shell = self._target.shell
        term_type = chan.get_terminal_type()
        if self._program is not None:
            argv = self._program
        elif self._command is not None:
            argv = [shell, "-c", self._command]
        elif shell.endswith("bash"):
            argv = [shell, "--noprofile", "--norc", *(["-i"] if term_type else [])]
        else:
            argv = [shell, *(["-i"] if term_type else [])]
        env = self._environment(chan)
        workdir = self._target.workdir
        account = self._target.run_as
        # Popen switches groups and user in the child, after fork and before exec.
        uid, gid = (account.pw_uid, account.pw_gid) if account is not None else (None, None)
        groups: list[int] | None = [] if account is not None else None

        if term_type is not None:
            master, slave = os.openpty()
            self._pty = self._stdin = master        # closed by _close_fds() if Popen fails
            self._outputs = {master: None}
            try:
                width, height, pixwidth, pixheight = chan.get_terminal_size()
                _set_window_size(master, width, height, pixwidth, pixheight)
                if account is not None:     # as sshd does: the user's terminal is theirs
                    os.fchown(slave, account.pw_uid, -1)
                    os.fchmod(slave, 0o620)
                env["TERM"] = term_type
                env["SSH_TTY"] = os.ttyname(slave)
                # No start_new_session: setsid's (or login_tty's) own setsid() makes the new
                # session, whose controlling terminal is then the pty on fd 0.
                login_tty = ([_SETSID, "--ctty"] if _SETSID is not None
                             else [sys.executable, "-I", "-S", "-c", _LOGIN_TTY])
                self._popen = subprocess.Popen(
                    [*login_tty, *argv], stdin=slave, stdout=slave, stderr=slave, cwd=workdir,
                    env=env, user=uid, group=gid, extra_groups=groups,
                )
            finally:
                os.close(slave)
            os.set_blocking(master, False)
        else:
            pipes = [os.pipe() for _ in range(3)]
            stdin_r, stdin_w = pipes[0]
            stdout_r, stdout_w = pipes[1]
            stderr_r, stderr_w = pipes[2]
            self._stdin = stdin_w
            self._outputs = {stdout_r: None, stderr_r: asyncssh.EXTENDED_DATA_STDERR}
            try:
                self._popen = subprocess.Popen(
                    argv, stdin=stdin_r, stdout=stdout_w, stderr=stderr_w, cwd=workdir, env=env,
                    start_new_session=True,     # its own process group, for signals and hang-up
                    user=uid, group=gid, extra_groups=groups,
                )
            finally:
                for fd in (stdin_r, stdout_w, stderr_w):
                    os.close(fd)
            for fd in (stdin_w, stdout_r, stderr_r):
                os.set_blocking(fd, False)

        for fd in self._outputs:
            self._loop.add_reader(fd, self._read_ready, fd)
        try:
            self._pidfd = os.pidfd_open(self._popen.pid)
        except (AttributeError, OSError):   # no pidfd (old kernel): poll for the exit instead
            self._loop.call_later(0.05, self._poll_exit)
        else:
            self._loop.add_reader(self._pidfd, self._child_exited)

    def _environment(self, chan: asyncssh.SSHServerChannel[bytes]) -> dict[str, str]:
        target = self._target
        name = target.run_as.pw_name if target.run_as is not None else target.user
        env = {
            "HOME": str(target.workdir), "PWD": str(target.workdir), "USER": name,
            "LOGNAME": name, "SHELL": target.shell, "PATH": _PATH, "LANG": "C.UTF-8",
            "PS1": f"{target.user}:\\w$ ", _MARK: target.mark,
        }
        # Like Debian's sshd (AcceptEnv LANG LC_*): the client may choose its locale.
        for key, value in chan.get_environment().items():
            if key == "LANG" or key.startswith("LC_"):
                env[key] = value
        peer, sock = chan.get_extra_info("peername"), chan.get_extra_info("sockname")
        if peer and sock:
            env["SSH_CLIENT"] = f"{peer[0]} {peer[1]} {sock[1]}"
            env["SSH_CONNECTION"] = f"{peer[0]} {peer[1]} {sock[0]} {sock[1]}"
        return env

    # Child -> client

    def _read_ready(self, fd: int) -> None:
        # A pty hands out about 4 KiB per read; gathering up to _CHUNK before writing saves
        # an SSH packet (and its encryption) per read, which triples pty throughput.
        data = bytearray()
        eof = False
        while len(data) < _CHUNK:
            try:
                piece = os.read(fd, _CHUNK - len(data))
            except BlockingIOError:
                break
            except OSError as exc:
                # EIO: every holder of the pty's slave side has closed it; that is its EOF.
                if exc.errno != errno.EIO:
                    log.debug("demo SSH target: read from child failed: %s", exc)
                piece = b""
            if not piece:
                eof = True
                break
            data += piece
        if data and self._chan is not None and not self._chan.is_closing():
            self._chan.write(bytes(data), self._outputs[fd])
        if eof:
            self._close_output(fd)
            self._maybe_finish()
        # Past the high-water mark asyncssh has called pause_writing() by now, and the
        # readers are off until resume_writing(): the child blocks on a full pipe or pty.

    def pause_writing(self) -> None:
        self._paused = True
        for fd in self._outputs:
            self._loop.remove_reader(fd)

    def resume_writing(self) -> None:
        self._paused = False
        for fd in self._outputs:
            self._loop.add_reader(fd, self._read_ready, fd)

    def _close_output(self, fd: int) -> None:
        if fd in self._outputs:
            del self._outputs[fd]
            self._loop.remove_reader(fd)
            if fd == self._pty:
                self._close_stdin()
                self._pty = None
            os.close(fd)

    # Client -> child

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if datatype is not None or self._stdin is None:
            return
        self._stdin_buf += data
        if not self._stdin_waiting:
            self._flush_stdin()

    def _flush_stdin(self) -> None:
        fd = self._stdin
        if fd is None:
            return
        while self._stdin_buf:
            try:
                written = os.write(fd, self._stdin_buf)
            except BlockingIOError:
                break
            except OSError:         # EPIPE, EIO: the child no longer reads its input
                self._stdin_buf.clear()
                self._close_stdin()
                return
            del self._stdin_buf[:written]
        if self._stdin_buf and not self._stdin_waiting:
            # The child is not reading: stop taking data from the client (its window closes).
            self._stdin_waiting = True
            self._loop.add_writer(fd, self._flush_stdin)
            if self._chan is not None:
                self._chan.pause_reading()
        elif not self._stdin_buf:
            if self._stdin_waiting:
                self._stdin_waiting = False
                self._loop.remove_writer(fd)
                if self._chan is not None:
                    self._chan.resume_reading()
            if self._eof_pending:
                self._close_stdin()

    def eof_received(self) -> bool:
        # Like sshd, EOF means nothing to a pty (there is no half-close of a terminal); on a
        # pipe the child reads EOF once what the client sent before has been written.
        self._eof_pending = True
        if not self._stdin_buf:
            self._close_stdin()
        return True     # keep our side open: the child's output and exit status still follow

    def _close_stdin(self) -> None:
        fd, self._stdin = self._stdin, None
        self._stdin_buf.clear()
        if fd is None:
            return
        if self._stdin_waiting:
            self._stdin_waiting = False
            self._loop.remove_writer(fd)
            if self._chan is not None and not self._chan.is_closing():
                self._chan.resume_reading()
        if fd != self._pty:
            os.close(fd)

    def terminal_size_changed(self, width: int, height: int, pixwidth: int,
                              pixheight: int) -> None:
        if self._pty is not None:
            _set_window_size(self._pty, width, height, pixwidth, pixheight)  # kernel: SIGWINCH

    def signal_received(self, signal: str) -> None:
        sig = _SIGNALS.get(signal)
        if sig is not None:
            self._kill(sig)

    def _kill(self, sig: signal.Signals) -> None:
        """Signal the foreground job on a pty, else the child's process group."""
        if self._popen is None or self.reaped.done():
            return      # once reaped, the pid may belong to someone else
        group = self._popen.pid
        if self._pty is not None:
            with contextlib.suppress(OSError):
                group = os.tcgetpgrp(self._pty)
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            log.debug("demo SSH target: cannot signal group %d: %s", group, exc)

    def hang_up(self, sig: signal.Signals = signal.SIGHUP) -> None:
        """The client is gone: close the pty (the kernel hangs up its session) and signal."""
        if self._pty is not None:
            self._close_output(self._pty)
        if self._popen is not None and not self.reaped.done():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._popen.pid, sig)

    def connection_lost(self, exc: Exception | None) -> None:
        self._chan = None
        if not self._finished:
            self.hang_up()
            self._close_fds()

    # Exit

    def _poll_exit(self) -> None:
        assert self._popen is not None
        if self._popen.poll() is None:
            self._loop.call_later(0.05, self._poll_exit)
        else:
            self._child_exited()

    def _child_exited(self) -> None:
        assert self._popen is not None
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        core = False
        with contextlib.suppress(ChildProcessError):
            # Peek without reaping to learn whether it dumped core, which Popen does not say.
            info = os.waitid(os.P_PID, self._popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            core = info is not None and info.si_code == os.CLD_DUMPED
        status = self._popen.wait()
        if not self.reaped.done():
            self.reaped.set_result(None)
        self._target._processes.discard(self)
        if status < 0:
            self._exit = (128 - status, _signal_name(-status), core)
        else:
            self._exit = (status, None, False)
        if self._pty is not None:
            self._loop.call_later(_PTY_LINGER, self._release_pty)
        self._maybe_finish()

    def _release_pty(self) -> None:
        """Background jobs still hold the pty: read what is there, then close it."""
        if self._pty is None:
            return
        if self._paused:
            self._loop.call_later(_PTY_LINGER, self._release_pty)
            return
        fd = self._pty
        while fd in self._outputs and not self._paused:
            try:
                data = os.read(fd, _CHUNK)
            except OSError:
                break
            if not data:
                break
            if self._chan is not None and not self._chan.is_closing():
                self._chan.write(data)
        if self._paused and fd in self._outputs:
            self._loop.call_later(_PTY_LINGER, self._release_pty)
            return
        self._close_output(fd)
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        """Report the exit once the child is gone and all it wrote has been handed on."""
        if self._finished or self._exit is None or self._outputs:
            return
        self._finished = True
        self._close_fds()
        status, signame, core = self._exit
        chan = self._chan
        if chan is None or chan.is_closing():
            return
        # close() inside exit() sends the channel close only after buffered output has gone.
        if signame is not None:
            chan.exit_with_signal(signame, core)
        else:
            chan.exit(status)

    def _close_fds(self) -> None:
        self._close_stdin()
        for fd in list(self._outputs):
            self._close_output(fd)


def _kill_marked(mark: bytes) -> None:
    """SIGKILL every process whose environment holds ``mark`` (``NAME=value``).

    Best effort: a process that was started with a fresh environment (``env -i``) escapes it.
    """
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                environ = f.read()
        except OSError:         # gone already, or not ours to read
            continue
        if mark in environ.split(b"\0"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)


def _set_window_size(fd: int, width: int, height: int, pixwidth: int, pixheight: int) -> None:
    if width and height:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, pixwidth, pixheight))


def _signal_name(number: int) -> str:
    """The SSH name of a signal: ``INT``; ones outside RFC 4254 carry OpenSSH's suffix."""
    try:
        name = signal.Signals(number).name.removeprefix("SIG")
    except ValueError:
        return f"{number}@openssh.com"
    return name if name in _SIGNALS else f"{name}@openssh.com"
