"""``gatewatch demo --headless``: one JSON line once everything accepts connections."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import ROOT, need

pytestmark = pytest.mark.integration


def test_demo_headless(tmp_path: Path) -> None:
    need("postgres", "psql")
    env = {**os.environ, "GATEWATCH_STORE": str(tmp_path / "demo.db"),
           "GATEWATCH_CONTROL": str(tmp_path / "demo.sock")}
    proc = subprocess.Popen([sys.executable, "-m", "engine", "demo", "--headless"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 90)
        assert ready, "the demo printed nothing within 90 s"
        info = json.loads(proc.stdout.readline())
        assert info["store"] == str(tmp_path / "demo.db")
        assert info["config"] == str(ROOT / "policies.yaml")
        pg, direct = info["postgres"], info["postgres_direct"]
        with psycopg.connect(host=pg["host"], port=pg["port"], dbname=pg["dbname"],
                             user=pg["user"], password=pg["password"],
                             sslmode="require") as conn:
            assert conn.info.pgconn.ssl_in_use
            row = conn.execute("select count(*), count(distinct email),"
                               " bool_and(card_number is not null) from customers").fetchone()
            assert row == (200, 200, True)
            assert conn.execute("select count(*) from orders").fetchone() == (2000,)
        with psycopg.connect(host=direct["host"], port=direct["port"], dbname=direct["dbname"],
                             user=direct["user"], password=direct["password"]) as conn:
            assert conn.execute("select current_user").fetchone() == (direct["user"],)
        from tests.integration.test_control import ask

        approver = info["approver"]
        greeting = json.dumps({"op": "hello", "token": approver["token"]}).encode()
        (hello,) = ask(Path(info["control"]), greeting)
        assert hello["ok"] and hello["result"]["operator"]
        assert hello["result"]["listeners"]["shop"] == f"{pg['host']}:{pg['port']}"
        with psycopg.connect(host=pg["host"], port=pg["port"], dbname=pg["dbname"],
                             user=approver["user"], password=approver["token"]) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        time.sleep(0.2)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(host=direct["host"], port=direct["port"], dbname=direct["dbname"],
                            user=direct["user"], password=direct["password"], connect_timeout=3)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
