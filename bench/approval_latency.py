"""Time from an operator's approval to the held statement's result reaching the client.

    .venv/bin/python bench/approval_latency.py [--rounds 20]

Prints two figures: from the control API's ``approve`` call (what the TUI does), and from
starting the ``gatewatch approve`` command (what a person types; includes Python's start-up).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from bench.harness import POLICY, example_guardrails, target, wait_port
from gatewatch.cli.control_client import ControlClient

ROOT = Path(__file__).resolve().parents[1]
OPERATOR = """
  - name: oncall
    groups: [operators]
    token_env: BENCH_ONCALL_TOKEN
"""


def one_round(dsn: str, control: Path, token: str, *, via_cli: bool,
              env: dict[str, str]) -> float:
    done: list[float] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create temp table t (a int)")

        def run() -> None:
            conn.execute("delete from t")
            done.append(time.perf_counter())

        worker = threading.Thread(target=run)
        worker.start()
        with ControlClient(control, token) as client:
            while not (pending := client.call("approvals")["pending"]):
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    with target() as setup:
        policy = setup.work / "approvals.yaml"
        private = setup.work / "engine-approvals"  # the store's own 0700 directory
        private.mkdir(mode=0o700, exist_ok=True)
        control = private / "control.sock"
        text = POLICY.format(store=private / "approvals.db", control=control,
                             durability="normal", port=setup.gateway_port,
                             pg_port=setup.cluster.port, guardrails=example_guardrails(),
                             masking="")
        policy.write_text(text.replace("identities:\n", "identities:" + OPERATOR, 1))
        oncall = "bench-oncall-token"
        env = {**os.environ, "BENCH_TOKEN": setup.token,
               "BENCH_PG_PASSWORD": setup.target_password, "BENCH_ONCALL_TOKEN": oncall,
               "GATEWATCH_TOKEN": oncall, "GATEWATCH_CONFIG": str(policy)}
        proc = subprocess.Popen([sys.executable, "-m", "gatewatch", "engine", "-c", str(policy)],
                                env=env, cwd=ROOT)
        try:
            wait_port(setup.gateway_port)
            for via_cli in (False, True):
                times = [one_round(setup.gateway_dsn(), control, oncall, via_cli=via_cli,
                                   env=env) for _ in range(args.rounds)]
                name = "gatewatch approve (CLI)" if via_cli else "control API approve"
                print(f"{name:<24} median {statistics.median(times):7.1f} ms   "
                      f"max {max(times):7.1f} ms   ({args.rounds} rounds)")
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
