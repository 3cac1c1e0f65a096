"""Policy reload on a real engine: ``gatewatch reload`` (and the control API) while sessions
run; a good file changes the next statement's verdict, a bad one changes nothing."""

from __future__ import annotations

import json
import subprocess
import time

import psycopg
import pytest
from psycopg import errors

from store import ops as O
from tests.conftest import Gateway, need
from tests.integration.guarded import cli_env
from tests.integration.test_recording import run_cli

pytestmark = pytest.mark.integration

BLOCK_CUSTOMERS = """rules:
  - name: no-customers-now
    action: block
    match: {tables: [customers]}
    message: customers are off limits during the audit
"""


def set_rules(gateway: Gateway, rules: str) -> None:
    path = gateway.work / "policies.yaml"
    text = path.read_text()
    start = text.index("\nrules:") + 1 if "\nrules:" in text else None
    assert start is not None
    end = text.index("\nmasking:", start)
    path.write_text(text[:start] + rules.rstrip("\n") + text[end:])


def reload_records(gateway: Gateway) -> list[dict[str, object]]:
    return [json.loads(body) for (body,) in gateway.store().conn.execute(
        "select body from audit where kind = ? order by seq", [O.POLICY_RELOAD])]


def test_a_reload_changes_a_live_sessions_next_statement(gateway: Gateway) -> None:
    query = "select count(*) from customers"
    with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
        assert conn.execute(query).fetchone() is not None
        set_rules(gateway, BLOCK_CUSTOMERS)
        done = run_cli("reload", env=cli_env(gateway))
        assert done.returncode == 0, done.stderr
        assert "reloaded (rules changed)" in done.stdout
        with pytest.raises(errors.InsufficientPrivilege, match="no-customers-now"):
            conn.execute(query)
        assert conn.execute("select 1").fetchone() == (1,)  # the session goes on
        set_rules(gateway, "rules: []\n")
        assert run_cli("reload", env=cli_env(gateway)).returncode == 0
        assert conn.execute(query).fetchone() is not None
    records = gateway.wait_for(lambda s: reload_records(gateway)
                               if len(reload_records(gateway)) == 2 else [])
    assert [(r["status"], r["by"], r["changed"]) for r in records] == [
        ("applied", "operator oncall", '["rules"]'), ("applied", "operator oncall", '["rules"]')]
    assert run_cli("verify", env=cli_env(gateway)).returncode == 0


def test_a_bad_file_changes_nothing_and_says_why_in_one_line(gateway: Gateway) -> None:
    set_rules(gateway, BLOCK_CUSTOMERS)
    assert run_cli("reload", env=cli_env(gateway)).returncode == 0
    path = gateway.work / "policies.yaml"
    path.write_text(path.read_text().replace("action: block", "actoin: block", 1))
    check = run_cli("policy", "check", str(path))
    assert check.returncode == 1
    with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
        refused = run_cli("reload", env=cli_env(gateway))
        assert refused.returncode == 1 and refused.stdout == ""
        assert len(refused.stderr.splitlines()) == 1
        assert check.stderr.strip() in refused.stderr  # the same message as policy check
        assert "the policy in force stays" in refused.stderr
        with pytest.raises(errors.InsufficientPrivilege, match="no-customers-now"):
            conn.execute("select count(*) from customers")
    records = gateway.wait_for(lambda s: reload_records(gateway)
                               if len(reload_records(gateway)) == 2 else [])
    assert records[1]["status"] == "refused" and "actoin" in str(records[1]["error"])


def test_reload_under_pgbench_drops_no_session(gateway: Gateway) -> None:
    need("pgbench")
    init = subprocess.run(["pgbench", "-i", "-s", "1", "-q", gateway.dsn()], env=gateway.env(),
                          capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stderr
    bench = subprocess.Popen(["pgbench", "-n", "-S", "-c", "2", "-j", "2", "-T", "4",
                              gateway.dsn()], env=gateway.env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    set_rules(gateway, """rules:
  - name: no-truncate-during-bench
    action: block
    match: {statements: [TRUNCATE]}
""")
    done = run_cli("reload", env=cli_env(gateway))
    assert done.returncode == 0, done.stderr
    out, err = bench.communicate(timeout=60)
    assert bench.returncode == 0, err
    assert "number of failed transactions: 0" in out
    with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
        with pytest.raises(errors.InsufficientPrivilege, match="no-truncate-during-bench"):
            conn.execute("truncate pgbench_history")
