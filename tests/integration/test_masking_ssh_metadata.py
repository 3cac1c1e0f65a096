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


@pytest.fixture
def fresh(sshd: SshdTarget, tmp_path: Path) -> Iterator[SshGateway]:
    """A gateway of its own (and so a journal of its own): what one test leaves on the
    target's record masks that identity's later output whole, by design."""
    gateway = start_ssh_gateway(sshd, tmp_path / "gw", policy=POLICY)
    try:
        yield gateway
    finally:
        stop_ssh_gateway(gateway)


def _sftp(gw: SshGateway, batch: str, tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    path = tmp_path / "batch"
    path.write_text(batch)
    return subprocess.run(
        ["sftp", "-P", str(gw.port()), *gw.client_options(key=True), "-b", str(path),
         "alice@127.0.0.1"], env=gw.env(), capture_output=True, timeout=60)


def _masked_whole(result: subprocess.CompletedProcess[bytes]) -> None:
    assert result.stdout.strip(), result.stderr
    assert set(result.stdout) <= set(b"* \t\r\n"), result.stdout[:300]


def test_names_made_from_data_are_not_listed(fresh: SshGateway, work: Path,
                                             tmp_path: Path) -> None:
    """F22: ``awk | xargs mkdir`` turned the values into directory names, shown by an SFTP
    ``ls``, ``scp -r`` and (reversed) by plain ``ls``; from then on that identity's output on
    the target is masked whole and its transfers refused."""
    made = run(fresh, f"mkdir -p {work}/nm && cd {work}/nm && "
                      f"awk '{{print $2}}' ../s.txt | rev | xargs mkdir -p")
    assert made.returncode == 0, made.stderr
    assert (work / "nm" / CARD[::-1]).is_dir()  # the names are there, on the target
    listed = run(fresh, f"ls {work}/nm")
    assert not exposed(listed.stdout), listed.stdout[:300]
    _masked_whole(listed)
    assert b"file names, times or process arguments" in listed.stderr, listed.stderr
    # a later connection too, whatever prints names (a glob, find)
    for line in (f"echo {work}/nm/*", f"find {work}/nm"):
        again = run(fresh, line)
        assert not exposed(again.stdout), (line, again.stdout[:300])
        _masked_whole(again)
    # SFTP: refused, names not shown
    got = _sftp(fresh, f"ls {work}/nm\n", tmp_path)
    assert got.returncode != 0 and not exposed(got.stdout + got.stderr), got.stdout[:300]
    assert b"file transfers refused" in got.stderr, got.stderr
    scp = subprocess.run(["scp", "-r", "-P", str(fresh.port()), *fresh.client_options(),
                          f"alice@127.0.0.1:{work}/nm", str(tmp_path / "dl")],
                         env=fresh.env(), capture_output=True, timeout=60)
    assert scp.returncode != 0
    assert not (tmp_path / "dl").exists() or not any(
        CARD[::-1] in p.name for p in (tmp_path / "dl").iterdir())
    assert not exposed(stored(fresh))


def test_a_background_process_arguments_are_not_shown(fresh: SshGateway, work: Path) -> None:
    """F3: a transformed secret left in a background process's arguments came back through
    plain ``ps -eo args``."""
    parked = run(fresh, f"sed 's/./& /g' {work}/s.txt | "
                        f"xargs timeout 15 tail -F /dev/null >/dev/null 2>&1 &")
    assert parked.returncode == 0, parked.stderr
    deadline = time.monotonic() + 10
    mine = f"/dev/null c a r d {' '.join(CARD)}"
    while mine not in subprocess.run(["ps", "-eo", "args"], capture_output=True,
                                     text=True).stdout:
        assert time.monotonic() < deadline, "the process was never started"
        time.sleep(0.05)
    shown = run(fresh, "ps -eo args")
    assert not exposed(shown.stdout), shown.stdout[:300]
    _masked_whole(shown)


def test_file_times_made_from_data_are_not_shown(fresh: SshGateway, work: Path) -> None:
    """F7: the card, eight digits at a time, written as two files' modification times
    (``awk | xargs touch -d @…``), came back through plain ``ls -l`` and ``stat``."""
    assert run(fresh, f"mkdir -p {work}/z; touch {work}/z/a {work}/z/b").returncode == 0
    moved = run(fresh, f"awk 'NR==1{{print substr($2,1,8)}}' {work}/s.txt | "
                       f"xargs -I{{}} touch -d @{{}} {work}/z/a; "
                       f"awk 'NR==1{{print substr($2,9,8)}}' {work}/s.txt | "
                       f"xargs -I{{}} touch -d @{{}} {work}/z/b")
    assert moved.returncode == 0, moved.stderr
    assert int((work / "z" / "a").stat().st_mtime) == int(CARD[:8])  # it is there
    for line in (f"ls -l --time-style=+%s {work}/z", f"stat -c '%n %Y' {work}/z/a {work}/z/b"):
        shown = run(fresh, line)
        assert CARD[:8].encode() not in shown.stdout, (line, shown.stdout)
        assert CARD[8:].encode() not in shown.stdout, (line, shown.stdout)
        _masked_whole(shown)
    assert CARD[:8].encode() not in stored(fresh)


@pytest.mark.parametrize("make", ["cp -l {t} {w}", "link {t} {w}", "cp -s {t} {w}",
                                  "ln -s {t} {w}"])
def test_a_file_written_through_another_name_is_masked_whole(mgw: SshGateway, work: Path,
                                                             make: str) -> None:
    """F24: a transform wrote through a second name of a file (a hard link made with ``cp -l``
    or ``link``, a symbolic one with ``cp -s``/``ln -s``); the mark named only the path written
    and ``cat`` of the other name printed the values spaced out."""
    t, w = work / "t.txt", work / "w.txt"
    made = run(mgw, f"touch {t} && " + make.format(t=t, w=w))
    assert made.returncode == 0, made.stderr
    wrote = run(mgw, f"sed 's/./& /g' {work}/s.txt > {w}")
    assert wrote.returncode == 0, wrote.stderr
    assert exposed(t.read_bytes())  # there, through the other name
    read = run(mgw, f"cat {t}")
    assert not exposed(read.stdout), read.stdout[:300]
    _masked_whole(read)


def test_a_value_in_quoted_pieces_is_not_recorded(mgw: SshGateway) -> None:
    """F26: shell quoting split a card in the command line; the store kept it in clear (the
    output was masked). The record reads the words as the shell does."""
    line = ("echo 4012''888888881881; echo 4012\\888888881881; echo \"4012\"888888881881; "
            "echo 4012$'8'88888881881; echo 4012$'\\x38'88888881881")
    result = run(mgw, line)
    assert result.returncode == 0 and CARD.encode() not in result.stdout, result.stdout
    deadline = time.monotonic() + 10
    texts: list[str] = []
    while not texts and time.monotonic() < deadline:
        texts = [r["text"] for r in mgw.query(
            "SELECT text FROM statements WHERE text LIKE 'echo %1881; echo %'")]
        time.sleep(0.05)
    assert texts
    assert not any("4012" in t for t in texts), texts  # no piece of it either
    assert CARD.encode() not in stored(mgw)


def test_sftp_lists_names_masked(mgw: SshGateway, work: Path, tmp_path: Path) -> None:
    """F22: an SFTP listing passed file names as they are; a value made a name (here by the
    target's own hand) is listed masked, in the short and the long form, and stored masked."""
    (work / "names").mkdir()
    (work / "names" / CARD).mkdir()
    (work / "names" / f"stmt-{CARD}.pdf").write_text("x")
    got = _sftp(mgw, f"ls {work}/names\nls -l {work}/names\n", tmp_path)
    assert got.returncode == 0, got.stderr
    assert b"1881" in got.stdout  # listed, masked
    assert CARD.encode() not in got.stdout, got.stdout
    assert CARD.encode() not in stored(mgw)


def test_names_made_from_a_marked_file_are_not_listed(fresh: SshGateway, work: Path) -> None:
    """A file written by a transform (marked), then made names by a plain runner: ``xargs -a``
    reads the reversed values with no transform on its line."""
    assert run(fresh, f"rev {work}/s.txt > {work}/r").returncode == 0
    made = run(fresh, f"mkdir -p {work}/nm && cd {work}/nm && xargs -a ../r mkdir -p")
    assert made.returncode == 0, made.stderr
    assert (work / "nm" / CARD[::-1]).is_dir()
    listed = run(fresh, f"ls {work}/nm")
    assert not exposed(listed.stdout), listed.stdout[:300]
    _masked_whole(listed)
