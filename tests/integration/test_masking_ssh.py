"""Issue 14 through the SSH gateway (real OpenSSH client and sshd): what is recorded."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.sshgw import SshGateway

pytestmark = pytest.mark.integration

CARD = b"4111111111111111"


def test_exec_stdin_is_recorded_masked(gw: SshGateway) -> None:
    data = b"name,card\nada," + CARD + b"\nalan,5555 5555 5555 4444\n"
    result = subprocess.run(gw.ssh_argv("cat > /dev/null; echo stdin-probe-done"),
                            env=gw.env(), input=data, capture_output=True, timeout=60)
    assert result.returncode == 0 and b"stdin-probe-done" in result.stdout
    recorded = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not recorded.endswith(b"\n"):
        rows = gw.query("SELECT s.id FROM statements t JOIN sessions s"
                        " ON s.id = t.session_id WHERE t.text LIKE '%stdin-probe-done%'"
                        " AND s.ended_at IS NOT NULL")
        if rows:
            recorded = b"".join(
                r["data"] for r in gw.query("SELECT data FROM ssh_output WHERE session_id = ?"
                                            " AND stream = 'i'", rows[-1]["id"]))
        time.sleep(0.02)
    assert recorded and CARD not in recorded and b"5555 5555 5555 4444" not in recorded
    assert recorded.endswith(b"4444\n")  # partial: the last four digits stay
