"""One session's masking must not stall other sessions (issue 14, ARCHITECTURE.md invariant 8).

One client pulls a 10 MB text value full of card numbers through a masking gateway, while
another client's ``SELECT 1`` (an open connection, every 20 ms) and an SSH ``echo`` (an open
session to ``cat``, every 20 ms) are timed through the same engine. Prints the pull's duration
and the worst and median answer times of the others during it (aim: within 100 ms).

With ``--rows N`` the load is many ordinary rows instead: ``psql`` reads ``SELECT national_id
FROM big_table`` (N rows of a column the example policies hash) through the gateway with the
example masking rules, and the pull is timed straight to PostgreSQL too; a third probe opens
a new connection through the gateway every 100 ms and times connect + ``SELECT 1``.

With ``--wide N`` the load is one row of N columns, each ``repeat(UNIT, K)`` just under 1 MiB
(outside attack round 13, finding 5: 16 columns of ``repeat('7 ', 499995)``, each value once
masked in one call). ``psql`` reads it straight from PostgreSQL and then through the gateway,
and the others' ``SELECT 1`` is timed during each pull, printed side by side. ``--unit`` sets
what is repeated: ``'{i} '`` (column i's digit and a blank: a run of digits, which has no
place to cut) or words (``'word{i} '``: cut every 16 KiB).

    .venv/bin/python bench/masking_stall.py [--megabytes 10]
    .venv/bin/python bench/masking_stall.py --rows 3000000
    .venv/bin/python bench/masking_stall.py --wide 16 [--unit '{i} ']

The engine runs in its own process (as in production); the clients run here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncssh
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import POLICY, ROOT, Setup, example_masking, free_port, target, wait_port
from tests.sshd import start_sshd

SSH_CONNECTION = """
  - name: web
    kind: ssh
    listen: 127.0.0.1:{port}
    upstream: {{host: 127.0.0.1, port: {sshd_port}, user: {sshd_user},
               key_file: {client_key}, known_hosts: {known_hosts}}}
    allow: {{groups: [bench]}}
"""
MASKING = """
masking:
  - name: personal-data
    detect: [email, payment_card, iban, us_ssn, phone, jwt, aws_access_key, aws_secret_key,
             private_key, secret_assignment, url_credentials]
    strategy: partial
    keep_last: 4
"""


def pull(dsn: str, megabytes: int, out: dict[str, float]) -> None:
    """The pull runs in a child process: decoding 10 MB here would hold this process's GIL
    and delay the probes, which would then measure the bench, not the gateway."""
    start = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--pull", dsn, "--megabytes", str(megabytes)],
                   check=True)
    out["pull"] = time.perf_counter() - start


def pull_rows(dsn: str, out: dict[str, float], key: str = "pull") -> None:
    """psql reads the whole result as fast as the gateway sends it (into libpq's memory)."""
    start = time.perf_counter()
    subprocess.run(["psql", "-X", "-A", "-t", "-o", "/dev/null", "-c",
                    "SELECT national_id FROM big_table", dsn], check=True)
    out[key] = time.perf_counter() - start


def wide_query(columns: int, unit: str) -> str:
    """One row of ``columns`` values of just under 1 MiB characters each (``unit`` repeated,
    ``{i}`` in it the column's number modulo 10)."""
    def one(i: int) -> str:
        text = unit.format(i=i % 10)
        return f"repeat('{text}', {(1 << 20) // len(text) - 10}) AS c{i}"
    return "SELECT " + ", ".join(one(i) for i in range(columns))


def pull_wide(dsn: str, query: str, out: dict[str, float], key: str = "pull") -> None:
    start = time.perf_counter()
    subprocess.run(["psql", "-X", "-A", "-t", "-o", "/dev/null", "-c", query, dsn], check=True)
    out[key] = time.perf_counter() - start


def pull_here(dsn: str, megabytes: int) -> None:
    count = megabytes * 1024 * 1024 // 17
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("select repeat('4111111111111111 ', %s)", (count,)).fetchone()
    assert row is not None and len(row[0]) >= count and "4111111111111111" not in row[0]


def probe_sql(dsn: str, stop: threading.Event, times: list[float]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select 1").fetchall()
        while not stop.is_set():
            start = time.perf_counter()
            conn.execute("select 1").fetchall()
            times.append(time.perf_counter() - start)
            time.sleep(0.02)


def probe_connect(dsn: str, stop: threading.Event, times: list[float]) -> None:
    """A new client every 100 ms: connect (the gateway's login, record, upstream login) and
    ``SELECT 1``, timed together."""
    while not stop.is_set():
        start = time.perf_counter()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("select 1").fetchall()
        times.append(time.perf_counter() - start)
        time.sleep(0.1)


async def probe_ssh(port: int, token: str, stop: threading.Event, times: list[float]) -> None:
    async with asyncssh.connect("127.0.0.1", port, username="bencher", password=token,
                                known_hosts=None, client_keys=None) as conn:
        proc = await conn.create_process("cat", encoding=None)
        proc.stdin.write(b"warm\n")
        await proc.stdout.readline()
        while not stop.is_set():
            start = time.perf_counter()
            proc.stdin.write(b"echo\n")
            await proc.stdout.readline()
            times.append(time.perf_counter() - start)
            await asyncio.sleep(0.02)
        proc.stdin.write_eof()


def quantiles(times: list[float]) -> str:
    if not times:
        return "no answers"
    ms = sorted(t * 1000 for t in times)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (f"n={len(ms):<4} p50 {statistics.median(ms):7.1f}  p99 {p99:7.1f}  "
            f"max {ms[-1]:7.1f} ms")


def probed(dsn: str, load: Callable[[], None]) -> list[float]:
    """``SELECT 1`` through the gateway (``dsn``), timed while ``load`` runs."""
    stop = threading.Event()
    times: list[float] = []
    thread = threading.Thread(target=probe_sql, args=(dsn, stop, times))
    thread.start()
    time.sleep(0.5)
    times.clear()
    try:
        load()
    finally:
        stop.set()
        thread.join()
    return times


def wide(setup: Setup, ssh: str, columns: int, unit: str, workers: int) -> None:
    """The wide row straight from PostgreSQL and through the gateway; the others' ``SELECT 1``
    through the gateway during each, side by side."""
    query = wide_query(columns, unit)
    with engine_with(setup, ssh, MASKING, workers):
        dsn = setup.gateway_dsn()
        timed: dict[str, float] = {}
        idle = probed(dsn, lambda: time.sleep(2))
        direct = probed(dsn, lambda: pull_wide(setup.direct_dsn(), query, timed, "direct"))
        gateway = probed(dsn, lambda: pull_wide(dsn, query, timed, "gateway"))
    print(f"one row of {columns} values of {unit!r} repeated to just under 1 MiB; "
          f"pull direct {timed['direct']:.2f} s, through the gateway {timed['gateway']:.2f} s")
    print("others' SELECT 1 through the gateway (ms):")
    print(f"  {'idle':<28} {quantiles(idle)}")
    print(f"  {'while the pull is direct':<28} {quantiles(direct)}")
    print(f"  {'while it goes through':<28} {quantiles(gateway)}")


def summary(name: str, times: list[float]) -> str:
    if not times:
        return f"{name:<14} no answers"
    ms = sorted(t * 1000 for t in times)
    p95 = ms[int(len(ms) * 0.95)]
    over = sum(t > 100 for t in ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (f"{name:<14} n={len(ms):<4} p50 {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms"
            f"   p99 {p99:7.1f} ms   max {ms[-1]:7.1f} ms   over 100 ms: {over}")


@contextlib.contextmanager
def engine_with(setup: Setup, ssh: str, masking: str = MASKING,
                workers: int = 1) -> Iterator[None]:
    """The bench engine (harness.POLICY) with masking (the detectors by default) and an SSH
    connection."""
    private = setup.work / "stall"
    private.mkdir(mode=0o700, exist_ok=True)
    policy = private / "policies.yaml"
    policy.write_text(POLICY.format(
        store=private / "store.db", control=private / "control.sock",
        durability="normal", port=setup.gateway_port, pg_port=setup.cluster.port,
        guardrails="", masking=masking).replace(
            "  log_level: WARNING\n", f"  log_level: WARNING\n  workers: {workers}\n") + ssh)
    env = {**os.environ, "BENCH_TOKEN": setup.token, "BENCH_PG_PASSWORD": setup.target_password}
    proc = subprocess.Popen([sys.executable, "-m", "gatewatch", "engine", "-c", str(policy)],
                            env=env, cwd=ROOT)
    try:
        wait_port(setup.gateway_port)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=10)
    parser.add_argument("--rows", type=int, default=0,
                        help="pull this many hashed rows instead of one large value")
    parser.add_argument("--workers", type=int, default=1,
                        help="engine.workers (1: every probe shares the pull's event loop; "
                             "with more, a probe meets the pull only where the kernel hands it "
                             "to the same worker)")
    parser.add_argument("--wide", type=int, default=0,
                        help="pull one row of this many values of just under 1 MiB instead")
    parser.add_argument("--unit", default="{i} ",
                        help="what --wide repeats ({i}: the column's number modulo 10)")
    parser.add_argument("--pull", help=argparse.SUPPRESS)  # the child process's DSN
    args = parser.parse_args()
    if args.pull:
        pull_here(args.pull, args.megabytes)
        return
    work = Path(tempfile.mkdtemp(prefix="gw-stall-"))
    sshd = start_sshd(work / "sshd")
    try:
        with target() as setup:
            ssh_port = free_port()
            ssh = SSH_CONNECTION.format(
                port=ssh_port, sshd_port=sshd.port, sshd_user=sshd.user,
                client_key=sshd.client_key, known_hosts=sshd.known_hosts)
            if args.wide:
                wide(setup, ssh, args.wide, args.unit, args.workers)
                return
            rows = args.rows
            if rows:
                setup.cluster.sql(
                    "CREATE TABLE big_table AS SELECT i AS id, lpad(i::text, 11, '0') AS "
                    f"national_id FROM generate_series(1, {rows}) AS i; "
                    "ALTER TABLE big_table OWNER TO bench;", dbname="bench")
            with engine_with(setup, ssh, example_masking() if rows else MASKING,
                             args.workers):
                dsn = setup.gateway_dsn()
                timed: dict[str, float] = {}
                if rows:
                    pull_rows(setup.direct_dsn(), timed, "direct")
                    print(f"direct: pull of {rows:,} rows took {timed['direct']:.2f} s")
                load_label = f"{rows:,} hashed rows" if rows else f"{args.megabytes} MB pull"
                for label, load in (("idle", False), (load_label, True)):
                    stop = threading.Event()
                    sql_times: list[float] = []
                    new_times: list[float] = []
                    ssh_times: list[float] = []
                    result: dict[str, float] = {}
                    threads = [threading.Thread(target=probe_sql, args=(dsn, stop, sql_times)),
                               threading.Thread(target=probe_connect,
                                                args=(dsn, stop, new_times)),
                               threading.Thread(target=asyncio.run, args=(probe_ssh(
                                   ssh_port, setup.token, stop, ssh_times),))]
                    for t in threads:
                        t.start()
                    time.sleep(0.5)
                    sql_times.clear()
                    new_times.clear()
                    ssh_times.clear()
                    if load and rows:
                        pull_rows(dsn, result)
                    elif load:
                        pull(dsn, args.megabytes, result)
                    else:
                        time.sleep(2)
                    stop.set()
                    for t in threads:
                        t.join()
                    what = f"{rows:,} rows" if rows else f"{args.megabytes} MB of card numbers"
                    head = (f"{label}: pull of {what} through the gateway took "
                            f"{result['pull']:.2f} s" if load else f"{label}:")
                    print(head)
                    print("  " + summary("SELECT 1", sql_times))
                    print("  " + summary("new + SELECT 1", new_times))
                    print("  " + summary("ssh echo", ssh_times))
    finally:
        sshd.stop()


if __name__ == "__main__":
    main()
