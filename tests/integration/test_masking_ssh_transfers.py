"""Issue 14 through the SSH gateway (real OpenSSH ssh, scp, sftp and sshd): a file of card
numbers and addresses does not come back in clear, whatever transforms it on the way (base64,
xxd, od, rev, fold), nor through scp or sftp downloads; ``ssh.transfers: refuse`` refuses them
and records why; ``allow`` passes them."""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sshd import SshdTarget
from tests.sshgw import POLICY, SshGateway, start_ssh_gateway, stop_ssh_gateway

pytestmark = pytest.mark.integration

CARDS = ["4111 1111 1111 1111", "5555555555554444", "378282246310005"]
EMAILS = ["grace.hopper@example.com", "alan.turing42@example.org"]
CONTENT = "".join(f"{i},{EMAILS[i % 2]},{CARDS[i % 3]},note {i}\n" for i in range(400))

_MORE = """  - name: web_refuse
    kind: ssh
    listen: 127.0.0.1:0
    upstream: {{host: 127.0.0.1, port: {sshd_port}, user: {sshd_user},
               key_file: {client_key}, known_hosts: {known_hosts}}}
    ssh: {{transfers: refuse}}
    allow: {{groups: [engineering]}}
  - name: web_allow
    kind: ssh
    listen: 127.0.0.1:0
    upstream: {{host: 127.0.0.1, port: {sshd_port}, user: {sshd_user},
               key_file: {client_key}, known_hosts: {known_hosts}}}
    ssh: {{transfers: allow}}
    allow: {{groups: [engineering]}}
"""


@pytest.fixture(scope="module")
def tgw(sshd: SshdTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGateway]:
    policy = POLICY.replace("    connections: [web]\n",
                            "    connections: [web, web_refuse, web_allow]\n") + _MORE
    gateway = start_ssh_gateway(sshd, tmp_path_factory.mktemp("sshgw"), policy=policy)
    (sshd.home / "secrets.txt").write_text(CONTENT)
    try:
        yield gateway
    finally:
        stop_ssh_gateway(gateway)


def leaked(data: bytes) -> list[str]:
    """Seeded values in ``data``: in clear, reversed, folded, base64, hex or od'd."""
    text = data.decode("utf-8", "replace")
    flat = "".join(text.split())
    hexed = flat.lower()
    od = "".join(text.replace("\\n", "").split())  # od -c: one character per cell
    found = []
    for value in CARDS + EMAILS:
        squeezed = value.replace(" ", "")
        forms = {value, squeezed, value[::-1], squeezed[::-1], value.encode().hex(),
                 base64.b64encode(value.encode()).decode()[:16]}
        if any(f in text or f in flat or f in hexed or f in od for f in forms):
            found.append(value)
    # the whole file, base64 (any alignment): decode what came back and look again
    try:
        decoded = base64.b64decode(flat, validate=False).decode("utf-8", "replace")
        found += [v for v in CARDS + EMAILS if v in decoded]
    except ValueError:
        pass
    return found


def run(gw: SshGateway, command: str,
        connection: str = "web") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(gw.ssh_argv(command, connection=connection), env=gw.env(),
                          capture_output=True, timeout=60)


def test_the_file_is_masked_as_it_is(tgw: SshGateway) -> None:
    path = tgw.sshd.home / "secrets.txt"
    result = run(tgw, f"cat {path}")
    assert result.returncode == 0 and result.stdout.count(b"\n") == 400
    assert not leaked(result.stdout) and b"note 399" in result.stdout


@pytest.mark.parametrize("command", [
    "base64 {path}", "base64 -w0 {path}", "xxd -p {path}", "xxd {path}", "od -c {path}",
    "od -An -tx1 {path}", "rev {path}", "fold -w5 {path}", "cat {path} | rev",
    "tr 0-9 a-j < {path}", "hexdump -C {path}", "cut -c1-12 {path}", "gzip -c {path} | base64",
])
def test_transformed_output_does_not_come_back_in_clear(tgw: SshGateway, command: str) -> None:
    path = tgw.sshd.home / "secrets.txt"
    result = run(tgw, command.format(path=path))
    assert result.stdout, result.stderr
    assert not leaked(result.stdout), result.stdout[:300]
    assert b"note" not in result.stdout  # masked whole: the gateway cannot read it


def test_encoded_values_inside_ordinary_output_are_masked(tgw: SshGateway) -> None:
    lines = [f"user={base64.b64encode(e.encode()).decode()} id={e.encode().hex()}"
             for e in EMAILS]
    lines.append("card=" + "4111%201111%201111%201111")
    lines.append("ordinary " + base64.b64encode(b"nothing to see here").decode())
    path = tgw.sshd.home / "encoded.txt"
    path.write_text("\n".join(lines) + "\n")
    result = run(tgw, f"cat {path}")
    assert result.returncode == 0
    assert not leaked(result.stdout) and b"4111%20" not in result.stdout, result.stdout
    assert base64.b64encode(b"nothing to see here") in result.stdout


def _scp(gw: SshGateway, dest: Path, *options: str,
         connection: str = "web") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["scp", "-P", str(gw.port(connection)), *gw.client_options(connection), *options,
         f"alice@127.0.0.1:{gw.sshd.home / 'secrets.txt'}", str(dest)],
        env=gw.env(), capture_output=True, timeout=60)


def _sftp(gw: SshGateway, dest: Path,
          connection: str = "web") -> subprocess.CompletedProcess[bytes]:
    batch = dest.parent / f"batch-{connection}"
    batch.write_text(f"get {gw.sshd.home / 'secrets.txt'} {dest}\n")
    return subprocess.run(
        ["sftp", "-P", str(gw.port(connection)), *gw.client_options(connection, key=True),
         "-b", str(batch), "alice@127.0.0.1"],
        env=gw.env(), capture_output=True, timeout=60)


@pytest.mark.parametrize("how", ["scp", "scp -O", "sftp"])
def test_downloads_are_masked(tgw: SshGateway, tmp_path: Path, how: str) -> None:
    dest = tmp_path / "got.txt"
    if how == "sftp":
        result = _sftp(tgw, dest)
    else:
        result = _scp(tgw, dest, *how.split()[1:])
    assert result.returncode == 0, result.stderr
    got = dest.read_bytes()
    assert len(got) == len(CONTENT.encode())  # length kept: the protocol still works
    assert got.count(b"\n") == 400 and b"note 399" in got
    assert not leaked(got), got[:200]
    assert b"**** **** **** 1111" in got  # partial, keep_last 4, as in terminal output


def test_refused_transfers_are_refused_with_a_reason_and_recorded(tgw: SshGateway,
                                                                   tmp_path: Path) -> None:
    for how in ("scp", "scp -O", "sftp"):
        dest = tmp_path / f"refused-{how.replace(' ', '')}.txt"
        result = (_sftp(tgw, dest, "web_refuse") if how == "sftp"
                  else _scp(tgw, dest, *how.split()[1:], connection="web_refuse"))
        assert result.returncode != 0 and not dest.exists(), how
        if how == "scp -O":
            assert b"ssh.transfers: refuse" in result.stderr, result.stderr
    deadline = time.monotonic() + 10
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline and len(rows) < 3:
        rows = tgw.query("SELECT t.text, t.error FROM statements t JOIN sessions s"
                         " ON s.id = t.session_id WHERE s.connection = 'web_refuse'"
                         " AND t.error LIKE '%ssh.transfers: refuse%'")
        time.sleep(0.02)
    assert len(rows) >= 3, rows


def test_allowed_transfers_pass(tgw: SshGateway, tmp_path: Path) -> None:
    dest = tmp_path / "allowed.txt"
    result = _scp(tgw, dest, "-O", connection="web_allow")
    assert result.returncode == 0, result.stderr
    assert dest.read_text() == CONTENT


def test_rsync_cannot_be_masked_and_is_refused(tgw: SshGateway, tmp_path: Path) -> None:
    result = subprocess.run(
        ["rsync", "-e", " ".join(["ssh", "-p", str(tgw.port()), *tgw.client_options()]),
         f"alice@127.0.0.1:{tgw.sshd.home / 'secrets.txt'}", str(tmp_path / "r.txt")],
        env=tgw.env(), capture_output=True, timeout=60)
    assert result.returncode != 0 and not (tmp_path / "r.txt").exists()


async def _read_at_offsets(gw: SshGateway, pieces: list[tuple[int, int]]) -> list[bytes]:
    import asyncssh

    known = asyncssh.import_known_hosts(gw.host_key_line() + "\n")
    out: list[bytes] = []
    async with asyncssh.connect("127.0.0.1", gw.port(), username="alice",
                                password=gw.tokens["alice"], known_hosts=known,
                                client_keys=None, agent_path=None, config=None,
                                preferred_auth="password") as conn, \
            conn.start_sftp_client() as sftp, \
            sftp.open(str(gw.sshd.home / "secrets.txt"), "rb") as f:
        for offset, size in pieces:
            try:
                out.append(await f.read(size, offset))
            except asyncssh.SFTPError:
                out.append(b"")
    return out


def test_sftp_reads_at_chosen_offsets_do_not_come_back_in_clear(tgw: SshGateway) -> None:
    data = CONTENT.encode()
    # every 8-byte piece of the file, even offsets first, then odd: no reply holds a whole
    # value, and in reply order the file is not in order
    pieces = [(at, 8) for at in range(0, len(data), 16)] + [(at, 8) for at in
                                                            range(8, len(data), 16)]
    got = tgw.call(_read_at_offsets(tgw, pieces))
    rebuilt = bytearray(len(data))
    for (offset, _), piece in zip(pieces, got, strict=True):
        rebuilt[offset:offset + len(piece)] = piece
    assert not leaked(bytes(rebuilt)), leaked(bytes(rebuilt))
    # a file read from its start, in order, still comes back (masked)
    whole = tgw.call(_read_at_offsets(tgw, [(0, len(data))]))[0]
    assert len(whole) == len(data) and not leaked(whole) and b"note 1" in whole


@pytest.mark.parametrize("size", [8, 24])
def test_a_download_read_in_small_pieces_one_at_a_time_is_masked(tgw: SshGateway,
                                                                  tmp_path: Path,
                                                                  size: int) -> None:
    """Outside attack on issue 14: ``sftp -B 8 -R 1`` asks for a few bytes at a time and
    waits for each; the gateway released each reply at a pause as it stood, and every value
    came back in pieces no detector knows. What may start a value at a pause is starred now."""
    small = "".join(f"{i} {CARDS[i % len(CARDS)]} {EMAILS[i % len(EMAILS)]}\n" for i in range(4))
    (tgw.sshd.home / "small.txt").write_text(small)
    dest = tmp_path / "small.txt"
    batch = tmp_path / "batch"
    batch.write_text(f"get {tgw.sshd.home / 'small.txt'} {dest}\n")
    result = subprocess.run(
        ["sftp", "-B", str(size), "-R", "1", "-P", str(tgw.port("web")),
         *tgw.client_options("web", key=True), "-b", str(batch), "alice@127.0.0.1"],
        env=tgw.env(), capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    got = dest.read_bytes()
    assert len(got) == len(small.encode()) and got.count(b"\n") == 4
    for value in CARDS + EMAILS:
        plain = value.replace(" ", "").encode()
        pieces = {plain[i:i + 6] for i in range(len(plain) - 5)}
        assert not [p for p in pieces if p in got.replace(b" ", b"")], (value, got)


def test_an_upload_in_small_writes_is_recorded_masked(tgw: SshGateway, tmp_path: Path) -> None:
    """Outside attack on issue 14 (the record): an SFTP upload whose WRITE packets split a
    value was recorded in clear; the record reads WRITE data as one stream per file."""
    source = tmp_path / "up.txt"
    source.write_text("".join(f"{i} {CARDS[i % len(CARDS)]} {EMAILS[i % len(EMAILS)]}\n"
                              for i in range(6)))
    batch = tmp_path / "batch-up"
    batch.write_text(f"put {source} {tgw.sshd.home / 'uploaded.txt'}\n")
    result = subprocess.run(
        ["sftp", "-B", "10", "-P", str(tgw.port("web")), *tgw.client_options("web", key=True),
         "-b", str(batch), "alice@127.0.0.1"], env=tgw.env(), capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (tgw.sshd.home / "uploaded.txt").read_bytes() == source.read_bytes()  # unchanged
    size = len(source.read_bytes())
    written = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(written) != size:
        for session in tgw.query("SELECT id FROM sessions WHERE ended_at IS NOT NULL "
                                 "ORDER BY started_at DESC"):
            written = _written(b"".join(r["data"] for r in tgw.query(
                "SELECT data FROM ssh_output WHERE stream = 'i' AND session_id = ?",
                session["id"])))  # what the WRITE packets carry, joined
            if len(written) == size:
                break
        time.sleep(0.05)
    assert len(written) == size
    for value in CARDS + EMAILS:
        plain = value.replace(" ", "").encode()
        assert value.encode() not in written and plain not in written.replace(b" ", b"")


def _written(stream: bytes) -> bytes:
    """The data of the SFTP WRITE requests in a recorded client stream, in order."""
    out, pos = b"", 0
    while pos + 5 <= len(stream):
        n = int.from_bytes(stream[pos:pos + 4], "big")
        if stream[pos + 4] == 6:  # SSH_FXP_WRITE: id, handle, offset, data
            size = int.from_bytes(stream[pos + 9:pos + 13], "big")
            out += stream[pos + 13 + size + 12:pos + 4 + n]
        pos += 4 + n
    return out
