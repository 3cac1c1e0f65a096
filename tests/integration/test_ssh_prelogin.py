"""SSH before login: a connection that does not log in within ``ssh.login_grace`` is dropped,
and one address holds at most ``ssh.max_unauthenticated`` connections that have not logged in
(a client that never sends its banner cannot hold the listener)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import sshgw
from tests.sshd import SshdTarget
from tests.sshgw import SshGateway, start_ssh_gateway, stop_ssh_gateway

pytestmark = pytest.mark.integration


@pytest.fixture
def grace() -> str:
    return "1s"


@pytest.fixture
def gw(sshd: SshdTarget, tmp_path: Path, grace: str) -> Iterator[SshGateway]:
    policy = sshgw.POLICY.replace(
        "      login_attempts: 3\n",
        f"      login_attempts: 3\n      login_grace: {grace}\n      max_unauthenticated: 3\n")
    # A long startup timeout: only the login grace can be what drops a silent connection.
    policy = policy.replace("startup_timeout: 5s", "startup_timeout: 120s")
    assert policy.count(f"login_grace: {grace}") == 1 and "startup_timeout: 120s" in policy
    gateway = start_ssh_gateway(sshd, tmp_path / "gw", policy=policy)
    try:
        yield gateway
    finally:
        stop_ssh_gateway(gateway)


def silent(gw: SshGateway) -> socket.socket:
    """A TCP connection to the SSH listener that never says anything."""
    s = socket.create_connection(("127.0.0.1", gw.port()), timeout=10)
    s.recv(256)  # the gateway's banner: it is connected and counted
    return s


def closed_by_gateway(s: socket.socket, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    s.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            if s.recv(4096) == b"":
                return True
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True
    return False


def login(gw: SshGateway) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(gw.ssh_argv("echo in"), env=gw.env(), input=b"", capture_output=True,
                          timeout=60)


def test_a_connection_that_never_logs_in_is_dropped(gw: SshGateway) -> None:
    with silent(gw) as s:
        assert closed_by_gateway(s)


@pytest.mark.parametrize("grace", ["60s"])  # the held connections outlive the test
def test_one_address_holds_a_bounded_number_of_connections_not_logged_in(
        gw: SshGateway) -> None:
    held = [silent(gw) for _ in range(3)]
    try:
        with socket.create_connection(("127.0.0.1", gw.port()), timeout=10) as extra:
            assert closed_by_gateway(extra, 5)  # refused before it could say anything
        assert login(gw).returncode != 0  # the same address, over its cap
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 10
    while (result := login(gw)).stdout != b"in\n":  # once they are gone, logins work again
        assert time.monotonic() < deadline, result.stderr
        time.sleep(0.1)
