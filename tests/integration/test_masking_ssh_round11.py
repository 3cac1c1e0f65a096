"""Issue 14, outside attack round 11 through the SSH gateway (real OpenSSH client and sshd):
files a transform wrote through a writer's options the mark parser missed (``sort -uo F``,
``uniq -f 0 - F``, ``split - P -l 1`` … G1), a plain reader started earlier copying a later
transform's output into an unmarked file (``tail -f x > t &``, a named pipe: G2), one file per
digit sized by the digit and listed by ``ls -l`` (G6), and plain ``sort`` placing the masked
line among the user's probe lines (G13). Each came back in clear; none does now, to the
client or in the recorded output. The reversed values are checked on the target too, so a test
that saw them come back would fail."""

from __future__ import annotations

import itertools
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_masking_ssh_transfers import leaked
from tests.sshd import SshdTarget
from tests.sshgw import POLICY, SshGateway, start_ssh_gateway, stop_ssh_gateway

pytestmark = pytest.mark.integration

CARD = "4012888888881881"
SECRET = f"card {CARD}\nmail grace.hopper@example.com\n"
_COUNTER = itertools.count()


@pytest.fixture(scope="module")
def rgw(sshd: SshdTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGateway]:
    gateway = start_ssh_gateway(sshd, tmp_path_factory.mktemp("sshgw"), policy=POLICY)
    try:
        yield gateway
    finally:
        stop_ssh_gateway(gateway)


@pytest.fixture
def fresh(sshd: SshdTarget, tmp_path: Path) -> Iterator[SshGateway]:
    """A gateway (and journal) of its own: a process left running marks every path of alice."""
    gateway = start_ssh_gateway(sshd, tmp_path / "gw", policy=POLICY)
    try:
        yield gateway
    finally:
        stop_ssh_gateway(gateway)


def _work(gw: SshGateway) -> Path:
    path = gw.sshd.home / "round11" / f"run-{next(_COUNTER)}"
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
    return [v for v in (CARD, "grace.hopper@example.com") if v in flat or v[::-1] in flat] + (
        leaked(data))


def masked_whole(result: subprocess.CompletedProcess[bytes]) -> None:
    assert result.stdout.strip(), result.stderr
    assert set(result.stdout) <= set(b"* \t\r\n"), result.stdout[:300]


def recorded(gw: SshGateway) -> bytes:
    time.sleep(0.3)  # the last session's output is committed as it ends
    return b"".join(bytes(r["data"]) for r in gw.query("SELECT data FROM ssh_output"))


@pytest.mark.parametrize("form", [
    "sort -uo {o}", "sort --output {o}", "uniq -f 0 - {o}", "iconv -f utf-8 -t utf-8 --output {o}",
    "shuf --output {o}", "(cd {w} && tee -- -o >/dev/null)", "csplit -s -f {o} - 2",
    "split - {o} -l 1",
])
def test_a_transform_into_a_writer_is_masked_for_the_next_connection(rgw: SshGateway,
                                                                     form: str) -> None:
    work = _work(rgw)
    written = run(rgw, f"rev {work}/s.txt | {form.format(o=f'{work}/o', w=work)}; echo done")
    assert written.returncode == 0, written.stderr
    pieces = sorted(p for p in work.iterdir() if p.name != "s.txt")
    assert pieces and exposed(b"".join(p.read_bytes() for p in pieces))  # there, reversed
    read = run(rgw, f"cat {work}/*o*")
    assert not exposed(read.stdout), read.stdout[:300]
    masked_whole(read)
    assert b"was written on this target by a command whose output" in read.stderr
    assert not exposed(recorded(rgw))


@pytest.mark.parametrize("copy", ["cp -vt {d} {x}", "cp --target-directory {d} {x}",
                                  "mv -ft {d} {x}", "cp {x} -t {d}"])
def test_a_copy_of_a_transformed_file_is_masked_where_it_lands(rgw: SshGateway,
                                                                copy: str) -> None:
    work = _work(rgw)
    (work / "d").mkdir()
    assert run(rgw, f"rev {work}/s.txt > {work}/x").returncode == 0
    assert run(rgw, copy.format(d=f"{work}/d", x=f"{work}/x")).returncode == 0
    assert exposed((work / "d" / "x").read_bytes())  # there, reversed
    read = run(rgw, f"cat {work}/d/x")
    assert not exposed(read.stdout), read.stdout[:300]
    masked_whole(read)


def _wait_for(path: Path, text: str) -> None:
    deadline = time.monotonic() + 15
    while not (path.exists() and text in path.read_text(errors="replace")):
        assert time.monotonic() < deadline, f"{path} never held {text!r}"
        time.sleep(0.05)


def test_a_reader_left_running_does_not_copy_a_later_transform_in_clear(
        fresh: SshGateway) -> None:
    work = _work(fresh)
    assert run(fresh, f"touch {work}/lg.log").returncode == 0
    assert run(fresh, f"timeout 30 tail -f {work}/lg.log > {work}/t.txt 2>/dev/null &"
               ).returncode == 0
    time.sleep(0.5)  # tail is reading
    assert run(fresh, f"rev {work}/s.txt >> {work}/lg.log; echo wrote").returncode == 0
    _wait_for(work / "t.txt", CARD[::-1])  # the copy is there, reversed
    read = run(fresh, f"cat {work}/t.txt")
    assert not exposed(read.stdout), read.stdout[:300]
    masked_whole(read)
    # a named pipe read by a background cat
    assert run(fresh, f"mkfifo {work}/ff").returncode == 0
    assert run(fresh, f"timeout 30 cat {work}/ff > {work}/o.txt 2>/dev/null &").returncode == 0
    assert run(fresh, f"rev {work}/s.txt > {work}/ff; echo wrote").returncode == 0
    _wait_for(work / "o.txt", CARD[::-1])
    read = run(fresh, f"cat {work}/o.txt")
    assert not exposed(read.stdout), read.stdout[:300]
    masked_whole(read)
    assert not exposed(recorded(fresh))


def test_sizes_made_from_a_secret_are_not_listed(rgw: SshGateway) -> None:
    work = _work(rgw)
    digits = "; ".join(
        f"awk 'NR==1{{printf \"%*s\", substr($2,{i},1)+0, \"\"}}' {work}/s.txt > {work}/zs/d{i:02d}"
        for i in range(1, len(CARD) + 1))
    assert run(rgw, f"mkdir -p {work}/zs; {digits}").returncode == 0
    sizes = "".join(str((work / "zs" / f"d{i:02d}").stat().st_size)
                    for i in range(1, len(CARD) + 1))
    assert sizes == CARD  # there, on the target
    for line in (f"ls -l {work}/zs", f"stat -c %s {work}/zs/*", f"du -ab {work}/zs",
                 f"wc -c {work}/zs/*"):
        shown = run(rgw, line)
        sizes_shown = "".join(c for c in shown.stdout.decode(errors="replace") if c.isdigit())
        assert CARD not in sizes_shown, (line, shown.stdout[:300])
        masked_whole(shown)
        assert b"size" in shown.stderr, shown.stderr
    # names alone stay readable (a mark by name only, ``-o`` of the tee test, is a name in
    # any directory: ``ls -l`` anywhere is masked whole once one exists)
    plain = run(rgw, f"ls {work} {work}/zs")
    assert b"s.txt" in plain.stdout and b"d16" in plain.stdout, plain.stdout[:300]


def test_sort_does_not_place_a_masked_line_among_probe_lines(rgw: SshGateway) -> None:
    work = _work(rgw)
    (work / "pr.txt").write_text("".join(f"card {d}\n" for d in range(10)))
    shown = run(rgw, f"sort {work}/s.txt {work}/pr.txt")
    assert shown.returncode == 0, shown.stderr
    assert b"card 3" not in shown.stdout and b"card 5" not in shown.stdout, shown.stdout
    masked_whole(shown)
    for line in (f"cat {work}/s.txt {work}/pr.txt | sort", f"uniq -w 6 {work}/pr.txt"):
        again = run(rgw, line)
        masked_whole(again)
    # a plain reader is masked the usual way: the rest of the line stays
    plain = run(rgw, f"cat {work}/s.txt {work}/pr.txt")
    assert b"card 3" in plain.stdout and b"1881" in plain.stdout, plain.stdout
    assert not exposed(plain.stdout)


@pytest.mark.parametrize("reader", ["sleep 3; cat {f}", "timeout 6 tail -n +1 -f {f}"])
def test_a_reader_running_when_its_file_is_marked_is_masked_whole(rgw: SshGateway,
                                                                  reader: str) -> None:
    """A line judged before another connection's transform marks what it reads (G14, and
    G2's reader printing to its channel) prints that transform's output masked whole."""
    work = _work(rgw)
    target = work / "late.txt"
    target.write_text("start\n")
    first = subprocess.Popen(rgw.ssh_argv(reader.format(f=target)), env=rgw.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL)
    try:
        time.sleep(1.5)  # judged, running
        assert run(rgw, f"rev {work}/s.txt >> {target}; echo wrote").returncode == 0
        assert CARD[::-1] in target.read_text()  # there, reversed
        out, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert not exposed(out), out[:300]
    assert b"marked while a line of this connection that reads it ran" in err, err
    assert not exposed(recorded(rgw))
