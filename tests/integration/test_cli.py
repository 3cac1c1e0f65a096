"""The ``gatewatch`` command: exit statuses and one-line errors, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import ROOT, Gateway
from tests.integration.test_recording import run_cli
from tests.sshgw import SshGateway

pytestmark = pytest.mark.integration


def test_sessions_and_show(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn(application_name="cli-test"), autocommit=True) as conn:
        conn.execute("select %s::text", ["41"])
        with pytest.raises(psycopg.errors.UndefinedColumn):
            conn.execute("select nosuch from customers")
    policy = str(gateway.work / "policies.yaml")
    session = gateway.wait_for(lambda s: next(
        (r for r in s.sessions() if r["application_name"] == "cli-test" and r["ended_at"]),
        None))
    listed = run_cli("sessions", "-c", policy)
    assert listed.returncode == 0
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:4] == ["ID", "IDENTITY", "CONNECTION", "CLIENT"]
    line = next(r for r in rows if r.startswith(session["id"]))
    assert "alice" in line and "cli-test" in line and "closed (client quit)" in line
    as_json = json.loads(run_cli("sessions", "--json", "-c", policy).stdout)
    entry = next(s for s in as_json if s["id"] == session["id"])
    assert entry["statements"] == 2 and entry["database"] == "shop"
    assert entry["client_addr"].startswith("127.0.0.1:")
    shown = run_cli("show", session["id"], "-c", policy)
    assert shown.returncode == 0
    assert "select $1::text" in shown.stdout and "'41'" in shown.stdout
    assert "error 42703" in shown.stdout
    detail = json.loads(run_cli("show", session["id"], "--json", "-c", policy).stdout)
    first, second = detail["statements"]
    assert first["params"] == "'41'" and first["rows"] == 1 and first["protocol"] == "extended"
    assert second["sqlstate"] == "42703" and "nosuch" in second["error"]
    env = {**os.environ, "GATEWATCH_CONFIG": policy}
    assert run_cli("show", session["id"][:8], env=env).returncode == 0


def test_user_mistakes_exit_2_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GATEWATCH_CONFIG"}
    # Outside a directory with a policies.yaml (the checkout has one: see test_readme_commands).
    no_config = subprocess.run([sys.executable, "-m", "gatewatch", "sessions"], cwd=tmp_path,
                               env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True,
                               text=True, timeout=60)
    assert no_config.returncode == 2
    assert no_config.stderr == "gatewatch: no policies file: pass -c FILE or set" \
        " GATEWATCH_CONFIG (or run where policies.yaml is)\n"
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nengine:\n  store: x.db\n  control_socket: c.sock\n"
                      "connections:\n  - name: a\n    kind: postgres\n    listen: nope\n")
    # A failed check exits 1; an engine that cannot start on the file is bad input: 2.
    for args, status in ((["policy", "check", str(broken)], 1), (["engine", "-c", str(broken)], 2)):
        result = run_cli(*args)
        assert result.returncode == status
        assert result.stderr == (f"gatewatch: {broken}:8: connections.0.listen: expected "
                                 "HOST:PORT with an IP address\n")
    missing = run_cli("policy", "check", str(tmp_path / "absent.yaml"))
    assert missing.returncode == 2 and "no such policies file" in missing.stderr
    good = tmp_path / "good.yaml"
    good.write_text(f"version: 1\nengine:\n  store: {tmp_path}/none.db\n"
                    "  control_socket: c.sock\n")
    no_store = run_cli("show", "abcd", "-c", str(good))
    assert no_store.returncode == 2 and "no store at" in no_store.stderr
    assert "Traceback" not in no_store.stderr
    # Listing a store nothing was recorded in yet is an answer, not a mistake.
    empty = run_cli("sessions", "-c", str(good))
    assert empty.returncode == 0 and "no sessions recorded yet (no store at" in empty.stdout
    assert run_cli("frobnicate").returncode == 2


def test_show_unknown_session(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn()) as conn:
        conn.execute("select 1")
    gateway.wait_for(lambda s: s.sessions())
    result = run_cli("show", "zzzz", "-c", str(gateway.work / "policies.yaml"))
    assert result.returncode == 2
    assert result.stderr.startswith("gatewatch: no session 'zzzz' in")


# --- show of an SSH session (issue 16) -------------------------------------------------------


def _ssh(gw: SshGateway, *command: str, stdin: bytes = b"",
         options: tuple[str, ...] = ()) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(gw.ssh_argv(*command, options=options), env=gw.env(), input=stdin,
                          capture_output=True, timeout=60)


def _session_of(gw: SshGateway, marker: str, *, ended: bool) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rows = gw.query("SELECT s.* FROM sessions s JOIN statements t ON t.session_id = s.id"
                        " WHERE t.text LIKE ?" + (" AND s.ended_at IS NOT NULL" if ended
                                                  else ""), f"%{marker}%")
        if rows:
            return rows[0]
        time.sleep(0.05)
    raise AssertionError(f"no session ran {marker}")


def test_show_says_a_held_ssh_command_is_held(gw: SshGateway) -> None:
    marker = os.urandom(4).hex()
    client = subprocess.Popen(gw.ssh_argv(f"echo needs-review {marker}"), env=gw.env(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        session = _session_of(gw, marker, ended=False)
        shown = run_cli("show", str(session["id"]), "-c", str(gw.work / "policies.yaml"))
        assert shown.returncode == 0, shown.stderr
        line = next(r for r in shown.stdout.splitlines() if marker in r)
        assert " held " in line and "running" not in line
    finally:
        client.kill()
        client.wait(10)


def test_exit_is_recorded_as_the_user_quitting(gw: SshGateway) -> None:
    marker = os.urandom(4).hex()
    assert _ssh(gw, f"echo {marker}; exit 0").returncode == 0
    session = _session_of(gw, marker, ended=True)
    assert session["end_reason"] == "client quit (the command ended: status 0)"
    # a shell the user leaves with exit
    shell = _ssh(gw, stdin=f"echo {marker}-shell\nexit\n".encode(), options=("-tt",))
    assert shell.returncode == 0, shell.stderr
    session = _session_of(gw, f"{marker}-shell", ended=True)
    assert session["end_reason"] == "client quit (the shell ended: status 0)"
    shown = run_cli("show", str(session["id"]), "-c", str(gw.work / "policies.yaml"))
    assert "status closed (client quit (the shell ended: status 0))" in shown.stdout
