"""The audit stream without an engine: its line formats, the file sink's rotation, and the
bounded queue in front of a sink that blocks (drops counted, gap records written)."""

from __future__ import annotations

import asyncio
import json
import stat
import threading
from pathlib import Path

from engine.audit_stream import GAP_EVERY, AuditStream, FileSink, json_line, syslog_message
from engine.config import AuditStreamSettings
from store import ops as O
from store import records as R
from store.journal import JournalRecord
from tests.engine.test_metrics import Chain, opened, started


def records(n: int) -> list[JournalRecord]:
    chain = Chain()
    return chain(opened("s1"), *(started("s1", i, text="x" * 100) for i in range(1, n)))


def test_a_json_line_carries_the_record_as_hashed() -> None:
    [record] = records(1)
    line = json.loads(json_line(record))
    assert line == {"seq": 1, "kind": O.SESSION_OPEN, "key": "s1", "ref": 0,
                    "prev": record.prev, "hash": record.hash, "body": record.body}


def test_a_syslog_message_is_rfc_5424_and_a_long_datagram_says_it_was_cut() -> None:
    [record] = records(1)
    message = syslog_message(record, hostname="gw1", app_name="gatewatch", at=0.5)
    assert message.startswith(b"<110>1 1970-01-01T00:00:00.500000Z gw1 gatewatch ")
    assert f'[gatewatch@32473 seq="1" hash="{record.hash}" prev="{record.prev}"]'.encode() in (
        message)
    big = record._replace(body=json.dumps({"text": "y" * 100_000}))
    cut = syslog_message(big, hostname="gw1", app_name="gatewatch", at=0.5, limit=60_000)
    assert len(cut) <= 60_000
    assert json.loads(cut[cut.index(b"] {") + 2:])["truncated"] is True


def test_the_file_sink_rotates_by_size_and_keeps_its_files_private(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = FileSink(path, max_size=2000, keep=2)
    batch = records(40)
    sink.send(batch[:3])
    sink.send(batch[3:])  # a batch that spans rotations
    sink.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]  # older ones dropped
    assert all(p.stat().st_size <= 2000 for p in tmp_path.iterdir())
    seqs = [json.loads(line)["seq"] for name in ("audit.jsonl.2", "audit.jsonl.1", "audit.jsonl")
            for line in (tmp_path / name).read_text().splitlines()]
    assert seqs == list(range(seqs[0], 41))  # in order, the newest kept


class Blocking:
    """A sink whose send blocks until released (a collector that stopped reading)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.sent: list[int] = []

    def send(self, records: list[JournalRecord]) -> None:
        self.release.wait(10)
        self.sent.extend(r.seq for r in records)

    def close(self) -> None:
        self.release.set()


async def test_a_full_queue_drops_counts_and_records_one_gap_per_run() -> None:
    sink = Blocking()
    written: list[R.Record] = []
    stream = AuditStream(AuditStreamSettings(sink="syslog", queue=5), written.append,
                         sink=lambda: sink)
    stream.start()
    batch = records(50)
    stream.committed(batch[:30])  # 5 queued, the rest dropped
    assert stream.stats.dropped == 25 and not written  # the gap is written when the run ends
    await asyncio.sleep(GAP_EVERY + 0.2)  # a run that lasts is recorded every GAP_EVERY
    [gap] = written
    assert isinstance(gap, R.AuditGap) and gap.dropped == 25
    assert (gap.first_seq, gap.last_seq) == (6, 30) and "queue was full" in gap.reason
    # A run made only of gap records is counted but not recorded again.
    stream.committed(batch[30:35])  # the writer holds the first five: these fill the queue
    chain_gap = Chain()
    chain_gap.seq = 50
    stream.committed(chain_gap(gap))
    assert stream.stats.dropped == 26
    await asyncio.sleep(GAP_EVERY + 0.2)
    assert len(written) == 1
    sink.release.set()
    await asyncio.sleep(0.1)
    for start in range(35, 50, 5):  # a pace the queue takes: nothing more is dropped
        stream.committed(batch[start:start + 5])
        await asyncio.sleep(0.05)
    await stream.stop()
    assert sink.sent[-1] == 50 and stream.stats.sent == len(sink.sent)
    assert stream.stats.gaps == 1 and len(written) == 1


async def test_stop_records_what_a_stuck_sink_never_took() -> None:
    sink = Blocking()
    written: list[R.Record] = []
    stream = AuditStream(AuditStreamSettings(sink="syslog", queue=100), written.append,
                         sink=lambda: sink)
    stream.start()
    stream.committed(records(10))

    def never_released(records: list[JournalRecord]) -> None:
        threading.Event().wait(0.5)
        raise OSError("collector gone")

    sink.send = never_released  # type: ignore[method-assign]
    await stream.stop()
    gaps = [g for g in written if isinstance(g, R.AuditGap)]
    assert gaps and len(gaps) == len(written)  # one per GAP_EVERY while it lasted
    assert gaps[-1].last_seq == 10 and ("failed" in gaps[-1].reason or "stopped" in gaps[-1].reason)
    delivered = len(sink.sent)
    assert sum(g.dropped for g in gaps) + delivered == 10
