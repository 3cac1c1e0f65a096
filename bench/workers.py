"""pgbench -S through Gatewatch with ``engine.workers`` 1 and 2, beside direct and pgbouncer, in
one run (issue 17: does a second worker use the second core?).

    .venv/bin/python bench/workers.py [--seconds 10] [--scale 5] [--clients 1,8]
        [--modes simple,prepared] [--workers 1,2] [--repeat 1] [--plain] [--baseline DIR]
        [--pure]

Each engine runs the demo's configuration: the example policies.yaml's guardrails and masking,
recording on (``--plain``: neither, recording only). Prints TPS, average latency, the ratio to
direct and to one worker, the engine's CPU time per transaction (the supervisor and every
worker: user + system from /proc) and the target's (the PostgreSQL server and its backends,
those that ended included: the gateway's catalog checks run there). pgbouncer (the Debian
package) is used when it is installed.
``--repeat N`` runs every path N times, interleaved (a load that comes and goes on a shared
machine then weighs on each path alike), and prints the median TPS. ``--baseline DIR`` runs the
same engines from another checkout too (``git archive <commit> | tar -x -C DIR``), in the same
run, so a change is measured against its parent under the same load. ``--pure`` runs every
engine a second time on its pure-Python modules (``GATEWATCH_PURE_PYTHON=1``, paths marked
``py``) beside the compiled build ``.ci/setup`` made (issue 18; ``store/compiled.py``), in the
same run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (
    POLICY,
    ROOT,
    Setup,
    children_cpu,
    example_guardrails,
    example_masking,
    free_port,
    target,
    wait_port,
)
from bench.pgbench_compare import start_pgbouncer


class Run(NamedTuple):
    tps: float
    latency_ms: float
    transactions: int
    cpu_s: float | None  # the engine's, all processes
    target_cpu_s: float | None = None  # the PostgreSQL server's, all processes

    def cpu_us_per_tx(self) -> float | None:
        if self.cpu_s is None or not self.transactions:
            return None
        return self.cpu_s * 1e6 / self.transactions

    def target_us_per_tx(self) -> float | None:
        if self.target_cpu_s is None or not self.transactions:
            return None
        return self.target_cpu_s * 1e6 / self.transactions


def tree_cpu(pid: int) -> float:
    """User + system seconds of ``pid`` and its live descendants (the workers)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + children_cpu(pid)


def server_cpu(postmaster: int) -> float:
    """User + system seconds of the PostgreSQL server: the postmaster, its live backends, and
    the backends it has reaped (its children's times)."""
    tick = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{postmaster}/stat").read_text().rpartition(")")[2].split()
    reaped = sum(int(f) for f in fields[13:15]) / tick
    return tree_cpu(postmaster) + reaped


def postmaster_pid(setup: Setup) -> int | None:
    try:
        return int((setup.cluster.data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def pgbench(dsn: str, clients: int, mode: str, seconds: int, pid: int | None,
            server: int | None = None) -> Run:
    before = tree_cpu(pid) if pid is not None else None
    server_before = server_cpu(server) if server is not None else None
    out = subprocess.run(
        ["pgbench", "-S", "-n", "-M", mode, "-c", str(clients), "-j", str(clients),
         "-T", str(seconds), dsn],
        capture_output=True, text=True, check=True,
    ).stdout
    cpu = tree_cpu(pid) - before if pid is not None and before is not None else None
    target_cpu = (server_cpu(server) - server_before
                  if server is not None and server_before is not None else None)
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))  # type: ignore[union-attr]
    done = int(re.search(r"actually processed: (\d+)", out).group(1))  # type: ignore[union-attr]
    return Run(tps, lat, done, cpu, target_cpu)


@contextlib.contextmanager
def engine(setup: Setup, workers: int, plain: bool = False, root: Path = ROOT,
           pure: bool = False) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """An engine with the demo's rules and masking (unless ``plain``) and ``workers`` workers,
    run from the checkout ``root`` (``pure``: on its pure-Python modules); its DSN."""
    port = free_port()
    private = setup.work / (f"engine-w{workers}{'' if root == ROOT else '-' + root.name}"
                            f"{'-py' if pure else ''}")
    private.mkdir(mode=0o700)
    policy = private / "policies.yaml"
    policy.write_text(POLICY.format(
        store=private / "store.db", control=private / "control.sock", durability="normal",
        port=port, pg_port=setup.cluster.port,
        guardrails="" if plain else example_guardrails(),
        masking="" if plain else example_masking(),
    ).replace("  log_level: WARNING\n", f"  log_level: WARNING\n  workers: {workers}\n"))
    env = {**os.environ, "BENCH_TOKEN": setup.token, "BENCH_PG_PASSWORD": setup.target_password,
           "GATEWATCH_PURE_PYTHON": "1" if pure else ""}
    proc = subprocess.Popen([sys.executable, "-m", "gatewatch", "engine", "-c", str(policy)],
                            env=env, cwd=root)
    try:
        wait_port(port)
        dsn = setup.gateway_dsn().replace(f"port={setup.gateway_port}", f"port={port}")
        warm_up(dsn)
        yield proc, dsn
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def warm_up(dsn: str) -> None:
    """Connections that arrive before every worker is ready wait in the listen queue: one short
    run through every worker before anything is measured."""
    subprocess.run(["pgbench", "-S", "-n", "-c", "8", "-j", "8", "-t", "20", dsn],
                   check=True, capture_output=True, timeout=120)


def versus_pure(results: dict[tuple[str, int, str], Run], path: str, c: int, mode: str) -> str:
    """A compiled engine's TPS and CPU per transaction against the same engine's pure-Python
    run (``--pure``)."""
    name, _, suffix = path.partition(" (")
    pure = results.get((f"{name} py{' (' + suffix if suffix else ''}", c, mode))
    run = results[(path, c, mode)]
    cpu, pure_cpu = run.cpu_us_per_tx(), pure.cpu_us_per_tx() if pure else None
    if pure is None or cpu is None or pure_cpu is None or not pure.tps or not pure_cpu:
        return ""
    return f" {run.tps / pure.tps:>7.2f} {cpu / pure_cpu:>8.2f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--scale", type=int, default=5)
    ap.add_argument("--clients", default="1,8")
    ap.add_argument("--modes", default="simple,prepared")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--plain", action="store_true", help="no rules or masking")
    ap.add_argument("--baseline", type=Path, action="append", default=[],
                    help="another checkout to run the engines from too (may be repeated)")
    ap.add_argument("--pure", action="store_true",
                    help="also run each engine on its pure-Python modules")
    args = ap.parse_args()
    load = os.getloadavg()
    with target() as setup, contextlib.ExitStack() as stack:
        subprocess.run(["pgbench", "-i", "-q", "-s", str(args.scale), setup.direct_dsn()],
                       check=True, capture_output=True)
        paths: dict[str, tuple[str, int | None]] = {"direct": (setup.direct_dsn(), None)}
        bouncer = start_pgbouncer(setup)
        if bouncer:
            stack.callback(bouncer[0].wait)
            stack.callback(bouncer[0].terminate)
            paths["pgbouncer"] = (bouncer[1], None)
        for suffix, root in [("", ROOT)] + [(f" ({b.name})", b.resolve())
                                            for b in args.baseline]:
            for n in map(int, args.workers.split(",")):
                for pure in (False, True) if args.pure else (False,):
                    proc, dsn = stack.enter_context(engine(setup, n, args.plain, root, pure))
                    paths[f"gatewatch w={n}{' py' if pure else ''}{suffix}"] = (dsn, proc.pid)
        server = postmaster_pid(setup)
        runs: dict[tuple[str, int, str], list[Run]] = {}
        for _ in range(args.repeat):
            for mode in args.modes.split(","):
                for c in map(int, args.clients.split(",")):
                    for name, (dsn, pid) in paths.items():
                        runs.setdefault((name, c, mode), []).append(
                            pgbench(dsn, c, mode, args.seconds, pid, server))
        results = {key: sorted(found, key=lambda r: r.tps)[len(found) // 2]
                   for key, found in runs.items()}
    after = os.getloadavg()
    first = f"gatewatch w={args.workers.split(',')[0]}"
    what = "recording only" if args.plain else "the demo's rules and masking, recording on"
    print(f"pgbench -S, scale {args.scale}, {args.seconds} s each, median of {args.repeat}, "
          f"through {what}; {os.cpu_count()} CPUs, load average {load[0]:.2f} before, "
          f"{after[0]:.2f} after")
    width = max(map(len, (path for path, _, _ in results)))
    print(f"{'path':<{width}} {'mode':<9} {'c':>2} {'tps':>9} {'lat ms':>7} {'/direct':>8} "
          f"{'/' + first:>14} {'engine µs/tx':>13} {'target µs/tx':>13}"
          f"{' /py tps  /py cpu' if args.pure else ''}")
    for (path, c, mode), run in results.items():
        direct = results[("direct", c, mode)].tps
        one = results.get((first, c, mode))
        vs_one = f"{run.tps / one.tps:.2f}" if one and path.startswith("gatewatch") else "-"
        cpu, target_cpu = run.cpu_us_per_tx(), run.target_us_per_tx()
        print(f"{path:<{width}} {mode:<9} {c:>2} {run.tps:>9.0f} {run.latency_ms:>7.3f} "
              f"{run.tps / direct:>8.2f} {vs_one:>14} "
              f"{f'{cpu:.0f}' if cpu is not None else '-':>13} "
              f"{f'{target_cpu:.0f}' if target_cpu is not None else '-':>13}"
              f"{versus_pure(results, path, c, mode) if args.pure else ''}")


if __name__ == "__main__":
    main()
