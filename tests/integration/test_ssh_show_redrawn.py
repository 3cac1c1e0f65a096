"""``gatewatch show`` of an SSH session whose screen was cleared while a line was typed
(issue 16): the command is recorded as the user typed it, not with the prompt in front.

Through a real OpenSSH sshd and bash, in the lenient terminal mode, where the gateway reads
the line off its terminal emulator (``engine/ssh/lines.py``): Ctrl-L clears the screen and
bash draws the prompt again on the top row, away from the row where the line began.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from tests.integration.test_recording import run_cli
from tests.integration.test_ssh_interactive import connect, read_until, shell
from tests.sshgw import SshGateway

pytestmark = pytest.mark.integration

CLEAR = "\x1b[H\x1b[2J"  # bash's answer to Ctrl-L: home, clear the screen


async def _recorded(gw: SshGateway, marker: str) -> list[str]:
    deadline = time.monotonic() + 10
    while not (rows := gw.query("SELECT text FROM statements WHERE text LIKE ? ORDER BY seq",
                                f"%{marker}%")):
        assert time.monotonic() < deadline, f"{marker} was never recorded"
        await asyncio.sleep(0.05)
    return [r["text"] for r in rows]


@pytest.mark.parametrize("connection", ["web", "web_strict"])
async def test_a_command_typed_after_ctrl_l_is_recorded_without_the_prompt(
        gw: SshGateway, connection: str) -> None:
    # letters no encoding uses alone: a hex-looking word may be held as a value still growing
    marker = "".join(random.choice("ghjkmnpqrstuvwxyz") for _ in range(10))
    async with connect(gw, connection=connection) as conn:
        process = await shell(conn)
        for i in range(3):  # the prompt moves down the screen
            process.stdin.write(f"echo filler-{i}\n")
            await read_until(process, f"filler-{i}\r\n")
        process.stdin.write("\x0c")  # Ctrl-L before the first key of the line
        await read_until(process, CLEAR)
        process.stdin.write(f"echo first-{marker}\n")
        await read_until(process, f"first-{marker}\r\n")
        process.stdin.write(f"echo second-{marker}")
        await read_until(process, f"second-{marker}")
        process.stdin.write("\x0c")  # Ctrl-L in the middle of a line: drawn again whole
        await read_until(process, CLEAR)
        process.stdin.write("-end\n")
        await read_until(process, f"second-{marker}-end\r\n")
        process.stdin.write("exit\n")
        await asyncio.wait_for(process.wait_closed(), 10)
    assert await _recorded(gw, f"first-{marker}") == [f"echo first-{marker}"]
    assert await _recorded(gw, f"second-{marker}") == [f"echo second-{marker}-end"]
    [session] = gw.query("SELECT session_id FROM statements WHERE text = ?",
                         f"echo first-{marker}")
    shown = run_cli("show", str(session["session_id"]), "-c", str(gw.work / "policies.yaml"))
    assert shown.returncode == 0, shown.stderr
    commands = [row for row in shown.stdout.splitlines() if marker in row]
    assert len(commands) == 2 and all("gw$" not in row for row in commands), shown.stdout
