"""Time from an operator's approval to the held statement's result reaching the client.

    .venv/bin/python bench/approval_latency.py [--rounds 20] [--fleet]

Prints two figures: from the control API's ``approve`` call (what the TUI does), and from
starting the ``gatewatch approve`` command (what a person types; includes Python's start-up).
``--fleet`` (issue 17) runs two engine nodes on one PostgreSQL store instead (a database of the
same throw-away cluster): the statement is held on node A and approved through node B's
control socket, so the decision travels B → store → A (LISTEN/NOTIFY) before A runs it.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from bench.harness import POLICY, Setup, example_guardrails, free_port, target, wait_port
from gatewatch.cli.control_client import ControlClient

ROOT = Path(__file__).resolve().parents[1]
OPERATOR = """
  - name: oncall
    groups: [operators]
    token_env: BENCH_ONCALL_TOKEN
"""


def one_round(dsn: str, control: Path, token: str, *, via_cli: bool,
              env: dict[str, str], held_on: str | None = None) -> float:
    """One held DELETE through ``dsn``, approved through ``control`` (the CLI's config in
    ``env``); ``held_on``: the node to find it pending on (a fleet), else any."""
    done: list[float] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create temp table t (a int)")

        def run() -> None:
            conn.execute("delete from t")
            done.append(time.perf_counter())

        worker = threading.Thread(target=run)
        worker.start()
        with ControlClient(control, token) as client:
            while not (pending := [r for r in client.call("approvals")["pending"]
                                    if held_on is None or r.get("node") == held_on]):
                time.sleep(0.005)
            request = pending[0]["id"]
            start = time.perf_counter()
            if via_cli:
                subprocess.run([sys.executable, "-m", "gatewatch", "approve", request], env=env,
                               cwd=ROOT, check=True, capture_output=True)
            else:
                client.call("approve", request=request)
        worker.join(30)
    return (done[0] - start) * 1000


def engine_policy(setup: Setup, name: str, store: str, port: int) -> tuple[Path, Path]:
    """A policies file for one engine (node ``name`` when ``store`` is a URL): its path and
    its control socket."""
    private = setup.work / f"engine-{name}"  # the store's own 0700 directory
    private.mkdir(mode=0o700, exist_ok=True)
    control = private / "control.sock"
    policy = private / "policies.yaml"
    text = POLICY.format(store=store or private / "approvals.db", control=control,
                         durability="normal", port=port, pg_port=setup.cluster.port,
                         guardrails=example_guardrails(), masking="")
    if store:
        text = text.replace("engine:\n", f"engine:\n  node: {name}\n  workers: 1\n"
                            f"  local_store: {private / 'local.db'}\n", 1)
    policy.write_text(text.replace("identities:\n", "identities:" + OPERATOR, 1))
    return policy, control


def fleet_store(setup: Setup) -> tuple[str, str]:
    """A database of the throw-away cluster for a PostgreSQL store: its URL and password."""
    password = secrets.token_urlsafe(16)
    setup.cluster.create_role("gwstore", password)
    setup.cluster.sql('CREATE DATABASE gwstore OWNER gwstore;')
    return f"postgresql://gwstore@127.0.0.1:{setup.cluster.port}/gwstore", password


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--fleet", action="store_true",
                    help="two nodes on a PostgreSQL store: held on A, approved through B")
    args = ap.parse_args()
    with target() as setup:
        oncall = "bench-oncall-token"
        env = {**os.environ, "BENCH_TOKEN": setup.token,
               "BENCH_PG_PASSWORD": setup.target_password, "BENCH_ONCALL_TOKEN": oncall,
               "GATEWATCH_TOKEN": oncall}
        store, names = "", ["a"]
        if args.fleet:
            store, env["PGPASSWORD"] = fleet_store(setup)
            names = ["node-a", "node-b"]
        ports = [setup.gateway_port] + [free_port() for _ in names[1:]]
        policies = [engine_policy(setup, n, store, p) for n, p in zip(names, ports, strict=True)]
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for policy, _ in policies:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "gatewatch", "engine", "-c", str(policy)],
                    env=env, cwd=ROOT))
            for port in ports:
                wait_port(port)
            control = policies[-1][1]  # the last node's: B's in a fleet
            env["GATEWATCH_CONFIG"] = str(policies[-1][0])
            where = " (held on node-a, approved through node-b)" if args.fleet else ""
            for via_cli in (False, True):
                times = [one_round(setup.gateway_dsn(), control, oncall, via_cli=via_cli,
                                   env=env, held_on=names[0] if args.fleet else None)
                         for _ in range(args.rounds)]
                name = "gatewatch approve (CLI)" if via_cli else "control API approve"
                print(f"{name:<24} median {statistics.median(times):7.1f} ms   "
                      f"max {max(times):7.1f} ms   ({args.rounds} rounds){where}")
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(30)


if __name__ == "__main__":
    main()
