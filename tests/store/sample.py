"""Ops shaped as ``engine.pg.connection`` builds them, and a simulated engine crash."""

from __future__ import annotations

from typing import Any

from store import Op, SqliteStore
from store import ops as O

T0 = 1_790_000_000.0


def session_open(sid: str, **fields: Any) -> Op:
    return Op(O.SESSION_OPEN, sid, 0, {
        "protocol": "postgres",
        "connection": "shop",
        "identity": "alice",
        "identity_kind": "person",
        "client_addr": "127.0.0.1:50000",
        "application_name": "psql",
        "database": "shop",
        "started_at": O.utc(T0),
        "status": "open",
        **fields,
    })


def session_close(sid: str, reason: str = "client quit") -> Op:
    return Op(O.SESSION_CLOSE, sid, 0, {
        "ended_at": O.utc(T0 + 60), "status": "closed", "end_reason": reason,
    })


def statement_start(sid: str, seq: int, text: str = "SELECT 1", **fields: Any) -> Op:
    return Op(O.STATEMENT_START, sid, seq, {
        "protocol": "simple",
        "text": text,
        "params": None,
        "started_at": O.utc(T0 + seq),
        "status": "running",
        **fields,
    })


def statement_end(sid: str, seq: int, **fields: Any) -> Op:
    return Op(O.STATEMENT_END, sid, seq, {
        "finished_at": O.utc(T0 + seq + 0.25),
        "duration_ms": 250.0,
        "status": "ok",
        "command": "SELECT 1",
        "rows": 1,
        "sqlstate": None,
        "error": None,
        **fields,
    })


def a_session(sid: str, statements: int = 2) -> list[Op]:
    ops = [session_open(sid)]
    for n in range(1, statements + 1):
        ops += [statement_start(sid, n, f"SELECT {n}"), statement_end(sid, n)]
    return [*ops, session_close(sid)]


def crash(store: SqliteStore) -> None:
    """Stop using a store the way a killed engine does: no checkpoint, no close(); the kernel
    releases the store's lock with the process (and its checkpoint process, which holds it too,
    ends)."""
    if store._process is not None:
        store._process.kill()
    store.conn.close()
    assert store.journal is not None
    store.journal.close()
    assert store._lock is not None
    store._lock.release()
