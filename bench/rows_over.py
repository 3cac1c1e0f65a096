"""What judging a write by its effect (``rows_over: N``, issue 12) would cost per write.

    .venv/bin/python bench/rows_over.py [--writes 3000]

The relay does not count rows yet (see the issue): this measures the design it would follow,
on a throw-away PostgreSQL directly, with the messages the gateway would inject, so that the
cost is known before the state machine is written. One UPDATE of one row by its key, sent as a
simple Query (libpq's PQexec):

- ``plain``: the UPDATE alone (autocommit), what a guarded UPDATE costs today on the target;
- ``probe-autocommit``: ``BEGIN`` and the UPDATE sent together, the count read from its
  CommandComplete, then ``COMMIT`` (one more round trip, and a transaction opened by hand);
- ``probe-in-transaction``: inside the client's transaction, ``SAVEPOINT`` with the UPDATE,
  then ``RELEASE SAVEPOINT`` (against the same UPDATE inside a transaction without them).

The gateway's own cost (framing four more messages, holding the answers until the decision)
comes on top; it is small next to a round trip, and is for the relay's benchmark to show once
it exists.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import psycopg

from bench.harness import target


def _offset(one: Callable[[int], None], base: int, i: int) -> None:
    one(base + i)


def timed(writes: int, one: Callable[[int], None]) -> list[float]:
    out = []
    for i in range(writes):
        started = time.perf_counter()
        one(i)
        out.append((time.perf_counter() - started) * 1e6)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=3000)
    args = parser.parse_args()
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
