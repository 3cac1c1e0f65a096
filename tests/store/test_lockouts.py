"""Lock-out records: set and lifted through the journal, read back, checked by ``verify``."""

from __future__ import annotations

from store import SqliteStore, verify
from store import lockouts as L
from store import records as R

SET = R.LockoutSet("lo1", identity="alice", connection=None,
                   until="2026-11-18T09:00:00.000000+00:00",
                   created_at="2026-11-18T08:30:00.000000+00:00", created_by="oncall",
                   reason="runaway", session_id="s1")


def test_a_lockout_is_in_force_until_it_ends_or_is_lifted(store: SqliteStore) -> None:
    store.apply([SET.op()])
    store.checkpoint()
    [row] = L.lockouts(store, in_force_at="2026-11-18T08:45:00.000000+00:00")
    assert (row["id"], row["identity"], row["connection"], row["created_by"]) == (
        "lo1", "alice", None, "oncall")
    assert L.lockouts(store, in_force_at="2026-11-18T09:00:01.000000+00:00") == []
    store.apply([R.LockoutLift("lo1", lifted_at="2026-11-18T08:50:00.000000+00:00",
                               lifted_by="bob", lift_reason="talked to alice").op()])
    store.checkpoint()
    assert L.lockouts(store, in_force_at="2026-11-18T08:55:00.000000+00:00") == []
    [row] = L.lockouts(store)
    assert (row["lifted_by"], row["lift_reason"]) == ("bob", "talked to alice")
    assert verify(store).ok


def test_verify_finds_a_lockout_edited_or_removed(store: SqliteStore) -> None:
    store.apply([SET.op()])
    store.checkpoint()
    store.writer.execute("UPDATE lockouts SET until = '2027-01-01T00:00:00+00:00'")
    assert verify(store).problems == ["lock-out lo1: until differs from the audit"]
    store.writer.execute("DELETE FROM lockouts")
    assert verify(store).problems == ["lock-out lo1: recorded in the audit but missing"]
