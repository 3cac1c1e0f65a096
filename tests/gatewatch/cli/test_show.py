"""``gatewatch show``: what became of each statement, as the operator reads it (issue 16: a
statement its client withdrew while it was held read "denied")."""

from __future__ import annotations

from pathlib import Path

from gatewatch.cli.records import show
from store import open_store
from tests.recordings.replay.build import Recording, new_store
from tests.recordings.replay.test_statements import _held


def test_a_statement_its_client_withdrew_is_shown_withdrawn(tmp_path: Path) -> None:
    rec = Recording(new_store(tmp_path), "pg3", protocol="postgres")
    rec.approval("w1", 1.0, 3.0, "withdrawn", "DELETE FROM orders", by="",
                 reason="canceled by the client")
    rec.approval("d1", 5.0, 6.0, "denied", "DELETE FROM stock", reason="not now")
    rec.store.apply([
        *_held("pg3", 1, 3.0, "DELETE FROM orders", "denied", "w1", status="denied",
               sqlstate="57014", error="canceling statement due to user request", rows=None),
        *_held("pg3", 2, 6.0, "DELETE FROM stock", "denied", "d1", status="denied",
               sqlstate="42501", error="statement denied by bob: not now", rows=None),
    ])
    rec.close(10.0)
    rec.store.close()
    store = open_store(tmp_path / "gatewatch.db", readonly=True)
    try:
        session = store.find_session("pg3")
        assert session is not None
        text = show(store, session, as_json=False)
        withdrawn = next(line for line in text.splitlines() if "DELETE FROM orders" in line)
        denied = next(line for line in text.splitlines() if "DELETE FROM stock" in line)
        assert "withdrawn (review-deletes) w1" in withdrawn
        assert "withdrawn 57014: canceling statement" in withdrawn
        assert "denied" not in withdrawn
        assert "denied (review-deletes) d1" in denied and "denied 42501" in denied
    finally:
        store.close()


def test_every_command_that_reads_the_store_takes_4_characters_of_an_id(tmp_path: Path) -> None:
    """Issue 16: one rule for ids, as the control API's for kill and approve — whole, or a
    unique prefix of at least 4 characters, with a one-line reason otherwise."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    work = tmp_path / "w"
    work.mkdir(mode=0o700)
    rec = Recording(new_store(work), "c0ffee11aa22bb33")
    rec.out(0.1, b"$ ")
    rec.close(1.0)
    rec.store.close()
    config = tmp_path / "p.yaml"
    config.write_text(f"version: 1\nengine:\n  store: {work / 'gatewatch.db'}\n"
                      f"  control_socket: {tmp_path / 'c.sock'}\n")

    def gatewatch(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gatewatch", *args, "-c", str(config)],
                              cwd=ROOT, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "GATEWATCH_CONFIG": ""})

    for command in (["show", "c"], ["show", "c0f"], ["export", "c0f", "--format", "jsonl"],
                    ["verify", "c0"], ["replay", "c"]):
        out = gatewatch(*command)
        assert out.returncode == 2, (command, out.stdout, out.stderr)
        assert out.stderr == ("gatewatch: session id "
                              f"'{command[1]}' is too short: give at least 4 of its "
                              "characters\n"), command
    assert gatewatch("show", "c0ff").returncode == 0
    assert gatewatch("show", "c0ffee11aa22bb33").returncode == 0


def test_a_held_ssh_command_reads_as_its_decision_like_postgresqls(tmp_path: Path) -> None:
    """An SSH command's record keeps the verdict "review" when it is approved and run; show
    says "approved", as it does for a PostgreSQL statement (issue 16: statistics counted it
    as "review", which reads as still waiting)."""
    rec = Recording(new_store(tmp_path), "ssh4")
    rec.command(1.0, "systemctl reload nginx", "review", rule="review-restarts", status="ok")
    rec.command(5.0, "systemctl stop db", "review", rule="review-restarts", status="denied",
                error="denied by bob: not now")
    rec.close(9.0)
    rec.store.close()
    store = open_store(tmp_path / "gatewatch.db", readonly=True)
    try:
        session = store.find_session("ssh4")
        assert session is not None
        lines = show(store, session, as_json=False).splitlines()
        ran = next(line for line in lines if "reload nginx" in line)
        stopped = next(line for line in lines if "stop db" in line)
        assert "approved (review-restarts)" in ran and " ok " in ran
        assert "denied (review-restarts)" in stopped and "denied: denied by bob" in stopped
    finally:
        store.close()


def test_escape_sequences_in_a_statement_are_shown_not_obeyed(tmp_path: Path) -> None:
    """A statement can carry escape sequences that erase lines and move the cursor: printed
    as they are, the approver's terminal would draw a harmless statement over the one that
    runs. ``gatewatch show`` (and approvals, sessions …) print them as visible escapes."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    work = tmp_path / "w"
    work.mkdir(mode=0o700)
    rec = Recording(new_store(work), "e5c4pe00aa22bb33", protocol="postgres")
    hidden = "UPDATE orders SET total = 0 /* \x1b[2K\x1b[1A\x1b[8m \u202e \x07 */"
    rec.approval("h1", 1.0, 3.0, "denied", hidden, reason="no")
    rec.store.apply([*_held("e5c4pe00aa22bb33", 1, 3.0, hidden, "denied", "h1",
                            status="denied", sqlstate="42501", error="denied", rows=None)])
    rec.close(5.0)
    rec.store.close()
    config = tmp_path / "p.yaml"
    config.write_text(f"version: 1\nengine:\n  store: {work / 'gatewatch.db'}\n"
                      f"  control_socket: {tmp_path / 'c.sock'}\n")
    out = subprocess.run([sys.executable, "-m", "gatewatch", "show", "e5c4", "-c", str(config)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "GATEWATCH_CONFIG": ""})
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout and "\u202e" not in out.stdout
    assert "UPDATE orders SET total = 0 /* \\x1b[2K\\x1b[1A" in out.stdout
