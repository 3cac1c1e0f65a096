"""Resident memory of the engine with N idle client sessions open (default 200).

    .venv/bin/python bench/idle_sessions.py [--sessions 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from bench.harness import engine, rss_kib, target


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=200)
    args = ap.parse_args()
    with target() as setup, engine(setup) as proc:
        with psycopg.connect(setup.gateway_dsn()) as warm:
            warm.execute("select 1")
        time.sleep(0.5)
        before = rss_kib(proc.pid)
        conns = []
        for _ in range(args.sessions):
            conn = psycopg.connect(setup.gateway_dsn(), autocommit=True)
            conn.execute("select 1")
            conns.append(conn)
        time.sleep(1)
        during = rss_kib(proc.pid)
        for conn in conns:
            conn.close()
    per = (during - before) / args.sessions
    print(f"engine RSS: {before / 1024:.1f} MiB idle, {during / 1024:.1f} MiB with "
          f"{args.sessions} idle sessions ({per:.1f} KiB per session)")


if __name__ == "__main__":
    main()
