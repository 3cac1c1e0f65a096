"""What following lineage costs ordinary statements: small queries (one row by key, from a table
with masked columns, from one without, through a view, a small INSERT) straight to PostgreSQL,
through Gatewatch without masking, and through Gatewatch with the example masking rules
(policies.yaml: column rules, so every statement's lineage is followed and, since issue 14,
its catalog names checked against the target once per statement). With ``--before REV`` the
same masking engine also runs from another revision's files (``git archive``), side by side.

    .venv/bin/python bench/masking_lineage_cost.py [--repeat 2000] [--before REV]

Figures (issue 14, --repeat 1000 --before d8b99c7^, a 2-core machine at load average 5 to 9
from other work, so every process hop waits for a core: compare the columns of one run, not
runs). Added per statement over the unmasked gateway, two runs:

    statement        masking (per-statement check)   masking before (TTL cache)
    unmasked table        1.6 / 4.1 ms                    0.5 / 0.2 ms
    masked table          6.9 / 3.5 ms                    0.5 / -0.2 ms
    view                  6.5 / 1.9 ms                   -0.3 / 0.2 ms
    insert                2.1 / 3.7 ms                   -0.6 / -0.2 ms
    no table              1.0 / 0.7 ms                    0.1 / 0.1 ms   (no check: noise)

The check is one query on the catalog's own connection (a prepared statement: ~0.15 ms of the
server's time), so most of the added time is the extra round trip through a third process on a
loaded machine; statements that name no relation pay nothing. Concurrent sessions share one
check (``TableCatalog.resolve_names``).
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import ROOT, engine, free_port, target

SETUP = """
CREATE TABLE customers (
    id integer PRIMARY KEY, full_name text, email text, phone text, card_number text,
    national_id text);
INSERT INTO customers
SELECT i, 'Person ' || i, 'person' || i || '@example.com', '+1-555-' || (1000 + i),
       '4111111111111111', '9' || lpad((i % 100)::text, 2, '0') || '-01-' || (1000 + i)
FROM generate_series(1, 1000) AS i;
CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer, amount numeric(10, 2),
                     status text);
INSERT INTO orders SELECT i, 1 + i % 1000, i * 1.25, 'paid' FROM generate_series(1, 5000) i;
CREATE VIEW order_totals AS
SELECT o.id, o.amount, c.full_name FROM orders o JOIN customers c ON c.id = o.customer_id;
CREATE TABLE events (id serial PRIMARY KEY, what text);
"""
STATEMENTS = {
    "unmasked table": "SELECT id, customer_id, amount, status FROM orders WHERE id = {n}",
    "masked table": "SELECT * FROM customers WHERE id = {m}",
    "view": "SELECT * FROM order_totals WHERE id = {n}",
    "insert": "INSERT INTO events (what) VALUES ('order {n}')",
    "no table": "SELECT {n} + 1",
}


def run(dsn: str, repeat: int, sql: str) -> float:
    """Statements per second, one after the other on one connection."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for n in range(20):  # warm up (catalog lookups, caches)
            conn.execute(sql.format(n=n + 1, m=n % 1000 + 1)).fetchall() if sql.startswith(
                "SELECT") else conn.execute(sql.format(n=n + 1, m=n % 1000 + 1))
        start = time.perf_counter()
        for n in range(repeat):
            cur = conn.execute(sql.format(n=n % 5000 + 1, m=n % 1000 + 1))
            if cur.description is not None:
                cur.fetchall()
        return repeat / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--before", help="a git revision to run the masking engine from too")
    args = parser.parse_args()
    paths = ["direct", "gatewatch", "masking"]
    with contextlib.ExitStack() as stack:
        before_root: Path | None = None
        if args.before:
            before_root = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "before"
            before_root.mkdir()
            archive = subprocess.run(["git", "archive", args.before], cwd=ROOT, check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(before_root)], input=archive, check=True)
            paths.append(f"masking ({args.before})")
        setup = stack.enter_context(target())
        with psycopg.connect(setup.direct_dsn(), autocommit=True) as conn:
            conn.execute(SETUP)
        ports = {path: free_port() for path in paths[1:]}
        stack.enter_context(engine(setup, port=ports["gatewatch"]))
        stack.enter_context(engine(setup, masking=True, port=ports["masking"]))
        if before_root is not None:
            stack.enter_context(engine(setup, masking=True, port=ports[paths[3]],
                                       root=before_root))
        dsns = {"direct": setup.direct_dsn()}
        for path, port in ports.items():
            dsns[path] = setup.gateway_dsn().replace(f"port={setup.gateway_port}",
                                                      f"port={port}")
        for path in paths[2:]:
            with psycopg.connect(dsns[path]) as conn:  # the example rules really apply
                row = conn.execute("SELECT email FROM customers WHERE id = 1").fetchone()
                assert row is not None and "@example.com" not in str(row), row
        results: dict[tuple[str, str], list[float]] = {}
        for _ in range(3):  # alternate, best of three
            for kind, sql in STATEMENTS.items():
                for path in paths:
                    results.setdefault((kind, path), []).append(
                        run(dsns[path], args.repeat, sql))
    best = {k: max(v) for k, v in results.items()}
    print(f"{args.repeat} statements one after the other, best of 3 (statements/s)")
    print(f"{'statement':<16}" + "".join(f"{p:>22}" for p in paths))
    for kind in STATEMENTS:
        print(f"{kind:<16}" + "".join(f"{best[(kind, p)]:>22.0f}" for p in paths))
    print("per statement, masking over the unmasked gateway (us):")
    for kind in STATEMENTS:
        gateway = 1e6 / best[(kind, "gatewatch")]
        print(f"{kind:<16}" + "".join(f"{1e6 / best[(kind, p)] - gateway:>22.0f}"
                                      for p in paths[2:]))


if __name__ == "__main__":
    main()
