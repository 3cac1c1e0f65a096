"""psql through the gateway behaves exactly as psql straight to the target."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import Gateway, need

pytestmark = pytest.mark.integration


def psql(dsn: str, *args: str, stdin: str | None = None, env: dict[str, str] | None = None,
         timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["psql", "-X", "-d", dsn, *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout, env=env)


SCRIPT = r"""
\set VERBOSITY verbose
select count(*) from customers;
\d customers
\dt
select nosuch from customers;
select 1/0;
DO $$ BEGIN RAISE NOTICE 'hello %', 42; END $$;
BEGIN;
insert into orders (customer_id, amount, status) values (1, 10.00, 'new');
select count(*) from orders where amount = 10.00 and status = 'new' and customer_id = 1;
select * from no_such_table;
select 1;
ROLLBACK;
select count(*) from orders where amount = 10.00 and status = 'new' and customer_id = 1;
select id, full_name, email from customers order by id limit 3;
select 'multi' as a; select 'statement' as b;
\echo done
"""


def test_psql_script_matches_direct(gateway: Gateway) -> None:
    need("psql")
    direct = psql(gateway.target.direct(), stdin=SCRIPT)
    through = psql(gateway.dsn(), stdin=SCRIPT)
    assert through.returncode == direct.returncode == 0
    assert "hello 42" in through.stderr
    assert "42703" in through.stderr and "LINE 1: select nosuch from customers" in through.stderr
    assert "25P02" in through.stderr  # current transaction is aborted
    assert through.stdout == direct.stdout
    assert through.stderr == direct.stderr


def test_psql_sessions_and_statements_are_recorded(gateway: Gateway) -> None:
    need("psql")
    out = psql(gateway.dsn(application_name="audit-test"), "-c", "select 1/0", "-c",
               "select count(*) from customers")
    assert "division by zero" in out.stderr
    session = gateway.wait_for(lambda s: next(
        (r for r in s.sessions() if r["application_name"] == "audit-test" and r["ended_at"]),
        None))
    assert session["identity"] == "alice" and session["connection"] == "shop"
    assert session["database"] == "shop" and session["status"] == "closed"
    assert session["end_reason"] == "client quit"
    store = gateway.store()
    statements = store.statements(session["id"])
    store.close()
    assert [s["text"] for s in statements] == ["select 1/0", "select count(*) from customers"]
    assert statements[0]["status"] == "error" and statements[0]["sqlstate"] == "22012"
    assert statements[1]["status"] == "ok" and statements[1]["rows"] == 1
    assert all(s["duration_ms"] is not None and s["duration_ms"] >= 0 for s in statements)


def test_copy_both_ways(gateway: Gateway, tmp_path: Path) -> None:
    need("psql")
    out_file = tmp_path / "customers.csv"
    res = psql(gateway.dsn(), "-c",
               rf"\copy (select id, email from customers order by id) to '{out_file}' csv")
    assert res.returncode == 0, res.stderr
    lines = out_file.read_text().splitlines()
    assert len(lines) == 200 and lines[0].startswith("1,")
    script = (
        "create temp table imported (id int, email text);\n"
        rf"\copy imported from '{out_file}' csv" "\n"
        "select count(*), count(distinct email) from imported;\n"
    )
    res = psql(gateway.dsn(), "-At", stdin=script)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "200|200"


def test_listen_notify(gateway: Gateway) -> None:
    with psycopg.connect(gateway.dsn(), autocommit=True) as listener, \
            psycopg.connect(gateway.dsn(), autocommit=True) as sender:
        listener.execute("LISTEN gw_channel")
        sender.execute("NOTIFY gw_channel, 'through the gateway'")
        received = next(listener.notifies(timeout=10, stop_after=1))
        assert received.channel == "gw_channel"
        assert received.payload == "through the gateway"


def _running(gateway: Gateway, query: str) -> bool:
    with psycopg.connect(gateway.target.superuser(), autocommit=True) as admin:
        row = admin.execute(
            "select count(*) from pg_stat_activity where query = %s and state = 'active'",
            [query]).fetchone()
    return bool(row and row[0])


def test_ctrl_c_in_psql_cancels_the_running_query(gateway: Gateway) -> None:
    need("psql")
    query = "select pg_sleep(60)"
    proc = subprocess.Popen(["psql", "-X", "-d", gateway.dsn(), "-c", query],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while not _running(gateway, query):
            assert time.monotonic() < deadline, "the query never started on the target"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "canceling statement due to user request" in err
    assert not _running(gateway, query)


def test_cancel_with_an_unknown_key_does_nothing(gateway: Gateway) -> None:
    """A CancelRequest with a made-up key must not cancel anyone's query."""
    import socket
    import struct

    from engine.pg import codec

    with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
        with socket.create_connection(("127.0.0.1", gateway.port())) as s:
            s.sendall(codec.untagged(codec.CANCEL_REQUEST, struct.pack("!ii", 12345, 678)))
            s.settimeout(5)
            assert s.recv(100) == b""  # the gateway just closes, as PostgreSQL does
        assert conn.execute("select pg_sleep(0.2), 1").fetchone() == ("", 1)


def test_psql_env_password_and_tls(gateway: Gateway) -> None:
    """sslmode=require works against the gateway's own certificate; the token is the password."""
    need("psql")
    dsn = gateway.dsn(sslmode="require").replace(f"password={gateway.tokens['alice']} ", "")
    res = psql(dsn, "-At", "-c", "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
               env={**os.environ, "PGPASSWORD": gateway.tokens["alice"]})
    assert res.returncode == 0, res.stderr
    # The gateway's upstream for "shop" is sslmode=disable: TLS ends at the gateway.
    assert res.stdout.strip() == "f"
