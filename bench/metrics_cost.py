"""What metrics and the audit stream cost on the data path: pgbench -S through three engines
on the same target — recording only, with ``engine.metrics``, and with metrics and an audit
stream (JSON lines to a file) — one after the other, scraped once a second while they run.

    .venv/bin/python bench/metrics_cost.py [--seconds 10] [--scale 5] [--clients 1,8]

Prints TPS per engine and client count, and the ratio to the engine without either.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import POLICY, ROOT, Setup, free_port, target, wait_port
from bench.pgbench_compare import pgbench


@contextlib.contextmanager
def engine(setup: Setup, name: str, extra: str, port: int) -> Iterator[None]:
    private = setup.work / f"engine-{name}"
    private.mkdir(mode=0o700)
    policy = setup.work / f"policies-{name}.yaml"
    text = POLICY.format(store=private / "store.db", control=private / "control.sock",
                         durability="normal", port=port, pg_port=setup.cluster.port,
                         guardrails="", masking="")
    extra = extra.replace("{dir}", str(private))
    policy.write_text(text.replace("  log_level: WARNING\n", "  log_level: WARNING\n" + extra, 1))
    env = {**os.environ, "BENCH_TOKEN": setup.token, "BENCH_PG_PASSWORD": setup.target_password}
    proc = subprocess.Popen([sys.executable, "-m", "gatewatch", "engine", "-c", str(policy)],
                            env=env, cwd=ROOT)
    try:
        wait_port(port)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def scraping(url: str | None, stop: threading.Event) -> None:
    while url and not stop.wait(1.0):
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as answer:
            answer.read()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--scale", type=int, default=5)
    ap.add_argument("--clients", default="1,8")
    args = ap.parse_args()
    results: dict[tuple[str, int], float] = {}
    with target() as setup:
        subprocess.run(["pgbench", "-i", "-q", "-s", str(args.scale), setup.direct_dsn()],
                       check=True, capture_output=True)
        for name, extra in (
            ("recording", ""),
            ("metrics", "  metrics: {{listen: 127.0.0.1:{metrics}}}\n"),
            ("metrics+stream", "  metrics: {{listen: 127.0.0.1:{metrics}}}\n"
             "  audit_stream: {{sink: file, path: {{dir}}/audit.jsonl, max_size: 64MiB}}\n"),
        ):
            metrics_port = free_port()
            port = free_port()
            url = f"http://127.0.0.1:{metrics_port}/metrics" if "metrics" in name else None
            with engine(setup, name, extra.format(metrics=metrics_port), port):
                dsn = setup.gateway_dsn().replace(f"port={setup.gateway_port}", f"port={port}")
                for c in map(int, args.clients.split(",")):
                    stop = threading.Event()
                    scraper = threading.Thread(target=scraping, args=(url, stop))
                    scraper.start()
                    try:
                        results[(name, c)] = pgbench(dsn, c, "simple", args.seconds)[0]
                    finally:
                        stop.set()
                        scraper.join()
    print(f"pgbench -S -M simple, scale {args.scale}, {args.seconds} s each; /metrics scraped "
          "once a second")
    print(f"{'engine':<15} {'c':>2} {'tps':>9} {'/recording':>10}")
    for (name, c), tps in results.items():
        print(f"{name:<15} {c:>2} {tps:>9.0f} {tps / results[('recording', c)]:>10.3f}")


if __name__ == "__main__":
    main()
