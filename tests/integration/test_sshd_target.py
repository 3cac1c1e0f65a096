"""The throw-away sshd target behaves like any OpenSSH server to ssh, scp, sftp and rsync."""

from __future__ import annotations

import dataclasses
import filecmp
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.sshd import (
    SshdTarget,
    known_hosts_line,
    make_client_key,
    missing_sshd,
    pty_problem,
    start_sshd,
)

pytestmark = pytest.mark.integration

REQUIRE = os.environ.get("GATEWATCH_REQUIRE_INTEGRATION") == "1"


def need(missing: list[str]) -> None:
    """Skip (or, in CI, fail) when a real component the test drives is not installed."""
    if missing:
        reason = f"needs {', '.join(sorted(set(missing)))} (install openssh-server / rsync)"
        if REQUIRE:
            pytest.fail(f"GATEWATCH_REQUIRE_INTEGRATION=1 but {reason}")
        pytest.skip(reason)


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def remote(sshd: SshdTarget) -> Path:
    """A fresh directory on the "remote" side, named by absolute path."""
    return Path(tempfile.mkdtemp(dir=sshd.home))


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "payload.bin"
    path.write_bytes(os.urandom(1 << 20))
    return path


def test_command_output_and_exit_status(sshd: SshdTarget) -> None:
    result = run(sshd.ssh_argv("echo hi; echo err >&2; exit 3"))
    assert (result.stdout, result.stderr, result.returncode) == ("hi\n", "err\n", 3)


@pytest.mark.parametrize("mode", [[], ["-O"]], ids=["sftp", "legacy-scp"])
def test_scp_both_ways(sshd: SshdTarget, remote: Path, payload: Path, tmp_path: Path,
                       mode: list[str]) -> None:
    scp = ["scp", "-q", *mode, "-P", str(sshd.port), *sshd.client_options()]
    up = run([*scp, str(payload), f"{sshd.destination}:{remote}/up.bin"])
    assert up.returncode == 0, up.stderr
    assert (remote / "up.bin").read_bytes() == payload.read_bytes()

    down = run([*scp, f"{sshd.destination}:{remote}/up.bin", str(tmp_path / "down.bin")])
    assert down.returncode == 0, down.stderr
    assert (tmp_path / "down.bin").read_bytes() == payload.read_bytes()


def test_sftp_batch(sshd: SshdTarget, remote: Path, payload: Path, tmp_path: Path) -> None:
    batch = tmp_path / "batch"
    batch.write_text(f"put {payload} {remote}/put.bin\nget {remote}/put.bin {tmp_path}/got.bin\n")
    result = run(["sftp", "-b", str(batch), "-P", str(sshd.port), *sshd.client_options(),
                  sshd.destination])
    assert result.returncode == 0, result.stderr
    assert (remote / "put.bin").read_bytes() == payload.read_bytes()
    assert (tmp_path / "got.bin").read_bytes() == payload.read_bytes()


def test_rsync_directory(sshd: SshdTarget, remote: Path, payload: Path, tmp_path: Path) -> None:
    need([] if shutil.which("rsync") else ["rsync"])
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    shutil.copy(payload, tree / "sub" / "payload.bin")
    (tree / "note.txt").write_text("hello\n")
    ssh = shlex.join(["ssh", "-p", str(sshd.port), *sshd.client_options()])
    result = run(["rsync", "-a", "-e", ssh, f"{tree}/", f"{sshd.destination}:{remote}/tree/"])
    assert result.returncode == 0, result.stderr
    compared = filecmp.dircmp(tree, remote / "tree")
    assert (compared.left_only, compared.right_only, compared.diff_files) == ([], [], [])
    assert (remote / "tree" / "sub" / "payload.bin").read_bytes() == payload.read_bytes()


def test_terminal(sshd: SshdTarget) -> None:
    problem = pty_problem()
    if problem:
        pytest.skip(problem)  # a property of this machine, which installing nothing fixes
    result = run(sshd.ssh_argv("tty", options=("-tt",)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("/dev/pts/"), result.stdout


def test_wrong_host_key_is_refused(sshd: SshdTarget, tmp_path: Path) -> None:
    impostor = make_client_key(tmp_path / "impostor")
    known = tmp_path / "known_hosts"
    known.write_text(known_hosts_line(sshd.host, sshd.port, impostor) + "\n")
    result = run(dataclasses.replace(sshd, known_hosts=known).ssh_argv("true"))
    assert result.returncode == 255
    assert ("Host key verification failed" in result.stderr
            or "REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stderr), result.stderr


def test_stop_refuses_and_ends_sessions(tmp_path: Path) -> None:
    need(missing_sshd())
    target = start_sshd(tmp_path / "own")
    session = subprocess.Popen(target.ssh_argv("echo started; sleep 60"), text=True,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
    try:
        assert session.stdout is not None
        assert session.stdout.readline() == "started\n"
        target.stop()
        assert not target.alive()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((target.host, target.port), timeout=5).close()
        session.wait(10)  # the connection's own sshd went with the listener
    finally:
        target.stop()
        if session.poll() is None:
            session.kill()
            session.wait()
