"""What judging a write by its effect (``rows_over: N``, issue 12) costs per write.

    .venv/bin/python -m bench.rows_over [--writes 3000] [--gateway]

One UPDATE of one row by its key, in both protocols: ``simple`` (a Query, libpq's PQexec) and
``extended`` (Parse, Bind, Describe, Execute, Sync: libpq's PQexecParams, what drivers send
with server-side binding); each in autocommit and inside a client transaction (10 writes to a
transaction, as an application's would be).

Without ``--gateway``, on a throw-away PostgreSQL directly, with the statements the gateway
adds (``engine/pg/rowcount.py``): the UPDATE alone against ``BEGIN`` or ``SAVEPOINT`` with it
and ``COMMIT`` or ``RELEASE`` after, what counting costs the server and one round trip.

With ``--gateway``, in one run, rounds of 10 writes interleaved between: PostgreSQL directly,
an engine with the example rules without ``review-big-writes`` (nothing counted), and an
engine with the example rules as shipped (every UPDATE counted). The last two differ only by
the count: their difference is its whole cost, the gateway's own work included.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping

import psycopg

from bench import harness
from bench.harness import target
from engine.pg.rowcount import STAT
from gatewatch.demo.pgcluster import free_port

# One write (its number), how to run BEGIN and COMMIT, whether in a transaction.
Case = tuple[Callable[[int], None], Callable[[str], None], bool]


def timed(writes: int, one: Callable[[int], None], base: int) -> list[float]:
    out = []
    for i in range(writes):
        started = time.perf_counter()
        one(base + i)
        out.append((time.perf_counter() - started) * 1e6)
    return out


def without_rows_over(rules: str) -> str:
    """The example rules without their rows_over rule (and its comment)."""
    out = re.sub(r"(?m)^  # Judged by its effect:.*\n(  #.*\n)*", "", rules)
    out = re.sub(r"(?m)^  - name: review-big-writes\n(    .*\n)+", "", out)
    assert "rows_over" not in out
    return out


@contextlib.contextmanager
def _engine(setup: harness.Setup, name: str, guardrails: str, port: int) -> Iterator[None]:
    """An engine with ``guardrails`` (the policies file's section), its own store."""
    private = setup.work / f"engine-{name}"
    private.mkdir(mode=0o700)
    policy = setup.work / f"policies-{name}.yaml"
    policy.write_text(harness.POLICY.format(
        store=private / "store.db", control=private / "control.sock", durability="normal",
        port=port, pg_port=setup.cluster.port, guardrails=guardrails, masking=""))
    env = {**os.environ, "BENCH_TOKEN": setup.token, "BENCH_PG_PASSWORD": setup.target_password}
    proc = subprocess.Popen([sys.executable, "-m", "gatewatch", "engine", "-c", str(policy)],
                            env=env, cwd=harness.ROOT)
    try:
        harness.wait_port(port)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def _checked(result: psycopg.pq.abc.PGresult) -> None:
    if result.error_message:
        raise RuntimeError(result.error_message.decode())


def simple(pg: psycopg.pq.abc.PGconn, sql: str) -> None:
    _checked(pg.exec_(sql.encode()))


def update(pg: psycopg.pq.abc.PGconn, protocol: str, i: int) -> None:
    key = i % 10000 + 1
    if protocol == "simple":
        simple(pg, f"UPDATE accounts SET balance = balance + 1 WHERE id = {key}")
    else:
        _checked(pg.exec_params(b"UPDATE accounts SET balance = balance + 1 WHERE id = $1",
                                [str(key).encode()]))


def measure(cases: Mapping[str, Case], writes: int) -> dict[str, list[float]]:
    """Rounds of 10 writes per case, interleaved (no case gets a warmer cache); the first 20
    rounds are a warm-up."""
    results: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(writes // 10 + 20):
        for name, (one, run, wrapped) in cases.items():
            if wrapped:
                run("BEGIN")
            samples = timed(10, one, round_ * 10)
            if wrapped:
                run("COMMIT")
            if round_ >= 20:
                results[name].extend(samples)
    return results


def report(results: dict[str, list[float]], writes: int,
           differences: list[tuple[str, str, str]]) -> None:
    width = max(len(name) for name in results) + 2
    print(f"{'case':<{width}} {'median µs':>10} {'p95 µs':>8}  per write, {writes} writes")
    for name, samples in results.items():
        samples.sort()
        print(f"{name:<{width}} {statistics.median(samples):>10.0f} "
              f"{samples[int(len(samples) * 0.95)]:>8.0f}")
    for label, base, other in differences:
        extra = statistics.median(results[other]) - statistics.median(results[base])
        print(f"{label}: {extra:.0f} µs per write")


def _setup_table(setup: harness.Setup) -> None:
    with psycopg.connect(setup.direct_dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)")
        conn.execute("INSERT INTO accounts SELECT g, 0 FROM generate_series(1, 10000) g")


def through_gateway(writes: int) -> None:
    with contextlib.ExitStack() as stack:
        setup = stack.enter_context(target())
        _setup_table(setup)
        rules = harness.example_guardrails()
        dsns = {"direct": setup.direct_dsn()}
        for name, guardrails in (("no-count", without_rows_over(rules)), ("counted", rules)):
            port = free_port()
            stack.enter_context(_engine(setup, name, guardrails, port))
            dsns[name] = setup.gateway_dsn().replace(f"port={setup.gateway_port}",
                                                     f"port={port}")
        cases: dict[str, Case] = {}
        for where, dsn in dsns.items():
            pg = stack.enter_context(psycopg.connect(dsn, autocommit=True)).pgconn
            for protocol in ("simple", "extended"):
                for wrapped in (False, True):
                    name = f"{where} {protocol}{' in-transaction' if wrapped else ''}"
                    cases[name] = (functools.partial(update, pg, protocol),
                                   functools.partial(simple, pg), wrapped)
        results = measure(cases, writes)
    differences = []
    for protocol in ("simple", "extended"):
        for tx in ("", " in-transaction"):
            differences.append((f"added by counting, {protocol}{tx or ' autocommit'}",
                                f"no-count {protocol}{tx}", f"counted {protocol}{tx}"))
            differences.append((f"gateway without counting over direct, {protocol}"
                                f"{tx or ' autocommit'}", f"direct {protocol}{tx}",
                                f"no-count {protocol}{tx}"))
    report(results, writes, differences)


def on_postgres(writes: int) -> None:
    """The statements the gateway adds, sent by hand to PostgreSQL (simple protocol)."""
    with target() as setup:
        _setup_table(setup)
        with psycopg.connect(setup.direct_dsn(), autocommit=True) as conn:
            pg = conn.pgconn
            run = functools.partial(simple, pg)

            def sql(i: int) -> str:
                return f"UPDATE accounts SET balance = balance + 1 WHERE id = {i % 10000 + 1}"

            stat = STAT.decode()

            def probe_autocommit(i: int) -> None:  # the second reading goes in the same flight
                run(f"BEGIN; {stat}; {sql(i)}")
                run(stat)
                run("COMMIT")

            def probe_in_transaction(i: int) -> None:
                run(f"SAVEPOINT gatewatch_rows; {stat}; {sql(i)}")
                run(stat)
                run("RELEASE SAVEPOINT gatewatch_rows")

            plain = functools.partial(update, pg, "simple")
            results = measure({
                "plain": (plain, run, False), "probe-autocommit": (probe_autocommit, run, False),
                "in-transaction": (plain, run, True),
                "probe-in-transaction": (probe_in_transaction, run, True)}, writes)
    report(results, writes, [
        ("added by the probe (autocommit)", "plain", "probe-autocommit"),
        ("added by the probe (in a transaction)", "in-transaction", "probe-in-transaction")])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=3000)
    parser.add_argument("--gateway", action="store_true")
    args = parser.parse_args()
    (through_gateway if args.gateway else on_postgres)(args.writes)


if __name__ == "__main__":
    main()
