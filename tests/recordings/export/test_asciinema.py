"""End to end: ``gatewatch export --format asciicast`` read by the real asciinema (2.x).

``asciinema cat`` runs without a terminal (a new session, so /dev/tty cannot be opened and it
prints straight through); ``asciinema play`` runs in a pseudo-terminal of its own, as an
operator would, at 100x speed with idle time capped, so the playback takes a fraction of a
second whatever the recorded times.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from gatewatch.cli.main import main
from recordings.export import events
from store import SqliteStore
from tests.conftest import REQUIRE
from tests.recordings.export.recorded import an_ssh_session, out, record, ssh_open
from tests.recordings.export.test_cli import POLICIES

try:
    import asciinema  # run as ``python -m asciinema`` below
except ImportError:  # like the integration tests: skip here, fail in CI
    if REQUIRE:
        pytest.fail("GATEWATCH_REQUIRE_INTEGRATION=1 but asciinema is not installed",
                    pytrace=False)
    pytest.skip("needs asciinema (in the dev extras: pip install -e .[dev])",
                allow_module_level=True)

SCREEN = "$ echo price\r\nprice: 5 €\r\n$ \r\n[gatewatch] blocked\r\n$ rebooting\r\n"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "policies.yaml"
    path.write_text(POLICIES)
    return path


def export_cast(config: Path, session_id: str, path: Path) -> Path:
    assert main(["export", session_id, "--format", "asciicast", "-o", str(path),
                 "-c", str(config)]) == 0
    return path


def asciinema(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "asciinema", *args], capture_output=True,
                          stdin=subprocess.DEVNULL, start_new_session=True, timeout=60,
                          check=False)


def in_a_terminal(*args: str) -> tuple[int, bytes]:
    """Run asciinema with a pseudo-terminal as its controlling terminal; all it wrote."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "asciinema", *args], stdin=slave, stdout=slave, stderr=slave,
        start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    os.close(slave)
    output = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            assert ready, "asciinema play wrote nothing for 30 s"
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side is closed, asciinema is done
                break
            if not data:
                break
            output += data
        return proc.wait(timeout=30), output
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_asciinema_cat_prints_the_recorded_terminal(config: Path, tmp_path: Path,
                                                   writer: SqliteStore) -> None:
    record(writer, an_ssh_session("s1"))
    cast = export_cast(config, "s1", tmp_path / "s1.cast")
    done = asciinema("cat", str(cast))
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout.decode() == SCREEN


def test_asciinema_cat_plays_an_exec_session(config: Path, tmp_path: Path,
                                            writer: SqliteStore) -> None:
    """``ssh host cmd`` has no terminal; the cast still plays what the user saw."""
    record(writer, [ssh_open("s1"), out("s1", 1, 0.1, b"up 3 days\nload 0.1\n", channel=0),
                    out("s1", 2, 0.2, b"warning\n", channel=0, stream="e")])
    cast = export_cast(config, "s1", tmp_path / "s1.cast")
    done = asciinema("cat", str(cast))
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout.decode() == "up 3 days\r\nload 0.1\r\nwarning\r\n"


def test_asciinema_play_accepts_the_file_in_a_terminal(config: Path, tmp_path: Path,
                                                      writer: SqliteStore) -> None:
    record(writer, an_ssh_session("s1"))
    cast = export_cast(config, "s1", tmp_path / "s1.cast")
    code, output = in_a_terminal("play", "-s", "100", "-i", "0.05", str(cast))
    assert code == 0
    assert output.decode() == SCREEN


def test_asciinema_reads_every_event_and_marker(config: Path, tmp_path: Path,
                                               writer: SqliteStore) -> None:
    record(writer, an_ssh_session("s1"))
    cast = export_cast(config, "s1", tmp_path / "s1.cast")
    done = asciinema("play", "-s", "100", "-i", "0.05", "--out-fmt", "asciicast", str(cast))
    assert done.returncode == 0, done.stderr
    header, *lines = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert header["gatewatch"]["session"]["id"] == "s1"
    ours = [json.loads(line) for line in cast.read_text().splitlines()[1:]]
    assert [e[1:] for e in lines] == [e[1:] for e in ours]
    assert sum(1 for e in lines if e[1] == "m") == 9


def test_a_long_session_read_in_pages(config: Path, tmp_path: Path, writer: SqliteStore,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Every chunk boundary splits a character; pages of three chunks: the text comes out
    whole."""
    monkeypatch.setattr(events, "OUTPUT_PAGE", 3)
    text = "".join(f"line {n}: naïve café — 北京 ✓\r\n" for n in range(2000))
    data = text.encode()
    cuts = list(range(0, len(data), 997))  # a prime stride: cuts land inside characters
    ops = [ssh_open("s1"), out("s1", 1, 0.0, b"132x43", stream="r")]
    for ref, start in enumerate(cuts, start=2):
        ops.append(out("s1", ref, ref / 100, data[start:start + 997]))
    record(writer, ops)
    cast = export_cast(config, "s1", tmp_path / "long.cast")
    done = asciinema("cat", str(cast))
    assert done.returncode == 0
    assert done.stdout.decode() == text
    assert "\ufffd" not in cast.read_text()
    assert main(["verify", "s1", "--export", str(cast), "-c", str(config)]) == 0
