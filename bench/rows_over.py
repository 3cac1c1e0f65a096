"""What judging a write by its effect (``rows_over: N``, issue 12) would cost per write.

    .venv/bin/python bench/rows_over.py [--writes 3000] [--gateway]

On a throw-away PostgreSQL directly, with the messages the gateway injects
(``engine/pg/rowcount.py``), one UPDATE of one row by its key, sent as a simple Query (libpq's
PQexec):

- ``plain``: the UPDATE alone (autocommit), what a guarded UPDATE costs today on the target;
- ``probe-autocommit``: ``BEGIN`` and the UPDATE sent together, the count read from its
  CommandComplete, then ``COMMIT`` (one more round trip, and a transaction opened by hand);
- ``probe-in-transaction``: inside the client's transaction, ``SAVEPOINT`` with the UPDATE,
  then ``RELEASE SAVEPOINT`` (against the same UPDATE inside a transaction without them).

With ``--gateway``, the same UPDATEs through an engine with the example rules, then through
one with a rule that reviews writes over 100 rows added (``rows_over: 100``): the whole cost
of counting, the gateway's own work included. The engines run one after the other (not
interleaved), so compare figures from one run only.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import psycopg

from bench import harness
from bench.harness import target
from gatewatch.demo.pgcluster import free_port

ROWS_OVER_RULE = """  - name: big-writes
    action: review
    match: {rows_over: 100}
"""


def _offset(one: Callable[[int], None], base: int, i: int) -> None:
    one(base + i)


def timed(writes: int, one: Callable[[int], None]) -> list[float]:
    out = []
    for i in range(writes):
        started = time.perf_counter()
        one(i)
        out.append((time.perf_counter() - started) * 1e6)
    return out


@contextlib.contextmanager
def _engine(setup: harness.Setup, name: str, rules: str, port: int) -> Iterator[None]:
    """An engine with the example guardrails and ``rules`` appended, its own store."""
    private = setup.work / f"engine-{name}"
    private.mkdir(mode=0o700)
    policy = setup.work / f"policies-{name}.yaml"
    policy.write_text(harness.POLICY.format(
        store=private / "store.db", control=private / "control.sock", durability="normal",
        port=port, pg_port=setup.cluster.port,
        guardrails=harness.example_guardrails() + "\n" + rules, masking=""))
    env = {**os.environ, "BENCH_TOKEN": setup.token, "BENCH_PG_PASSWORD": setup.target_password}
    proc = subprocess.Popen([sys.executable, "-m", "gatewatch", "engine", "-c", str(policy)],
                            env=env, cwd=harness.ROOT)
    try:
        harness.wait_port(port)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def _update(run: Callable[[str], None], i: int) -> None:
    run(f"UPDATE accounts SET balance = balance + 1 WHERE id = {i % 10000 + 1}")


def _runner(pg: psycopg.pq.abc.PGconn) -> Callable[[str], None]:
    def run(sql: str) -> None:
        result = pg.exec_(sql.encode())
        if result.error_message:
            raise RuntimeError(result.error_message.decode())
    return run


def through_gateway(writes: int) -> None:
    """Two engines at once, the example rules with and without a rows_over rule; rounds of
    10 writes interleaved between them, as above."""
    with contextlib.ExitStack() as stack:
        setup = stack.enter_context(target())
        with psycopg.connect(setup.direct_dsn(), autocommit=True) as conn:
            conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)")
            conn.execute("INSERT INTO accounts SELECT g, 0 FROM generate_series(1, 10000) g")
        cases: list[tuple[str, Callable[[int], None], Callable[[str], None], bool]] = []
        for name, rules in (("gateway", ""), ("gateway-rows-over", ROWS_OVER_RULE)):
            port = free_port()
            stack.enter_context(_engine(setup, name, rules, port))
            dsn = setup.gateway_dsn().replace(f"port={setup.gateway_port}", f"port={port}")
            run = _runner(stack.enter_context(psycopg.connect(dsn, autocommit=True)).pgconn)
            update: Callable[[int], None] = functools.partial(_update, run)
            cases.append((name, update, run, False))
            cases.append((f"{name}-in-transaction", update, run, True))
        results: dict[str, list[float]] = {case[0]: [] for case in cases}
        for round_ in range(writes // 10 + 20):
            for case, one, run, wrapped in cases:
                if wrapped:
                    run("BEGIN")
                samples = timed(10, functools.partial(_offset, one, round_ * 10))
                if wrapped:
                    run("COMMIT")
                if round_ >= 20:
                    results[case].extend(samples)
    print(f"{'case':<34} {'median µs':>10} {'p95 µs':>8}  per write, {writes} writes")
    for case, samples in results.items():
        samples.sort()
        print(f"{case:<34} {statistics.median(samples):>10.0f} "
              f"{samples[int(len(samples) * 0.95)]:>8.0f}")
    for suffix in ("", "-in-transaction"):
        extra = (statistics.median(results[f"gateway-rows-over{suffix}"])
                 - statistics.median(results[f"gateway{suffix}"]))
        print(f"added by counting, through the gateway{suffix or ' (autocommit)'}: "
              f"{extra:.0f} µs per write")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=3000)
    parser.add_argument("--gateway", action="store_true")
    args = parser.parse_args()
    if args.gateway:
        through_gateway(args.writes)
        return
    with target() as setup, psycopg.connect(setup.direct_dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)")
        conn.execute("INSERT INTO accounts SELECT g, 0 FROM generate_series(1, 10000) g")
        pg = conn.pgconn

        def run(sql: str) -> None:
            result = pg.exec_(sql.encode())
            if result.error_message:
                raise RuntimeError(result.error_message.decode())

        def update(i: int) -> str:
            return f"UPDATE accounts SET balance = balance + 1 WHERE id = {i % 10000 + 1}"

        def plain(i: int) -> None:
            run(update(i))

        def probe_autocommit(i: int) -> None:
            # One round trip for BEGIN + the UPDATE (the gateway sends both at once; here as
            # one string, which costs the server the same), one for COMMIT.
            run(f"BEGIN; {update(i)}")
            run("COMMIT")

        def in_transaction(i: int) -> None:
            run(update(i))

        def probe_in_transaction(i: int) -> None:
            run(f"SAVEPOINT gatewatch_rows; {update(i)}")
            run("RELEASE SAVEPOINT gatewatch_rows")

        cases: list[tuple[str, Callable[[int], None], bool]] = [
            ("plain", plain, False), ("probe-autocommit", probe_autocommit, False),
            ("in-transaction", in_transaction, True),
            ("probe-in-transaction", probe_in_transaction, True)]
        results: dict[str, list[float]] = {name: [] for name, _, _ in cases}
        # Rounds of 10 writes per case, interleaved (no case gets a warmer cache); writes
        # "in a transaction" are 10 to a client transaction, as an application's would be.
        for round_ in range(args.writes // 10 + 20):
            for name, one, wrapped in cases:
                if wrapped:
                    run("BEGIN")
                samples = timed(10, functools.partial(_offset, one, round_ * 10))
                if wrapped:
                    run("COMMIT")
                if round_ >= 20:  # warm-up rounds left out
                    results[name].extend(samples)

    print(f"{'case':<22} {'median µs':>10} {'p95 µs':>8}  per write, {args.writes} writes")
    for name in ("plain", "probe-autocommit", "in-transaction", "probe-in-transaction"):
        samples = sorted(results[name])
        print(f"{name:<22} {statistics.median(samples):>10.0f} "
              f"{samples[int(len(samples) * 0.95)]:>8.0f}")
    for base, probed in (("plain", "probe-autocommit"),
                         ("in-transaction", "probe-in-transaction")):
        extra = statistics.median(results[probed]) - statistics.median(results[base])
        print(f"added by the probe ({probed}): {extra:.0f} µs per write")


if __name__ == "__main__":
    main()
