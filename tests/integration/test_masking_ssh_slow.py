"""ARCHITECTURE.md invariant 6 through the real OpenSSH client and sshd: a value the target
prints one character at a time, 50 to 100 ms apart (a pause inside a value longer than the
gateway's 20 ms quiet moment, every time), is never on the client's screen nor in the recording
in clear (what the client is sent may begin a value before it is complete: that is drawn
over once it is; the recording never has even its beginning).

The client is ``ssh -tt`` on a pseudo-terminal of a chosen size (so the gateway is told it), its
screen what the terminal emulator replay uses makes of every byte it read; also without a
terminal. The value comes plain, after a tab (where the gateway no longer knows the column),
after a cursor move up, and wrapping at 20 columns; from an exec and typed at a shell.
"""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Iterator

import pytest

from recordings.emulator import Emulator
from tests.sshd import SshdTarget
from tests.sshgw import POLICY, SshGateway, start_ssh_gateway, stop_ssh_gateway

pytestmark = pytest.mark.integration

CARD = "4111 1111 1111 1111"
EMAIL = "grace.hopper@example.com"
SECRET = "Hunter2-Secret42"
# (what is printed before the value, the value, what the screen shows of it masked)
CASES = {
    "card": ("card: ", CARD, "**** **** **** 1111"),
    "card-after-tab": ("card:\\t", CARD, "**** **** **** 1111"),
    "card-after-cursor-up": ("\\n\\033[Acard: ", CARD, "**** **** **** 1111"),
    "email": ("mail: ", EMAIL, "*****.******@******e.com"),
    "secret": ("password=", SECRET, "*******-****et42"),
}
GAPS = ("0.03", "0.05", "0.04")  # each longer than the quiet the gateway waits for (20 ms)


@pytest.fixture(scope="module")
def sgw(sshd: SshdTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGateway]:
    policy = POLICY.replace("    connections: [web]\n", "    connections: [web, web_strict]\n")
    gateway = start_ssh_gateway(sshd, tmp_path_factory.mktemp("sshgw-slow"), policy=policy)
    try:
        yield gateway
    finally:
        stop_ssh_gateway(gateway)


def slowly(before: str, value: str, marker: str) -> str:
    """A command line of plain programs that prints ``value`` a character at a time."""
    steps = [f"printf '{before}'"]
    for i, char in enumerate(value):
        steps += [f"sleep {GAPS[i % len(GAPS)]}", f"printf '%s' '{char}'"]
    return "; ".join([*steps, f"printf ' {marker}\\n'"])


class PtyClient:
    """``ssh -tt`` with a pseudo-terminal of ``cols`` by ``rows`` as its terminal: everything
    it writes there is kept, as a terminal would have drawn it."""

    def __init__(self, argv: list[str], env: dict[str, str], cols: int, rows: int) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(argv, env=env, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True)
        os.close(slave)
        self.seen = b""
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the client closed its terminal
                return
            if not chunk:
                return
            with self._lock:
                self.seen += chunk

    def keys(self, data: str) -> None:
        os.write(self.master, data.encode())

    def wait_for(self, wanted: bytes, since: int = 0, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while True:
            with self._lock:
                if wanted in self.seen[since:]:
                    return
                tail = self.seen[-400:]
            assert time.monotonic() < deadline, f"never saw {wanted!r}: {tail!r}"
            time.sleep(0.02)

    def mark(self) -> int:
        with self._lock:
            return len(self.seen)

    def close(self) -> bytes:
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(10)
        os.close(self.master)
        return self.seen


def screen(data: bytes, cols: int, rows: int) -> str:
    """The client's screen: rows joined, a full row to the next (a line the terminal wrapped)."""
    emu = Emulator(cols, rows)
    emu.feed(data)
    lines = emu.screen.display
    return "".join(row if len(row.rstrip()) == cols else row.rstrip() + "\n" for row in lines)


def recorded(gw: SshGateway, marker: str) -> bytes:
    """The recorded output of the session that printed ``marker``, once it has ended."""
    deadline = time.monotonic() + 15
    while True:
        rows = gw.query("SELECT s.id FROM statements t JOIN sessions s ON s.id = t.session_id"
                        " WHERE t.text LIKE ? AND s.ended_at IS NOT NULL", f"%{marker}%")
        if rows:
            data = b"".join(bytes(r["data"]) for r in gw.query(
                "SELECT data FROM ssh_output WHERE session_id = ? AND stream = 'o'",
                rows[-1]["id"]))
            if marker.encode() in data:
                return data
        assert time.monotonic() < deadline, f"the session of {marker} was never recorded"
        time.sleep(0.02)


def in_clear(data: bytes, value: str) -> bool:
    """The value, or a piece of it that only it could be (its first 12 characters)."""
    return value.encode() in data or value[:12].encode() in data


@pytest.mark.parametrize("cols", [80, 20])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_value_printed_slowly_at_a_terminal_is_masked_on_screen_and_in_the_record(
        sgw: SshGateway, case: str, cols: int) -> None:
    before, value, masked = CASES[case]
    marker = f"slow-{case}-{cols}"
    client = PtyClient(sgw.ssh_argv(slowly(before, value, marker), options=("-tt",)),
                       sgw.env(), cols, 24)
    client.wait_for(marker.encode())
    sent = client.close()
    shown = screen(sent, cols, 24)
    assert value not in shown and masked in shown.replace("\n", ""), shown
    # (its beginning may have been drawn before it was complete, and was drawn over since)
    assert value.encode() not in sent, sent
    tape = recorded(sgw, marker)
    assert not in_clear(tape, value) and masked.encode() in tape, tape


@pytest.mark.parametrize("case", ["card", "email"])
def test_a_value_printed_slowly_without_a_terminal_is_masked(sgw: SshGateway,
                                                             case: str) -> None:
    before, value, masked = CASES[case]
    marker = f"slow-notty-{case}"
    result = subprocess.run(sgw.ssh_argv(slowly(before, value, marker)), env=sgw.env(),
                            capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert marker.encode() in result.stdout, result
    assert not in_clear(result.stdout, value) and masked.encode() in result.stdout
    tape = recorded(sgw, marker)
    assert not in_clear(tape, value) and masked.encode() in tape, tape


# (In lenient mode a line longer than the screen is refused: it is not read whole.)
@pytest.mark.parametrize(("connection", "cols"), [("web", 80), ("web_strict", 80),
                                                  ("web_strict", 20)])
def test_a_value_printed_slowly_at_a_shell_is_masked(sgw: SshGateway, connection: str,
                                                     cols: int) -> None:
    marker = f"slow-shell-{connection}-{cols}"
    client = PtyClient(sgw.ssh_argv(connection=connection, options=("-tt",)), sgw.env(),
                       cols, 24)
    deadline = time.monotonic() + 30  # the shell's first prompt before any key, as a person
    while not (b"$ " in client.seen or b"# " in client.seen):  # waits (keys typed earlier
        assert time.monotonic() < deadline, client.seen[-400:]  # are lines never seen)
        time.sleep(0.02)
    client.keys("export PS1='g''w$ '\r")
    client.wait_for(b"gw$ ")
    for case in ("card-after-tab", "email", "secret"):
        before, value, _ = CASES[case]
        at = client.mark()
        client.keys(slowly(before, value, f"{marker}-{case}") + "\r")
        client.wait_for(f"{marker}-{case}\r\n".encode(), at)
        client.wait_for(b"gw$ ", at)
    client.keys("exit\r")
    sent = client.close()
    shown = screen(sent, cols, 24)
    # The session's whole output once it has ended (the typed line's echo alone, recorded
    # first, also holds the markers).
    tape = recorded(sgw, f"{marker}-card-after-tab")
    for case in ("card-after-tab", "email", "secret"):
        _, value, masked = CASES[case]
        assert value not in shown, shown
        assert value.encode() not in sent
        # the echo of the typed line has the value split into printf words: never whole
        assert not in_clear(tape, value) and masked.encode() in tape, (case, tape)
