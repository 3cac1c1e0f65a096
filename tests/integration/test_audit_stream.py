"""The audit stream of a real engine to real syslog listeners on loopback (UDP and TCP), and
to a collector that stops reading: records dropped, counted and recorded as a gap, while
statements keep running."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from store import open_store, verify
from store import ops as O
from store.chain import link
from tests.conftest import Gateway, Target, stop_gateway
from tests.integration.test_metrics import scrape, start_with_engine_keys, value

pytestmark = pytest.mark.integration

# <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD SP MSG (RFC 5424)
RFC5424 = re.compile(
    r"^<(?P<pri>\d{1,3})>1 (?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (?P<host>\S+)"
    r" (?P<app>\S+) (?P<pid>\d+) (?P<msgid>\S+)"
    r' \[gatewatch@32473 seq="(?P<seq>\d+)" hash="(?P<hash>[0-9a-f]{64})"'
    r' prev="(?P<prev>[0-9a-f]{64})"\] (?P<msg>\{.*\})$', re.S)


class UdpCollector:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.messages: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(65535))
            except TimeoutError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


class TcpCollector:
    """Octet-counted frames (RFC 6587); ``read=False``: accepts and never reads."""

    def __init__(self, read: bool = True) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.read = read
        self.messages: list[bytes] = []
        self.conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            self.conns.append(conn)
            if not self.read:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                continue
            conn.settimeout(0.2)
            buf = b""
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                buf += chunk
                while b" " in buf:
                    size, _, rest = buf.partition(b" ")
                    if len(rest) < int(size):
                        break
                    self.messages.append(rest[:int(size)])
                    buf = rest[int(size):]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self.conns:
            conn.close()
        self.server.close()


def streamed(target: Target, work: Path, transport: str, port: int,
             queue: int = 10_000) -> Gateway:
    return start_with_engine_keys(target, work, (
        "  metrics: {listen: 127.0.0.1:0}\n"
        f"  audit_stream: {{sink: syslog, address: '127.0.0.1:{port}', transport: {transport},"
        f" queue: {queue}}}\n"))


def parse(message: bytes) -> dict[str, object]:
    found = RFC5424.match(message.decode())
    assert found, message[:200]
    line = json.loads(found["msg"])
    assert found["pri"] == "110" and found["app"] == "gatewatch"
    assert found["msgid"] == line["kind"] and int(found["seq"]) == line["seq"]
    assert (found["hash"], found["prev"]) == (line["hash"], line["prev"])
    return dict(line)


def wait(check: object, timeout: float = 10) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture(params=["udp", "tcp"])
def collector(request: pytest.FixtureRequest) -> Iterator[UdpCollector | TcpCollector]:
    c = UdpCollector() if request.param == "udp" else TcpCollector()
    try:
        yield c
    finally:
        c.close()


def test_every_record_of_a_session_reaches_syslog_in_order_with_its_hash(
        pg_target: Target, tmp_path: Path, collector: UdpCollector | TcpCollector) -> None:
    transport = "udp" if isinstance(collector, UdpCollector) else "tcp"
    gw = streamed(pg_target, tmp_path, transport, collector.port)
    try:
        with psycopg.connect(gw.dsn(application_name="siem"), autocommit=True) as conn:
            for n in range(5):
                conn.execute("select %s::int", [n])
        sid: str = gw.wait_for(lambda s: next((r["id"] for r in s.sessions()
                                               if r["application_name"] == "siem"
                                               and r["status"] == "closed"), ""))
        store = gw.store()
        stored = store.session_audit(sid, 0, 10**9)
        store.close()
        wait(lambda: len([m for m in collector.messages if sid.encode() in m]) >= len(stored))
    finally:
        stop_gateway(gw)
    lines = [parse(m) for m in collector.messages]
    mine = [line for line in lines if line["key"] == sid]
    assert [(r["seq"], r["kind"], r["hash"]) for r in mine] == [
        (seq, kind, digest) for seq, kind, _, _, _, _, digest in stored]
    assert [r["kind"] for r in mine][:2] == [O.SESSION_OPEN, O.STATEMENT_START]
    for r in lines:  # the SIEM can recompute every hash from the line alone
        assert link(str(r["prev"]), int(str(r["seq"])), str(r["kind"]), str(r["key"]),
                    int(str(r["ref"])), str(r["body"]).encode()) == r["hash"]
    seqs = [int(str(r["seq"])) for r in lines]
    assert seqs == sorted(seqs) and seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert hashlib.sha256(b"").hexdigest() not in {r["hash"] for r in lines}


def test_a_collector_that_stops_reading_costs_records_not_statements(
        pg_target: Target, tmp_path: Path) -> None:
    stuck = TcpCollector(read=False)
    gw = streamed(pg_target, tmp_path, "tcp", stuck.port, queue=20)
    statements = 3000
    try:
        with psycopg.connect(gw.dsn(), autocommit=True) as conn:
            for n in range(statements):
                # big enough records that the socket's buffers fill within the run
                conn.execute("select %s::text", ["x" * 2000 + str(n)])
        gaps = gw.wait_for(lambda s: s.conn.execute(
            "select body from audit where kind = ?", [O.AUDIT_GAP]).fetchall())
        after = scrape(gw)
        count = gw.wait_for(lambda s: s.conn.execute(
            "select count(*) from statements where status = 'ok'").fetchone()[0] >= statements
            and s.conn.execute("select count(*) from statements where status = 'ok'"
                               ).fetchone()[0])
    finally:
        stop_gateway(gw)
        stuck.close()
    assert count == statements  # every statement ran and was recorded
    dropped = value(after, "gatewatch_audit_stream_dropped_total")
    assert dropped > 0
    first = json.loads(gaps[0][0])
    assert first["dropped"] > 0 and first["first_seq"] <= first["last_seq"]
    assert sum(json.loads(body)["dropped"] for (body,) in gaps) <= dropped
    assert value(after, "gatewatch_audit_stream_gaps_total") >= 1
    store = open_store(tmp_path / "store.db", readonly=True)
    try:
        checked = verify(store)
    finally:
        store.close()
    assert checked.ok, checked.problems  # gap records are part of the chain
