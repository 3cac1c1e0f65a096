"""What several nodes checkpointing into one SQLite store cost (issue 17).

Each node is a process that writes as an engine's recorder does: a group commit of 32 records
(16 statements, started and ended) to its own journal, and every 50 ms a checkpoint that moves
what it committed into the shared database in one transaction (BEGIN IMMEDIATE: it waits for
another node's checkpoint through SQLite's busy timeout). Runs 1 node, then N at once, for a
few seconds each, flat out and then paced (``--rate`` records per second per node, about what
an engine writes at a few thousand statements per second), and prints per node the records
committed per second and the checkpoints' median and 99th-percentile time (a checkpoint that
waits for another node's is that much longer: how long records stay in the journal only).

With ``--postgres`` the nodes write a PostgreSQL store on a throw-away cluster (initdb) instead,
each with its local journal.

    .venv/bin/python bench/store_nodes.py [--nodes 2] [--seconds 5] [--rate 5000] [--postgres]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

NODE = r"""
import json, sys, time
from pathlib import Path
from store import open_store
from tests.store.sample import session_open, statement_start, statement_end

location, node = sys.argv[1], sys.argv[2]
seconds, start_at, rate = float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
local = Path(sys.argv[6]) / node / "local.db"
store = open_store(location, node=node, local=local)
store.apply([session_open(node)])
store.checkpoint()
while time.time() < start_at:
    time.sleep(0.001)
end, seq, records, checkpoints, last = time.time() + seconds, 0, 0, [], time.monotonic()
began_at = time.monotonic()
while time.time() < end:
    if rate and records >= rate * (time.monotonic() - began_at):
        time.sleep(0.001)
        continue
    batch = []
    for _ in range(16):
        seq += 1
        batch += [statement_start(node, seq), statement_end(node, seq)]
    store.apply(batch)
    records += len(batch)
    if time.monotonic() - last >= 0.05:
        began = time.perf_counter()
        store.checkpoint()
        checkpoints.append(time.perf_counter() - began)
        last = time.monotonic()
store.close()
print(json.dumps({"records": records, "seconds": seconds, "checkpoints": checkpoints}))
"""


def run(location: str, local: Path, nodes: int, seconds: float,
        rate: float) -> list[dict[str, float]]:
    start_at = time.time() + 2.0  # every node open before any writes
    procs = [subprocess.Popen([sys.executable, "-c", NODE, location, f"n{nodes}-{i}-{rate:.0f}",
                               str(seconds), str(start_at), str(rate), str(local)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for i in range(nodes)]
    out = []
    for proc in procs:
        stdout, _ = proc.communicate(timeout=seconds + 60)
        data = json.loads(stdout)
        times = sorted(data["checkpoints"])
        out.append({
            "records_per_s": data["records"] / data["seconds"],
            "checkpoints": len(times),
            "median_ms": statistics.median(times) * 1000 if times else 0.0,
            "p99_ms": times[int(len(times) * 0.99) - 1] * 1000 if times else 0.0,
        })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=5000.0,
                        help="records/s per node in the paced runs (a statement is two)")
    parser.add_argument("--postgres", action="store_true",
                        help="a PostgreSQL store on a throw-away cluster instead of SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "state"
        directory.mkdir(mode=0o700)
        cluster = None
        if args.postgres:
            from gatewatch.demo.pgcluster import PgCluster

            cluster = PgCluster(Path(tmp) / "pg")
            cluster.start()
        try:
            for rate in (0.0, args.rate):
                for count in (1, args.nodes):
                    location = (f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres"
                                if cluster else str(directory / f"store{count}-{rate:.0f}.db"))
                    report(run(location, directory, count, args.seconds, rate), count, rate)
        finally:
            if cluster is not None:
                cluster.stop()


def report(results: list[dict[str, float]], count: int, rate: float) -> None:
    pace = f"at {rate:,.0f} records/s per node" if rate else "flat out"
    total = sum(r["records_per_s"] for r in results)
    print(f"{count} node(s) {pace}: {total:,.0f} records/s in all")
    for i, r in enumerate(results):
        print(f"  node {i}: {r['records_per_s']:,.0f} records/s, {r['checkpoints']:.0f}"
              f" checkpoints, median {r['median_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms")


if __name__ == "__main__":
    main()
