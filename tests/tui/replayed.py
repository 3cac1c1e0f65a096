"""A recorded fixture for replay tests: an SSH session and a PostgreSQL session in a real store,
written through the store's own write path, at fixed times."""

from __future__ import annotations

from pathlib import Path

from store import Op
from store import ops as O
from tests.recordings.replay.build import T0, Recording, new_store

SSH_ID = "5eed0000aaaa1111"
PG_ID = "5eed0000bbbb2222"
PROMPT = b"\x1b[1;32mdeploy@web1\x1b[0m:~$ "
HOSTILE = (b"\x1b]52;c;cm0gLXJmIC8K\x07\x1b]0;pwned-title\x07\x1b[6n\x1b[c\x07"
           b"\x1b[" + b"9" * 5000 + b"m")


def recorded_store(tmp_path: Path) -> Path:
    """Times in seconds from each session's start; the SSH one was killed at 310 s."""
    store = new_store(tmp_path)
    ssh = Recording(store, SSH_ID)
    ssh.size(0.0, 80, 24)
    ssh.out(0.1, PROMPT)
    ssh.command(2.0, "ls")
    ssh.out(2.0, b"ls\r\n\x1b[34mapp\x1b[0m  notes.txt\r\n" + PROMPT)
    ssh.out(5.0, HOSTILE + b"after-hostile\r\n" + PROMPT)
    ssh.command(10.0, "rm -rf /etc", "block", rule="no-recursive-rm", status="blocked")
    ssh.out(10.0, b"rm -rf /etc\r\n[gatewatch] blocked by rule \"no-recursive-rm\"\r\n" + PROMPT)
    ssh.command(20.0, "systemctl restart web", "review", rule="review-restarts")
    ssh.approval("r1", 20.0, 25.0, "approved", "systemctl restart web")
    ssh.out(25.0, b"systemctl restart web\r\nrestarted\r\n" + PROMPT)
    ssh.out(30.0, b"echo needle-in-output\r\nneedle-in-output\r\n" + PROMPT)
    ssh.out(300.0, b"late output after a long silence\r\n" + PROMPT)
    ssh.close(310.0, "killed by oncall: incident drill")

    store.apply([Op(O.SESSION_OPEN, PG_ID, 0, {
        "protocol": "postgres", "connection": "shop", "identity": "alice",
        "identity_kind": "person", "client_addr": "127.0.0.1:50001",
        "application_name": "psql", "database": "shop", "started_at": O.utc(T0),
        "status": "open"})])
    for seq, (t, text, verdict, status, rows, masked) in enumerate([
            (1.0, "select email from customers limit 3", "allow", "ok", 3,
             '{"personal-data:email/email": 3}'),
            (4.0, "DROP TABLE orders", "block", "blocked", None, None),
            (9.0, "select count(*) from orders", "allow", "ok", 1, None)], start=1):
        store.apply([
            Op(O.STATEMENT_START, PG_ID, seq, {
                "protocol": "simple", "text": text, "params": None,
                "started_at": O.utc(T0 + t), "status": "running", "verdict": verdict,
                "rule": "no-drop" if verdict == "block" else None, "approval_id": None}),
            Op(O.STATEMENT_END, PG_ID, seq, {
                "finished_at": O.utc(T0 + t + 0.01), "duration_ms": 10.0, "status": status,
                "command": None, "rows": rows, "sqlstate": "42501" if status == "blocked"
                else None, "error": None, "exit_status": None, "masked": masked})])
    store.apply([Op(O.SESSION_CLOSE, PG_ID, 0, {
        "ended_at": O.utc(T0 + 12), "status": "closed", "end_reason": "client quit",
        "masked": '{"personal-data:email/email": 3}'})])
    store.checkpoint()
    path = store.path
    store.close()
    return path
