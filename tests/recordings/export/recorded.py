"""Sessions written with the store's own ops, shaped as the SSH and PostgreSQL front ends
write them (``engine/ssh/session.py``, ``engine/approvals.py``, ``tests/store/sample.py``)."""

from __future__ import annotations

from store import Op, SqliteStore
from store import ops as O
from tests.store.sample import T0, session_open, statement_end, statement_start

EURO = "€".encode()  # three bytes: split across two chunks below


def ssh_open(sid: str) -> Op:
    return session_open(sid, protocol="ssh", connection="box", database=None,
                        application_name="SSH-2.0-OpenSSH_9.2", target="root@127.0.0.1:2222")


def command(sid: str, seq: int, text: str, at: float, verdict: str = "allow",
            rule: str | None = None) -> Op:
    return Op(O.STATEMENT_START, sid, seq, {
        "protocol": "ssh", "text": text, "params": None, "started_at": O.utc(T0 + at),
        "status": "running", "verdict": verdict, "rule": rule, "approval_id": None})


def command_end(sid: str, seq: int, at: float, status: str = "ok", exit_status: int | None = 0,
                error: str | None = None) -> Op:
    return Op(O.STATEMENT_END, sid, seq, {
        "finished_at": O.utc(T0 + at), "duration_ms": 5.0, "status": status,
        "command": None, "rows": None, "sqlstate": None, "error": error,
        "exit_status": exit_status})


def approval_request(aid: str, sid: str, statement: str, at: float) -> Op:
    return Op(O.APPROVAL_REQUEST, aid, 0, {
        "session_id": sid, "requester": "alice", "connection": "box", "statement": statement,
        "statement_hash": "0" * 64, "rule": "review-sudo", "reason": "sudo needs a second pair",
        "created_at": O.utc(T0 + at), "expires_at": O.utc(T0 + at + 300), "status": "pending"})


def approval_update(aid: str, status: str, at: float, by: str = "bob",
                    reason: str | None = None) -> Op:
    return Op(O.APPROVAL_UPDATE, aid, 0, {
        "status": status, "approvals": by if status == "approved" else None,
        "decided_at": O.utc(T0 + at), "decided_by": by, "decision_reason": reason})


def out(sid: str, ref: int, t: float, data: bytes, channel: int = 0,
        stream: str = "o") -> Op:
    return O.output_op(sid, ref, t, channel, stream, data)


def ssh_close(sid: str, at: float, status: str = "closed", reason: str = "client quit") -> Op:
    return Op(O.SESSION_CLOSE, sid, 0, {
        "ended_at": O.utc(T0 + at), "status": status, "end_reason": reason, "masked": None})


def record(writer: SqliteStore, ops: list[Op]) -> None:
    """Commit and move into SQLite, where readers (the CLI) see it."""
    writer.apply(ops)
    writer.checkpoint()


def an_ssh_session(sid: str, aid: str = "apr-1") -> list[Op]:
    """A shell on channel 0 (100x30, resized once): an allowed command whose output splits a
    euro sign across two chunks, a blocked one, one held and approved, an exec without a
    terminal on channel 1 (its input recorded), and a kill."""
    return [
        ssh_open(sid),
        out(sid, 1, 0.01, b"100x30", stream="r"),
        out(sid, 2, 0.05, b"$ "),
        command(sid, 1, "echo price", 1.0),
        out(sid, 3, 1.01, b"echo price\r\nprice: 5 " + EURO[:1]),
        out(sid, 4, 1.02, EURO[1:] + b"\r\n$ "),
        command_end(sid, 1, 1.03),
        command(sid, 2, "rm -rf /", 2.0, verdict="block", rule="no-rm-root"),
        command_end(sid, 2, 2.0, status="blocked", exit_status=None,
                    error='blocked by rule "no-rm-root"'),
        out(sid, 5, 2.01, b"\r\n[gatewatch] blocked\r\n$ ", stream="e"),
        command(sid, 3, "sudo reboot", 3.0, verdict="review", rule="review-sudo"),
        approval_request(aid, sid, "sudo reboot", 3.0),
        approval_update(aid, "approved", 4.5, reason="maintenance window"),
        out(sid, 6, 4.6, b"rebooting\r\n"),
        command_end(sid, 3, 4.7, exit_status=1, status="error"),
        out(sid, 7, 5.0, b"120x40", stream="r"),
        command(sid, 4, "cat > notes.txt", 6.0),
        out(sid, 8, 6.1, b"line one\nline two\n", channel=1, stream="i"),
        out(sid, 9, 6.2, b"saved\n", channel=1),
        command_end(sid, 4, 6.3),
        ssh_close(sid, 7.0, status="killed", reason="killed by bob: incident 42"),
    ]


def a_pg_session(sid: str, statements: int = 3) -> list[Op]:
    ops: list[Op] = [session_open(sid)]
    for n in range(1, statements + 1):
        ops += [statement_start(sid, n, f"SELECT {n}", verdict="allow", rule=None,
                                approval_id=None),
                statement_end(sid, n, masked=None, exit_status=None)]
    return [*ops, Op(O.SESSION_CLOSE, sid, 0, {
        "ended_at": O.utc(T0 + 60), "status": "closed", "end_reason": "client quit",
        "masked": None})]
