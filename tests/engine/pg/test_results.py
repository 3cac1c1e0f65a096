"""``ResultPath``: a large result is masked a bounded slice per turn of the event loop, so that
other sessions are served while it streams (issue 14, ARCHITECTURE.md invariant 8).

Asserted by the order of events on one loop, never by durations."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest

from engine.masking.masker import ValueMasker
from engine.masking.pg import ResultMasker
from engine.masking.strategies import Strategy
from engine.pg import results
from engine.pg.relay import StatementFinished
from engine.pg.results import ResultPath
from tests.engine.masking.test_pg import CARD, FakeMasker
from tests.engine.pg import build as b
from tests.pure import pure_python

PURE = pure_python("engine.pg.results", "engine.masking.masker")

ROWS = 20_000  # rows of a card each: about 700 KB


class _Session:
    def __init__(self, events: list[Any]) -> None:
        self.id = 1
        self.ended = False
        self.masked: Counter[str] = Counter()
        self.masking = SimpleNamespace(rule_of={}, count_key=str)
        self._events = events

    def finished(self, seq: int, status: str, **_: Any) -> None:
        self._events.append(("finished", seq, status))


class _Peer:
    """The client (what it is written) and the target (whether it is read)."""

    def __init__(self, events: list[Any]) -> None:
        self.reading = True
        self.data = bytearray()
        self._events = events

    def write(self, data: bytes) -> None:
        self.data += data
        self._events.append(("write", len(data)))

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


def _result() -> bytes:
    rows = b"".join(b.data_row(b"row %d " % i + CARD) for i in range(ROWS))
    return b.row_description("card") + rows + b.command_complete(f"SELECT {ROWS}") + b.ready()


def _reads(data: bytes, size: int) -> list[bytes]:
    """``data`` cut at message boundaries into pieces of at most ``size`` bytes: what the
    relay lets through from each read of the target (the event loop reads 256 KiB at most)."""
    pieces: list[bytes] = []
    start = pos = 0
    while pos < len(data):
        end = pos + 1 + int.from_bytes(data[pos + 1 : pos + 5], "big")
        if end - start > size:
            pieces.append(data[start:pos])
            start = pos
        pos = end
    pieces.append(data[start:])
    return pieces


def _path(events: list[Any]) -> tuple[ResultPath, _Peer, _Peer]:
    client, upstream = _Peer(events), _Peer(events)
    path = ResultPath(_Session(events), client, ResultMasker(FakeMasker()),  # type: ignore[arg-type]
                      None, broken=lambda exc: pytest.fail(str(exc)),
                      failed=pytest.fail, more_input=lambda: None)
    path.upstream = upstream  # type: ignore[assignment]
    return path, client, upstream


@PURE
@pytest.mark.pure_python
def test_another_session_is_served_while_a_large_result_is_masked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What one read of the target brings (up to 8 MB per turn: libuv reads a socket 32
    times) was masked in the turn that read it, and every other session waited for it: now
    each turn masks a bounded slice and yields, the target unread, until the result is out."""
    monkeypatch.setattr(results, "TURN", 0.0, raising=False)  # one slice per turn
    events: list[Any] = []
    path, client, upstream = _path(events)
    data = _result()
    expected, _ = ResultMasker(FakeMasker()).rewrite(data)
    done = StatementFinished(1, "ok", "SELECT", ROWS, None, None, time.time())
    refused = b.error("42501", "refused by the gateway")

    async def run() -> tuple[bool, int]:
        loop = asyncio.get_running_loop()
        reads = _reads(data, 200_000)  # each under OFF_LOOP: masked on the loop
        assert len(reads) > 2
        for piece in reads[:-1]:  # what one turn of the loop reads of the target
            path.deliver(piece, [])
        path.deliver(reads[-1], [done])
        path.reply(refused)  # the gateway's own answer: after the rows still waiting
        paused = not upstream.reading
        written = len(client.data)
        # Another session's socket, ready now: its callback runs in the next turn.
        loop.call_soon(events.append, ("other session",))
        for _ in range(10_000):
            if path.held is None:
                break
            await asyncio.sleep(0)
        return paused, written

    paused, written = asyncio.run(run())
    assert paused, "the target was read on while the rest waited"
    assert written < len(expected) // 4  # the first turn masked a slice, not the result
    other = events.index(("other session",))
    writes = [i for i, e in enumerate(events) if e[0] == "write"]
    assert writes[0] < other < writes[-1]  # served while the result was still streaming
    assert events.index(("finished", 1, "ok")) > other  # closed with its last rows
    assert bytes(client.data) == expected + refused  # in order, every row masked
    assert CARD not in client.data
    assert upstream.reading and path.held is None



@PURE
@pytest.mark.pure_python
def test_a_long_message_is_never_masked_in_a_turn_of_the_loop(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A message of 8-256 KiB (a value of a few hundred KiB) was masked in one call in the
    turn that read it, holding every other session of the worker (outside attack round 13,
    finding 5): now each call on the loop reads 16 KiB at most, the rest goes to the worker
    thread (pieces there), and the result comes out in order, masked as before."""
    values = ValueMasker(strategies={"payment_card": Strategy("partial", keep_last=4)},
                         key=b"k").for_values()
    whole = ValueMasker.mask
    loop_thread = threading.get_ident()
    on_loop: list[int] = []

    def counted(text: str) -> tuple[str, list[str]]:
        if threading.get_ident() == loop_thread:
            on_loop.append(len(text))
        return whole(values, text)

    monkeypatch.setattr(values, "mask", counted)
    events: list[Any] = []
    client, upstream = _Peer(events), _Peer(events)
    path = ResultPath(_Session(events), client, ResultMasker(values),  # type: ignore[arg-type]
                      None, broken=lambda exc: pytest.fail(str(exc)),
                      failed=pytest.fail, more_input=lambda: None)
    path.upstream = upstream  # type: ignore[assignment]
    long_value = b"paid with 4012 8888 8888 1881, thanks; " * 5000  # 195 KB
    small = [b.data_row(b"row %d paid 4012 8888 8888 1881" % i) for i in range(600)]
    data = (b.row_description("note") + b"".join(small[:400]) + b.data_row(long_value)
            + b"".join(small[400:]) + b.command_complete("SELECT 601") + b.ready())
    expected, _ = ResultMasker(ValueMasker(
        strategies={"payment_card": Strategy("partial", keep_last=4)},
        key=b"k").for_values()).rewrite(data)
    done = StatementFinished(1, "ok", "SELECT", 601, None, None, time.time())

    async def run() -> None:
        path.deliver(data, [done])  # one read of the target
        for _ in range(10_000):
            if path.held is None and ("finished", 1, "ok") in events:
                return
            await asyncio.sleep(0.001)

    asyncio.run(run())
    assert on_loop and max(on_loop) <= 16 * 1024  # the long value was masked on the loop
    assert bytes(client.data) == expected  # in order, every row masked
    assert b"4012 8888 8888 1881" not in client.data
    assert upstream.reading and path.held is None
