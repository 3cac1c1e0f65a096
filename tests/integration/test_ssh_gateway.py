"""The SSH gateway with the real OpenSSH client in front and the real sshd behind.

Commands that a rule must stop are chosen so that they would do no harm if a bug let them
through: the tests run as root in CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from store import verify
from tests.conftest import need
from tests.sshd import SshdTarget
from tests.sshgw import SshGateway

pytestmark = pytest.mark.integration

def run(gw: SshGateway, *command: str, user: str = "alice", token: str | None = None,
        connection: str = "web", options: tuple[str, ...] = (), key: bool = False,
        stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        gw.ssh_argv(*command, user=user, connection=connection, options=options, key=key),
        env=gw.env(user, token), input=stdin if stdin is not None else b"",
        capture_output=True, timeout=60)


@pytest.fixture
def remote(sshd: SshdTarget) -> Path:
    return Path(tempfile.mkdtemp(dir=sshd.home))


def test_exec_relays_stdout_stderr_and_exit_status(gw: SshGateway) -> None:
    result = run(gw, "echo hi; echo err >&2; exit 3")
    assert (result.stdout, result.stderr, result.returncode) == (b"hi\n", b"err\n", 3)


def test_exec_is_recorded_with_its_output_and_exit_status(gw: SshGateway) -> None:
    marker = os.urandom(6).hex()
    result = run(gw, f"echo {marker}; exit 4")
    assert result.returncode == 4
    rows = _wait(gw, "SELECT s.id, s.protocol, s.identity, s.target, t.text, t.exit_status,"
                     " t.status, t.command FROM statements t JOIN sessions s"
                     " ON s.id = t.session_id WHERE t.text LIKE ? AND t.exit_status IS NOT NULL",
                 f"%{marker}%")
    row = rows[0]
    assert (row["protocol"], row["identity"], row["exit_status"], row["status"],
            row["command"]) == ("ssh", "alice", 4, "error", "exec")
    assert row["target"].startswith(f"{gw.sshd.user}@127.0.0.1:")
    _wait(gw, "SELECT id FROM sessions WHERE id = ? AND ended_at IS NOT NULL", row["id"])
    # (the output reaches the store in its own batches: waited for, not assumed there)
    deadline = time.monotonic() + 10
    while True:
        output = gw.query("SELECT data FROM ssh_output WHERE session_id = ? AND stream = 'o'",
                          row["id"])
        if f"{marker}\n".encode() in b"".join(r["data"] for r in output):
            break
        assert time.monotonic() < deadline, f"the store never had the output: {output}"
        time.sleep(0.05)
    store = gw.store()
    try:
        assert verify(store, row["id"]).ok
    finally:
        store.close()


def test_stdin_reaches_the_command_byte_for_byte(gw: SshGateway) -> None:
    data = os.urandom(1 << 20)  # on a connection without masking: random bytes hold "values"
    result = run(gw, "cat", stdin=data, connection="web_exec_only")
    assert result.returncode == 0 and result.stdout == data


def test_public_key_registered_to_the_identity_signs_in(gw: SshGateway) -> None:
    result = run(gw, "echo key", key=True)
    assert (result.stdout, result.returncode) == (b"key\n", 0), result.stderr


def test_wrong_token_is_refused_and_nothing_runs(gw: SshGateway) -> None:
    result = run(gw, "echo should-not-run", token="not-the-token")
    assert result.returncode == 255
    assert b"Permission denied" in result.stderr
    assert b"should-not-run" not in result.stdout


def test_identity_not_allowed_on_the_connection_is_refused(gw: SshGateway) -> None:
    result = run(gw, "echo hi", user="bob")
    assert result.returncode == 255 and result.stdout == b""
    # refused (or, after earlier failures from this address, disconnected): never signed in
    assert not gw.query("SELECT id FROM sessions WHERE identity = 'bob'")


@pytest.mark.parametrize("command", [
    "rm -rf /etc/gatewatch-test-nonexistent",
    "sudo /bin/r''m -r -f /etc/gatewatch-test-nonexistent",
    "\\rm -fr /usr/gatewatch-test-nonexistent",
    "env FOO=1 nice -n 5 rm -Rf /var/gatewatch-test-nonexistent",
    "sh -c 'true && rm -rf /etc/gatewatch-test-nonexistent'",
    "echo $(rm -rf /etc/gatewatch-test-nonexistent)",
    "mkfs.ext4 /dev/gatewatch-test-nonexistent",
    "echo forbidden-word",
])
def test_blocked_command_does_not_run_and_says_why(gw: SshGateway, command: str) -> None:
    result = run(gw, command)
    assert result.returncode == 126, result.stderr
    assert b"gatewatch: blocked by rule" in result.stderr
    assert result.stdout == b""
    rows = _wait(gw, "SELECT verdict, status, rule FROM statements WHERE text = ?"
                     " AND status = 'blocked'", command)
    assert rows[0]["verdict"] == "block"


def test_scp_sftp_mode_both_ways(gw: SshGateway, remote: Path, tmp_path: Path) -> None:
    _copy_both_ways(gw, remote, tmp_path, [])


def test_scp_legacy_mode_both_ways(gw: SshGateway, remote: Path, tmp_path: Path) -> None:
    _copy_both_ways(gw, remote, tmp_path, ["-O"])


def _copy_both_ways(gw: SshGateway, remote: Path, tmp_path: Path, mode: list[str]) -> None:
    # Random bytes with the high bit set: nothing in them can read as a value to mask (the
    # connection masks downloads), so the copy must come back byte for byte.
    data = bytes(b | 0x80 for b in os.urandom(1 << 20))
    (tmp_path / "up.bin").write_bytes(data)
    base = ["scp", "-q", *mode, "-P", str(gw.port()), *gw.client_options()]
    up = subprocess.run([*base, str(tmp_path / "up.bin"), f"alice@127.0.0.1:{remote}/up.bin"],
                        env=gw.env(), capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert up.returncode == 0, up.stderr
    assert (remote / "up.bin").read_bytes() == data
    down = subprocess.run([*base, f"alice@127.0.0.1:{remote}/up.bin", str(tmp_path / "down")],
                          env=gw.env(), capture_output=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert down.returncode == 0, down.stderr
    assert (tmp_path / "down").read_bytes() == data


def test_sftp_batch(gw: SshGateway, remote: Path, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha\n")
    batch = tmp_path / "batch"
    batch.write_text(f"put {tmp_path / 'a.txt'} {remote}/a.txt\nls {remote}\n"
                     f"get {remote}/a.txt {tmp_path / 'b.txt'}\n")
    # -b means batch mode, which never asks for a password: the identity's key signs in
    result = subprocess.run(["sftp", "-q", "-P", str(gw.port()), *gw.client_options(key=True),
                             "-b",
                             str(batch), "alice@127.0.0.1"], env=gw.env(), capture_output=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "b.txt").read_text() == "alpha\n"


def test_rsync_over_the_gateway(gw: SshGateway, remote: Path, tmp_path: Path) -> None:
    need("rsync")
    source = tmp_path / "tree"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "f.bin").write_bytes(os.urandom(200_000))
    (source / "g.txt").write_text("gee\n")
    shell = " ".join(["ssh", "-p", str(gw.port()), *gw.client_options()])
    result = subprocess.run(
        ["rsync", "-a", "-e", shell, f"{source}/", f"alice@127.0.0.1:{remote}/"],
        env=gw.env(), capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert (remote / "sub" / "f.bin").read_bytes() == (source / "sub" / "f.bin").read_bytes()
    assert (remote / "g.txt").read_text() == "gee\n"


def test_agent_forwarding_is_refused(gw: SshGateway) -> None:
    # on a connection without masking: where output is masked, ${…:-…} computed by the shell
    # has its output masked whole (engine/ssh/output.py)
    result = run(gw, "echo ${SSH_AUTH_SOCK:-no-agent}", options=("-A",),
                 connection="web_exec_only")
    assert result.stdout == b"no-agent\n"


def test_exec_only_connection_refuses_a_shell(gw: SshGateway) -> None:
    shell = run(gw, connection="web_exec_only", options=("-tt",), stdin=b"exit\n")
    assert shell.returncode != 0
    exec_ = run(gw, "echo fine", connection="web_exec_only")
    assert exec_.stdout == b"fine\n"


def test_target_with_a_changed_host_key_is_refused(gw: SshGateway) -> None:
    result = run(gw, "echo hi", connection="web_wrong_host_key")
    assert result.returncode == 255
    assert b"host key does not match" in result.stderr
    assert b"hi" not in result.stdout


def test_target_down_is_a_clear_error(gw: SshGateway) -> None:
    result = run(gw, "echo hi", connection="web_down")
    assert result.returncode == 255
    assert b"unreachable" in result.stderr


def _wait(gw: SshGateway, sql: str, *args: object, timeout: float = 10) -> list[dict[str, object]]:
    import time

    deadline = time.monotonic() + timeout
    while True:
        rows = gw.query(sql, *args)
        if rows or time.monotonic() > deadline:
            assert rows, f"the store never had: {sql} {args}"
            return rows  # type: ignore[return-value]
        time.sleep(0.05)


def test_show_lists_an_ssh_sessions_commands_with_exit_status(gw: SshGateway) -> None:
    import sys

    marker = os.urandom(4).hex()
    assert run(gw, f"echo {marker}; exit 5").returncode == 5
    [row] = _wait(gw, "SELECT session_id FROM statements WHERE text LIKE ?"
                      " AND exit_status IS NOT NULL", f"%{marker}%")
    out = subprocess.run([sys.executable, "-m", "gatewatch", "show", str(row["session_id"]), "-c",
                          str(gw.work / "policies.yaml")], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"({gw.sshd.user}@127.0.0.1:{gw.sshd.port})" in out.stdout
    header, line = out.stdout.splitlines()[3], out.stdout.splitlines()[4]
    assert "EXIT" in header and "COMMAND" in header
    assert "  5  " in line and "exit status 5" in line


def test_output_is_masked_before_the_client_and_the_recording(gw: SshGateway) -> None:
    marker = os.urandom(4).hex()
    # the value is split over two writes a moment apart: it must still be recognised
    command = (f"echo {marker}; printf 'mail alice.{marker}@exam'; sleep 0.3; "
               "printf 'ple.com card 4242 4242 4242 4242\\n'; echo password=hunter2-secret >&2")
    result = run(gw, command)
    assert result.returncode == 0, result.stderr
    out, err = result.stdout.decode(), result.stderr.decode()
    assert f"alice.{marker}@example.com" not in out and "4242 4242 4242 4242" not in out
    assert out.count("4242") == 1  # partial: the last four are kept
    assert "hunter2-secret" not in err
    [row] = _wait(gw, "SELECT session_id FROM statements WHERE text LIKE ?", f"%{marker}%")
    sid = row["session_id"]
    _wait(gw, "SELECT id FROM sessions WHERE id = ? AND ended_at IS NOT NULL", sid)
    recorded = b"".join(r["data"] for r in gw.query(
        "SELECT data FROM ssh_output WHERE session_id = ? ORDER BY seq", sid))
    assert f"{marker}@example.com".encode() not in recorded
    assert b"4242 4242 4242 4242" not in recorded and b"hunter2-secret" not in recorded
    [session] = gw.query("SELECT masked FROM sessions WHERE id = ?", sid)
    counts = json.loads(str(session["masked"]))
    assert counts["personal-data:email"] == 1 and counts["personal-data:payment_card"] == 1
    assert counts["personal-data:secret_assignment"] == 1
