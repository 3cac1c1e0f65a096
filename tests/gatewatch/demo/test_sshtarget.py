"""``DemoSshTarget`` driven by asyncssh's client and by the real OpenSSH tools (ssh, scp, sftp,
rsync): exec, a shell on a pty, signals, flow control, forwarding, file transfer, refusals.

Each test runs twice: with the children as the current user, and (as root) as the demo's own
unprivileged account, as ``gatewatch demo`` runs them."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from gatewatch.demo.account import target_account
from gatewatch.demo.sshtarget import DemoSshTarget
from tests.conftest import need


@pytest.fixture(params=["current-user", "account"])
async def target(request: pytest.FixtureRequest, tmp_path: Path
                 ) -> AsyncIterator[DemoSshTarget]:
    if request.param == "current-user":
        ssh_target = DemoSshTarget(tmp_path / "home")
    else:
        if os.geteuid() != 0:
            pytest.skip("the target switches to another account only when we are root")
        # Outside pytest's 0700 directories, which the account could not enter.
        home = Path(tempfile.mkdtemp(prefix="gatewatch-sshtarget-"))
        request.addfinalizer(lambda: shutil.rmtree(home, ignore_errors=True))
        ssh_target = DemoSshTarget(home, run_as=target_account())
    await ssh_target.start()
    try:
        yield ssh_target
    finally:
        await ssh_target.stop()


def connect(target: DemoSshTarget, **options: Any) -> asyncssh.SSHClientConnection:
    """asyncssh.connect trusting only the target's own host key; usable with ``async with``."""
    settings: dict[str, Any] = {
        "username": target.user, "password": target.password, "client_keys": None,
        "agent_path": None, "config": None,
        "known_hosts": asyncssh.import_known_hosts(target.known_hosts_line()), **options,
    }
    return asyncssh.connect(target.host, target.port, **settings)  # type: ignore[return-value]


class Terminal:
    """What a pty session printed so far, and where the next ``expect`` starts looking."""

    def __init__(self, process: asyncssh.SSHClientProcess[str]) -> None:
        self.process = process
        self.transcript = ""
        self.cursor = 0

    async def expect(self, needle: str, within: float = 5) -> None:
        async def read() -> None:
            while (found := self.transcript.find(needle, self.cursor)) < 0:
                chunk = await self.process.stdout.read(4096)
                if not chunk:
                    raise AssertionError(f"EOF before {needle!r} in {self.transcript!r}")
                self.transcript += chunk
            self.cursor = found + len(needle)

        try:
            await asyncio.wait_for(read(), within)
        except TimeoutError:
            raise AssertionError(
                f"no {needle!r} within {within}s in {self.transcript!r}") from None

    def send(self, text: str) -> None:
        self.process.stdin.write(text)


# asyncssh client


async def test_exec_relays_stdout_stderr_and_exit_status(target: DemoSshTarget) -> None:
    async with connect(target) as conn:
        result = await conn.run("echo hi; echo e >&2; exit 3")
    assert (result.stdout, result.stderr, result.exit_status) == ("hi\n", "e\n", 3)


async def test_stdin_reaches_the_command_and_eof_ends_it(target: DemoSshTarget) -> None:
    text = "".join(f"line {n}\n" for n in range(5000))     # more than one pipe buffer
    async with connect(target) as conn:
        result = await asyncio.wait_for(conn.run("cat", input=text), 10)
    assert result.stdout == text
    assert result.exit_status == 0


async def test_commands_run_in_the_seeded_home(target: DemoSshTarget) -> None:
    async with connect(target) as conn:
        result = await conn.run('pwd; echo "$HOME $USER $LANG"; cat .env; grep -c @ app.log')
    lines = result.stdout.splitlines()
    home = str(target.workdir)
    assert lines[0] == home
    assert lines[1] == f"{home} {target.user} C.UTF-8"
    assert "AWS_SECRET_ACCESS_KEY=" in result.stdout
    assert int(lines[-1]) >= 3


async def test_exec_with_a_pty(target: DemoSshTarget) -> None:
    async with connect(target) as conn:
        result = await conn.run("tty; echo $TERM", term_type="vt100", term_size=(90, 20))
    tty, term = result.stdout.split()
    assert tty.startswith("/dev/pts/")
    assert term == "vt100"


async def test_shell_on_a_pty(target: DemoSshTarget) -> None:
    async with connect(target) as conn:
        process = await conn.create_process(term_type="xterm", term_size=(80, 24))
        term = Terminal(process)
        prompt = f"{target.user}:~$ "
        await term.expect(prompt)

        term.send("echo $TERM; stty size\n")
        await term.expect("xterm\r\n24 80\r\n")

        process.change_terminal_size(100, 30)
        term.send("stty size\n")
        await term.expect("30 100\r\n")

        term.send("sleep 30\n")
        await term.expect("sleep 30\r\n")
        await asyncio.sleep(0.3)            # let sleep become the foreground job
        term.send("\x03")
        await term.expect(prompt, within=3)
        term.send("echo status=$?\n")
        await term.expect("status=130")

        term.send("exit 7\n")
        completed = await asyncio.wait_for(process.wait(), 5)
    assert completed.exit_status == 7


async def test_signal_from_the_client_reaches_the_command(target: DemoSshTarget) -> None:
    async with connect(target) as conn:
        process = await conn.create_process("sleep 30")
        await asyncio.sleep(0.2)
        process.send_signal("TERM")
        completed = await asyncio.wait_for(process.wait(), 5)
    assert completed.exit_signal is not None
    assert completed.exit_signal[0] == "TERM"


async def test_output_waits_for_a_slow_client(target: DemoSshTarget) -> None:
    size = 16 * 1024 * 1024
    marker = target.workdir / "finished"
    async with connect(target) as conn:
        process = await conn.create_process(f"head -c {size} /dev/zero && touch finished",
                                            encoding=None)
        await asyncio.sleep(1)
        # Nobody reads: the windows and buffers fill and the writer blocks, far short of 16 MiB.
        assert not marker.exists()
        received = 0
        while chunk := await process.stdout.read(1 << 20):
            received += len(chunk)
        completed = await asyncio.wait_for(process.wait(), 10)
    assert received == size
    assert completed.exit_status == 0
    assert marker.exists()


async def test_port_forwarding_reaches_loopback_only(target: DemoSshTarget) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with connect(target) as conn:
            reader, writer = await conn.open_connection("127.0.0.1", port)
            writer.write(b"ping")
            assert await asyncio.wait_for(reader.read(100), 5) == b"ping"
            writer.close()
            with pytest.raises(asyncssh.ChannelOpenError, match=r"only to 127\.0\.0\.1"):
                await conn.open_connection("192.0.2.1", 80)     # refused before any traffic
    finally:
        server.close()
        await server.wait_closed()


async def test_sftp_is_rooted_in_the_home(target: DemoSshTarget) -> None:
    if target.run_as is not None:
        pytest.skip("as an account, sftp has that account's rights (next test)")
    async with connect(target) as conn, conn.start_sftp_client() as sftp:
        names = await sftp.listdir(".")
        assert {"notes.txt", ".env", "app.log"} <= set(names)
        async with sftp.open("/../../escape.txt", "w") as f:
            await f.write("x")
    assert (target.workdir / "escape.txt").read_text() == "x"


async def test_sftp_as_an_account_has_its_rights_and_no_more(target: DemoSshTarget) -> None:
    # asyncssh's in-process server would serve this with the demo's rights (root); OpenSSH's
    # sftp-server runs as the account, which may write its home and nothing of root's.
    if target.run_as is None:
        pytest.skip("only when the target runs as an account of its own")
    async with connect(target) as conn, conn.start_sftp_client() as sftp:
        assert {"notes.txt", ".env", "app.log"} <= set(await sftp.listdir("."))
        async with sftp.open("mine.txt", "w") as f:
            await f.write("x")
        with pytest.raises(asyncssh.SFTPError):
            await sftp.open("/etc/gatewatch-demo-escape.txt", "w")
        with pytest.raises(asyncssh.SFTPError):
            await sftp.open("/etc/shadow", "r")
    assert (target.workdir / "mine.txt").stat().st_uid == target.run_as.pw_uid
    assert not await asyncio.to_thread(os.path.lexists, "/etc/gatewatch-demo-escape.txt")


async def test_an_account_cannot_read_root_or_its_memory(target: DemoSshTarget,
                                                        tmp_path: Path) -> None:
    if target.run_as is None:
        pytest.skip("only when the target runs as an account of its own")
    secret = tmp_path / "secret"
    secret.write_text("not for the target")
    async with connect(target) as conn:
        result = await conn.run(f"id -un; cat {secret}; cat /proc/{os.getpid()}/environ; "
                                f"head -c 1 /proc/{os.getpid()}/mem")
    assert str(result.stdout).splitlines() == [target.run_as.pw_name]
    assert str(result.stderr).count("Permission denied") == 3, result.stderr


async def test_stop_ends_what_a_session_left_in_the_background(target: DemoSshTarget) -> None:
    # setsid and nohup take a process out of the session's process group, so hanging the
    # group up misses it; the target's marker in its environment does not.
    async with connect(target) as conn:
        result = await conn.run("setsid sleep 60 </dev/null >/dev/null 2>&1 & echo $!")
        pid = int(str(result.stdout))
    os.kill(pid, 0)                         # the session is over; it still runs
    await asyncio.wait_for(target.stop(), 10)
    for _ in range(50):
        if _state(pid) in (None, "Z"):     # gone, or killed and waiting for init to reap it
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"process {pid} outlived the target")


def _state(pid: int) -> str | None:
    """The process's state letter (R, S, Z…), or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return stat.rsplit(") ", 1)[1][:1]


async def test_wrong_password_is_refused(target: DemoSshTarget) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        async with connect(target, password="not-" + target.password):
            pass
    with pytest.raises(asyncssh.PermissionDenied):
        async with connect(target, username="root"):
            pass


async def test_stop_ends_running_sessions(tmp_path: Path) -> None:
    target = DemoSshTarget(tmp_path / "home")
    await target.start()
    conn = await connect(target)
    shell = await conn.create_process(term_type="xterm")
    command = await conn.create_process("echo $$; exec sleep 30")
    pid = int(await asyncio.wait_for(command.stdout.readline(), 5))
    await asyncio.wait_for(target.stop(), 10)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)                     # killed and reaped, not left behind
    await asyncio.wait_for(shell.wait_closed(), 5)
    await asyncio.wait_for(conn.wait_closed(), 5)
    with pytest.raises(OSError):
        await connect(target)


async def test_authorized_key_logs_in(tmp_path: Path) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    async with DemoSshTarget(tmp_path / "home", authorized_key=key) as keyed:
        async with connect(keyed, password=None, client_keys=[key]) as conn:
            assert (await conn.run("echo key")).stdout == "key\n"
        stranger = asyncssh.generate_private_key("ssh-ed25519")
        with pytest.raises(asyncssh.PermissionDenied):
            async with connect(keyed, password=None, client_keys=[stranger]):
                pass


# The real OpenSSH client


class OpenSsh:
    """Options and environment for ssh/scp/sftp/rsync: password through SSH_ASKPASS."""

    def __init__(self, target: DemoSshTarget, work: Path) -> None:
        known_hosts = work / "known_hosts"
        known_hosts.write_text(target.known_hosts_line() + "\n")
        askpass = work / "askpass"
        askpass.write_text(f"#!/bin/sh\nprintf '%s\\n' {shlex.quote(target.password)}\n")
        askpass.chmod(0o700)
        self.destination = f"{target.user}@{target.host}"
        self.options = [
            "-F", "/dev/null", "-o", f"Port={target.port}",
            "-o", "BatchMode=no",           # sftp -b adds BatchMode=yes after; first one wins
            "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no",
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-o", "NumberOfPasswordPrompts=1",
            "-o", "LogLevel=ERROR",
        ]
        self.env = {key: value for key, value in os.environ.items() if key != "SSH_AUTH_SOCK"}
        self.env.update(SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force")

    async def run(self, *argv: str) -> str:
        """Run a client without a terminal (as setsid would); its stdout, or fail with stderr."""
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=self.env, start_new_session=True,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 20)
        assert process.returncode == 0, f"{argv[0]} exited {process.returncode}: {stderr!r}"
        return stdout.decode()


@pytest.fixture
def openssh(target: DemoSshTarget, tmp_path: Path) -> OpenSsh:
    need("ssh", "scp", "sftp")
    return OpenSsh(target, tmp_path)


@pytest.mark.integration
async def test_openssh_exec_and_pty(openssh: OpenSsh) -> None:
    assert await openssh.run("ssh", *openssh.options, openssh.destination, "echo hi") == "hi\n"
    out = await openssh.run("ssh", "-tt", *openssh.options, openssh.destination, "tty")
    assert out.startswith("/dev/pts/")


@pytest.mark.integration
async def test_openssh_refuses_a_wrong_password(target: DemoSshTarget, openssh: OpenSsh,
                                               tmp_path: Path) -> None:
    (tmp_path / "askpass").write_text("#!/bin/sh\necho wrong\n")
    with pytest.raises(AssertionError, match="Permission denied"):
        await openssh.run("ssh", *openssh.options, openssh.destination, "echo hi")


@pytest.mark.integration
@pytest.mark.parametrize("mode", [[], ["-O"]], ids=["sftp", "legacy"])
async def test_scp_both_ways(target: DemoSshTarget, openssh: OpenSsh, tmp_path: Path,
                             mode: list[str]) -> None:
    payload = os.urandom(1024 * 1024)
    (tmp_path / "up.bin").write_bytes(payload)
    await openssh.run("scp", *mode, *openssh.options, str(tmp_path / "up.bin"),
                      f"{openssh.destination}:up.bin")
    assert (target.workdir / "up.bin").read_bytes() == payload
    await openssh.run("scp", *mode, *openssh.options, f"{openssh.destination}:up.bin",
                      str(tmp_path / "down.bin"))
    assert (tmp_path / "down.bin").read_bytes() == payload


@pytest.mark.integration
async def test_sftp_batch(target: DemoSshTarget, openssh: OpenSsh, tmp_path: Path) -> None:
    payload = os.urandom(1024 * 1024)
    (tmp_path / "up.bin").write_bytes(payload)
    batch = tmp_path / "batch"
    batch.write_text(f"put {tmp_path / 'up.bin'} put.bin\nget put.bin {tmp_path / 'got.bin'}\n"
                     "ls -a\n")
    out = await openssh.run("sftp", *openssh.options, "-b", str(batch), openssh.destination)
    assert "notes.txt" in out
    assert (target.workdir / "put.bin").read_bytes() == payload
    assert (tmp_path / "got.bin").read_bytes() == payload


@pytest.mark.integration
async def test_rsync_over_ssh(target: DemoSshTarget, openssh: OpenSsh, tmp_path: Path) -> None:
    need("rsync")
    payload = os.urandom(1024 * 1024)
    (tmp_path / "up.bin").write_bytes(payload)
    shell = shlex.join(["ssh", *openssh.options])
    await openssh.run("rsync", "-e", shell, str(tmp_path / "up.bin"),
                      f"{openssh.destination}:synced.bin")
    assert (target.workdir / "synced.bin").read_bytes() == payload
    await openssh.run("rsync", "-e", shell, f"{openssh.destination}:synced.bin",
                      str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == payload
