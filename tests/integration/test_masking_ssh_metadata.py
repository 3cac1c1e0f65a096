"""Issue 14, secrets moved out of files through channels other than output (real OpenSSH ssh,
sftp and sshd): a transform's exit status, a background process's arguments, file timestamps
and names made from the data, a second name of a file written through a link, and the command
text the store keeps. The secret file is seeded on the target; each test checks the values
never come back — to the client, in the exit status, or in the store — in clear, reversed or
spaced out."""

from __future__ import annotations

import itertools
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_masking_ssh_transfers import leaked
from tests.sshd import SshdTarget
from tests.sshgw import POLICY, SshGateway, start_ssh_gateway, stop_ssh_gateway

pytestmark = pytest.mark.integration

CARD = "4012888888881881"
SECRET = f"card {CARD}\nmail grace.hopper@example.com\n"
_COUNTER = itertools.count()


@pytest.fixture(scope="module")
def mgw(sshd: SshdTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGateway]:
    gateway = start_ssh_gateway(sshd, tmp_path_factory.mktemp("sshgw"), policy=POLICY)
    try:
        yield gateway
    finally:
        stop_ssh_gateway(gateway)


@pytest.fixture
def work(mgw: SshGateway) -> Path:
    """A directory of its own on the target, holding the secret file ``s.txt``."""
    path = mgw.sshd.home / "meta" / f"run-{next(_COUNTER)}"
    path.mkdir(parents=True)
    (path / "s.txt").write_text(SECRET)
    return path


def run(gw: SshGateway, command: str, user: str = "alice") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(gw.ssh_argv(command, user=user), env=gw.env(user),
                          capture_output=True, timeout=60, stdin=subprocess.DEVNULL)


def exposed(data: bytes) -> list[str]:
    """The seeded values in ``data``: in clear, reversed, spaced out."""
    text = data.decode("utf-8", "replace")
    flat = "".join(text.split())
    found = [v for v in (CARD, "grace.hopper@example.com")
             if v in flat or v[::-1] in flat]
    return found + leaked(data)


def stored(gw: SshGateway) -> bytes:
    """Everything the store keeps of SSH sessions: output, command texts, exit statuses."""
    deadline = time.monotonic() + 5
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = gw.query("SELECT data FROM ssh_output")
        if rows:
            break
        time.sleep(0.05)
    out = b"".join(bytes(r["data"]) for r in rows)
    texts = gw.query("SELECT text, exit_status FROM statements")
    return out + "\n".join(f"{r['text']} {r['exit_status']}" for r in texts).encode()


def test_a_transforms_exit_status_carries_no_byte_of_it(mgw: SshGateway, work: Path) -> None:
    """F20: ``awk '{exit substr($2,K,2)+0}'`` gave two digits of the card per connection, to
    the client and into ``statements.exit_status``; only failure (1) goes on now."""
    digits = ""
    for k in range(1, len(CARD), 2):
        result = run(mgw, f"awk 'NR==1{{exit substr($2,{k},2)+0}}' {work}/s.txt")
        digits += f"{result.returncode:02d}"
        assert result.returncode in (0, 1), result.returncode
    assert digits != CARD
    deadline = time.monotonic() + 10
    statuses: set[object] = {None}
    while None in statuses and time.monotonic() < deadline:  # the last may still be ending
        time.sleep(0.05)
        statuses = {r["exit_status"] for r in mgw.query(
            "SELECT exit_status FROM statements WHERE text LIKE 'awk %exit substr%'")}
    assert statuses and statuses <= {0, 1}, statuses
    # a plain command keeps its exit status
    assert run(mgw, "exit 3").returncode == 3
