"""Issue 14, a transformed file that outlives its connection (real OpenSSH ssh, scp, sftp and
sshd): one connection writes a secret file transformed (``rev … > x``, ``fold -w5 … | tee out``),
whose output the gateway masked whole; a later connection — another exec, an interactive shell,
scp or sftp, another identity — that reads that file gets its output masked whole from then on,
or the download refused, and is told why. A connection that reads only unmarked files is masked
the usual way, and a write without a transform (``echo hi > note.txt``) marks nothing. The files
are checked on the target too: the transformed values are there, so a test that saw them come
back in clear would fail."""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_masking_ssh_commands import session
from tests.integration.test_masking_ssh_transfers import CARDS, EMAILS, leaked
from tests.sshd import SshdTarget, known_hosts_line
from tests.sshgw import POLICY, SshGateway, start_ssh_gateway, stop_ssh_gateway

pytestmark = pytest.mark.integration

SECRETS = "".join(f"{i},{EMAILS[i % 2]},{CARDS[i % 3]},note {i}\n" for i in range(6))
_COUNTER = itertools.count()


# The same target by another name: its marks are found by its host key.
_BY_NAME = """  - name: web_by_name
    kind: ssh
    listen: 127.0.0.1:0
    upstream: {{host: localhost, port: {sshd_port}, user: {sshd_user},
               key_file: {client_key}, known_hosts: {work}/known_hosts_by_name}}
    allow: {{groups: [engineering, operators]}}
"""


@pytest.fixture(scope="module")
def wgw(sshd: SshdTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGateway]:
    policy = POLICY.replace("    connections: [web]\n",
                            "    connections: [web, web_strict, web_by_name]\n") + _BY_NAME
    work = tmp_path_factory.mktemp("sshgw")
    (work / "known_hosts_by_name").write_text(
        known_hosts_line("localhost", sshd.port, sshd.host_key_pub) + "\n")
    gateway = start_ssh_gateway(sshd, work, policy=policy)
    base = sshd.home / "written"
    base.mkdir(exist_ok=True)
    (base / "secret.env").write_text(SECRETS)
    try:
        yield gateway
    finally:
        stop_ssh_gateway(gateway)


@pytest.fixture
def work(wgw: SshGateway) -> Path:
    """A directory of its own on the target for each test."""
    path = wgw.sshd.home / "written" / f"run-{next(_COUNTER)}"
    path.mkdir()
    return path


def secret(gw: SshGateway) -> Path:
    return gw.sshd.home / "written" / "secret.env"


def run(gw: SshGateway, command: str, connection: str = "web",
        user: str = "alice") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(gw.ssh_argv(command, connection=connection, user=user),
                          env=gw.env(user), capture_output=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def exposed(data: bytes) -> list[str]:
    """Seeded values in ``data``: in clear, reversed, folded over lines."""
    text = data.decode("utf-8", "replace")
    return leaked(data) + leaked("".join(text.split()).encode())


def marks(gw: SshGateway) -> list[dict[str, object]]:
    path = gw.work / "store.db.ssh-written"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for_file(path: Path) -> None:
    deadline = time.monotonic() + 15
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} was never written"
        time.sleep(0.05)


def refusals(gw: SshGateway, like: str) -> list[dict[str, object]]:
    deadline = time.monotonic() + 10
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline and not rows:
        rows = gw.query("SELECT text, error, rule FROM statements WHERE rule = 'masking'"
                        " AND error LIKE ?", f"%{like}%")
        time.sleep(0.02)
    return rows


def test_a_file_reversed_by_one_exec_is_masked_whole_for_the_next(wgw: SshGateway,
                                                                    work: Path) -> None:
    written = run(wgw, f"rev {secret(wgw)} > {work}/x")
    assert written.returncode == 0, written.stderr
    assert exposed((work / "x").read_bytes())  # the values are there, reversed
    assert any(m["path"] == f"{work}/x" for m in marks(wgw))

    read = run(wgw, f"cat {work}/x")
    assert read.returncode == 0 and read.stdout.strip(), read.stderr
    assert not exposed(read.stdout), read.stdout[:300]
    assert set(read.stdout) <= set(b"* \t\r\n")  # masked whole
    assert b"was written on this target by a command whose output" in read.stderr

    # another identity, a glob, a recursive reader, a copy: the same
    for line in (f"cat {work}/*", f"grep -r , {work}", f"head -n 2 {work}/./x"):
        again = run(wgw, line, user="oncall")
        assert again.stdout.strip() and not exposed(again.stdout), (line, again.stdout[:300])
        assert set(again.stdout) <= set(b"* \t\r\n"), line
    copied = run(wgw, f"cp {work}/x {work}/y")
    assert copied.returncode == 0 and exposed((work / "y").read_bytes())
    read_copy = run(wgw, f"cat {work}/y")
    assert read_copy.stdout.strip() and not exposed(read_copy.stdout), read_copy.stdout[:300]


def test_the_same_target_by_another_name_knows_the_file(wgw: SshGateway, work: Path) -> None:
    assert run(wgw, f"rev {secret(wgw)} > {work}/x").returncode == 0
    read = run(wgw, f"cat {work}/x", connection="web_by_name")
    assert read.returncode == 0 and read.stdout.strip(), read.stderr
    assert not exposed(read.stdout), read.stdout[:300]
    assert b"was written on this target" in read.stderr
    plain = run(wgw, f"head -n 2 {secret(wgw)}", connection="web_by_name")
    assert b"note 1" in plain.stdout and not exposed(plain.stdout)


def test_a_relative_path_written_where_the_directory_is_not_known(wgw: SshGateway,
                                                                    work: Path) -> None:
    written = run(wgw, f"cd {work} && rev ../secret.env > r.txt")
    assert written.returncode == 0 and exposed((work / "r.txt").read_bytes())
    read = run(wgw, f"cat {work}/r.txt")
    assert read.stdout.strip() and not exposed(read.stdout), read.stdout[:300]


def test_a_file_folded_at_a_shell_is_masked_whole_at_the_next_shell(
        wgw: SshGateway, work: Path) -> None:
    done = work / "done"
    session(wgw, "web", [f"cd {work}", f"fold -w5 {secret(wgw)} | tee out",
                         f"echo ran > {done}"])
    wait_for_file(done)
    assert exposed((work / "out").read_bytes())  # folded, on the target
    for connection in ("web", "web_strict"):
        done = work / f"done-{connection}"
        screen = session(wgw, connection, [f"cat {work}/out", f"echo ran > {done}"])
        assert not exposed(screen), screen[-600:]
        assert b"out was written on this target" in screen, screen[-600:]
        assert screen.count(b"masked whole") == 1  # told once, why
        assert b"*****" in screen.split(b"was written on this target", 1)[1]
    read = run(wgw, f"tail -n 100 {work}/out")
    assert read.stdout.strip() and not exposed(read.stdout), read.stdout[:300]
    # by a relative name, where the shell went with cd
    done = work / "done-relative"
    screen = session(wgw, "web", [f"cd {work}", "head -n 50 ./out", f"echo ran > {done}"])
    assert not exposed(screen) and b"out was written on this target" in screen, screen[-600:]


def _scp(gw: SshGateway, source: Path, dest: Path,
         *options: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["scp", "-P", str(gw.port()), *gw.client_options(), *options,
         f"alice@127.0.0.1:{source}", str(dest)], env=gw.env(), capture_output=True,
        timeout=60)


def _sftp(gw: SshGateway, source: str, dest: Path) -> subprocess.CompletedProcess[bytes]:
    batch = dest.parent / "batch"
    batch.write_text(f"get {source} {dest}\n")
    return subprocess.run(
        ["sftp", "-P", str(gw.port()), *gw.client_options(key=True), "-b", str(batch),
         "alice@127.0.0.1"], env=gw.env(), capture_output=True, timeout=60)


@pytest.mark.parametrize("how", ["scp", "scp -O", "sftp", "sftp relative"])
def test_a_download_of_a_transformed_file_is_refused(wgw: SshGateway, work: Path,
                                                     tmp_path: Path, how: str) -> None:
    assert run(wgw, f"rev {secret(wgw)} > {work}/x").returncode == 0
    assert exposed((work / "x").read_bytes())
    dest = tmp_path / "got"
    if how.startswith("sftp"):
        # sftp's relative names are from the home directory the target logs in to
        source = str(work / "x")
        if how == "sftp relative":
            home = run(wgw, "pwd").stdout.decode().strip()
            source = str(Path("../" * len(Path(home).parts)) / str(work / "x")[1:])
        result = _sftp(wgw, source, dest)
    else:
        result = _scp(wgw, work / "x", dest, *how.split()[1:])
    assert result.returncode != 0, result.stderr
    assert b"was written on this target" in result.stderr, result.stderr  # and why
    assert not dest.exists() or not exposed(dest.read_bytes())
    assert refusals(wgw, "refused: %was written"), "the refusal was not recorded"
    # an unmarked file still comes down, masked the usual way
    plain = tmp_path / "plain"
    result = (_sftp(wgw, str(secret(wgw)), plain) if how.startswith("sftp")
              else _scp(wgw, secret(wgw), plain, *how.split()[1:]))
    assert result.returncode == 0, result.stderr
    assert b"note 5" in plain.read_bytes() and not exposed(plain.read_bytes())


def test_sftp_cannot_rename_or_link_a_transformed_file(wgw: SshGateway, work: Path,
                                                      tmp_path: Path) -> None:
    assert run(wgw, f"rev {secret(wgw)} > {work}/x").returncode == 0
    for command in (f"rename {work}/x {work}/renamed", f"ln -s {work}/x {work}/link",
                    f"ln {work}/x {work}/hard"):
        batch = tmp_path / "batch"
        batch.write_text(command + "\n")
        result = subprocess.run(
            ["sftp", "-P", str(wgw.port()), *wgw.client_options(key=True), "-b", str(batch),
             "alice@127.0.0.1"], env=wgw.env(), capture_output=True, timeout=60)
        assert result.returncode != 0, (command, result.stderr)
    assert (work / "x").exists()
    assert not any((work / name).exists() for name in ("renamed", "link", "hard"))


def test_ordinary_connections_are_not_masked_whole(wgw: SshGateway, work: Path) -> None:
    assert run(wgw, f"rev {secret(wgw)} > {work}/x").returncode == 0  # a mark exists
    before = len(marks(wgw))
    wrote = run(wgw, f"echo hi > {work}/note.txt; cat {secret(wgw)} > {work}/copy")
    assert wrote.returncode == 0 and (work / "note.txt").read_text() == "hi\n"
    assert len(marks(wgw)) == before  # no transform: nothing marked
    read = run(wgw, f"cat {work}/note.txt {work}/copy; ls {work}")
    assert read.returncode == 0, read.stderr
    assert b"hi\n" in read.stdout and b"note 0" in read.stdout and b"x\n" in read.stdout
    assert b"**** **** **** 1111" in read.stdout  # masked the usual way, not whole
    assert not exposed(read.stdout) and b"was written" not in read.stderr
    done = work / "done"
    screen = session(wgw, "web", [f"cat {work}/note.txt", f"head -n 2 {secret(wgw)}",
                                  f"echo ran > {done}"])
    assert b"note 1" in screen and b"was written" not in screen, screen[-600:]
    assert not exposed(screen)


def test_a_damaged_journal_masks_every_reader_until_it_is_mended(wgw: SshGateway,
                                                                 work: Path) -> None:
    journal = wgw.work / "store.db.ssh-written"
    assert run(wgw, f"rev {secret(wgw)} > {work}/x").returncode == 0
    good = journal.read_bytes()
    with journal.open("ab") as f:
        f.write(b"{not a mark\n")
    try:
        read = run(wgw, f"head -n 3 {secret(wgw)}")
        assert read.stdout.strip() and set(read.stdout) <= set(b"* \t\r\n"), read.stdout[:300]
        assert b"cannot be read" in read.stderr
    finally:
        mended = journal.with_name("mended")
        mended.write_bytes(good)
        mended.chmod(0o600)
        mended.replace(journal)  # a new file: read again from its start
    read = run(wgw, f"head -n 3 {secret(wgw)}")
    assert b"note 2" in read.stdout and not exposed(read.stdout), read.stdout[:300]
    assert set(run(wgw, f"cat {work}/x").stdout) <= set(b"* \t\r\n")


def test_a_line_typed_without_echo_is_remembered_without_its_path(wgw: SshGateway,
                                                                  work: Path) -> None:
    """(Last: it marks every path of alice's on the target.)"""
    done = work / "done"
    session(wgw, "web", ["stty -echo", f"rev {secret(wgw)} > {work}/blind", "stty echo",
                         f"echo ran > {done}"])
    wait_for_file(done)
    assert exposed((work / "blind").read_bytes())  # it ran, blind
    assert not any(f"{work}/blind" in str(m["path"]) for m in marks(wgw))  # no path kept
    read = run(wgw, f"cat {work}/blind")
    assert read.stdout.strip() and not exposed(read.stdout), read.stdout[:300]
    assert b"whose name the gateway could not see" in read.stderr, read.stderr
