"""Guardrail classification cost per statement: cold (parsed and judged) and warm (cached).

    .venv/bin/python bench/classify_cost.py
    .venv/bin/python bench/classify_cost.py --shell   # hostile shell lines of ~64 kB each

Uses the example policies.yaml rules for identity alice on connection shop.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.config import load_config
from engine.guardrail import Guard
from engine.guardrail.rules import GuardrailSettings

STATEMENTS = [
    "SELECT abalance FROM pgbench_accounts WHERE aid = {n}",
    "UPDATE pgbench_accounts SET abalance = abalance + {n} WHERE aid = 42",
    "select c.id, c.email, count(o.id) from customers c left join orders o"
    " on o.customer_id = c.id where c.id > {n} group by 1, 2 order by 3 desc limit 10",
    "WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '{n} days')"
    " SELECT status, sum(amount) FROM recent GROUP BY status",
    "INSERT INTO orders (customer_id, amount, status) VALUES ({n}, 10.5, 'new') RETURNING id",
    "DELETE FROM orders WHERE id = {n}",
]


def measure(guard_factory: object, texts: list[str]) -> list[float]:
    out = []
    for text in texts:
        start = time.perf_counter()
        guard_factory.judge(text)  # type: ignore[attr-defined]
        out.append((time.perf_counter() - start) * 1e6)
    return out


HOSTILE_LINES = {
    "pipes": "a|" * 30_000 + "a", "words": "a " * 32_000, "quotes": "'x'" * 20_000,
    "here-documents": "cat" + " <<A" * 16_000 + "\n", "operands": "systemctl " + "x " * 32_000,
    "evals": "eval " * 13_000 + "rm",
}


def shell() -> None:
    """How long one huge hostile command line takes to judge or refuse (the engine reads
    lines of up to 64 kB): a line's cost must grow with its length, not its square."""
    from engine.guardrail.commands import classify_command
    from engine.guardrail.shellwords import ShellParseError
    for name, line in HOSTILE_LINES.items():
        start = time.perf_counter()
        try:
            classify_command(line)
            outcome = "judged"
        except ShellParseError:
            outcome = "refused"
        took = (time.perf_counter() - start) * 1e3
        print(f"{name:<16} {len(line):>7} bytes  {outcome:<8} {took:8.1f} ms")


def main() -> None:
    if "--shell" in sys.argv:
        shell()
        return
    os.environ.setdefault("GATEWATCH_SHOP_PG_PASSWORD", "unused")
    config = load_config(Path(__file__).resolve().parents[1] / "policies.yaml")
    settings = GuardrailSettings(cache_size=1_000_000)
    guard = Guard(config.rules, settings).for_session("shop", "alice",
                                                      frozenset({"engineering"}))
    n = 3000
    texts = [STATEMENTS[i % len(STATEMENTS)].format(n=i) for i in range(n)]
    cold = measure(guard, texts)
    warm = measure(guard, texts)
    print(f"{len(config.rules)} rules (example policies.yaml), {n} distinct statements")
    for name, values in (("cold (parse + rules)", cold), ("warm (cached)", warm)):
        q = statistics.quantiles(values, n=100)
        print(f"{name:<22} median {statistics.median(values):7.1f} µs   p99 {q[98]:7.1f} µs")


if __name__ == "__main__":
    main()
