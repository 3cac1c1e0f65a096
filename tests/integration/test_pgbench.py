"""pgbench through the gateway: initialisation (COPY, DDL) and every query mode."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import Gateway, need

pytestmark = pytest.mark.integration


def pgbench(gateway: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["pgbench", *args, gateway.dsn()], capture_output=True, text=True,
                          timeout=120, env=gateway.env())


def test_pgbench_init_and_all_query_modes(gateway: Gateway) -> None:
    need("pgbench")
    init = pgbench(gateway, "-i", "-s", "1", "-q")
    assert init.returncode == 0, init.stderr
    transactions = 0
    for mode in ("simple", "extended", "prepared"):
        run = pgbench(gateway, "-n", "-S", "-M", mode, "-c", "4", "-j", "2", "-t", "100")
        assert run.returncode == 0, run.stderr
        assert "number of transactions actually processed: 400/400" in run.stdout
        assert "number of failed transactions: 0" in run.stdout
        transactions += 400
    tpcb = pgbench(gateway, "-n", "-M", "prepared", "-c", "2", "-t", "50")
    assert tpcb.returncode == 0, tpcb.stderr
    assert "number of transactions actually processed: 100/100" in tpcb.stdout

    def selects(store: object) -> int:
        row = store.conn.execute(  # type: ignore[attr-defined]
            "select count(*) from statements where text like 'SELECT abalance FROM"
            " pgbench_accounts WHERE aid = %' and status = 'ok' and rows = 1").fetchone()
        return int(row[0]) if row[0] >= transactions else 0

    assert gateway.wait_for(selects) >= transactions
