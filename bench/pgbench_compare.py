"""pgbench -S through Gatewatch, directly, through pgbouncer and a bare relay, in one run.

The bare relay (bench/bare_relay.py: uvloop, no parsing, no recording) is the floor of any
Python proxy on this machine: it shows how much of the gap to direct is the extra hop itself.

    .venv/bin/python bench/pgbench_compare.py [--seconds 10] [--scale 5] [--cpu]
        [--workers 1] [--baseline DIR]

Prints TPS, average latency and the ratio to direct for -c 1 and -c 8, -M simple and
-M prepared. pgbouncer (Debian package) is used when it is installed. ``--cpu`` adds the
engine's CPU time per transaction (utime + stime from /proc, split into the event loop's
thread, the other threads — the store's fsync and checkpoint threads — and child processes:
the store's checkpoint process).
The engines run with ``engine.workers: 1`` (``--workers``): with more, the event loops are in
the worker processes and the split means nothing. ``--baseline DIR`` runs the
same engines from another checkout too (``git archive <commit> | tar -x -C DIR``), in the same
run, so a change is measured against its parent under the same load (repeat it for more).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import ROOT, Setup, cpu_seconds, engine, free_port, target, wait_port


class Run(NamedTuple):
    tps: float
    latency_ms: float
    transactions: int
    # engine seconds: the event loop's thread, its other threads, its child processes
    cpu: tuple[float, float, float] | None = None

    def per_transaction_us(self) -> tuple[float, ...] | None:
        if self.cpu is None or not self.transactions:
            return None
        return tuple(seconds * 1e6 / self.transactions for seconds in self.cpu)


def pgbench(dsn: str, clients: int, mode: str, seconds: int, pid: int | None = None) -> Run:
    before = cpu_seconds(pid) if pid is not None else None
    out = subprocess.run(
        ["pgbench", "-S", "-n", "-M", mode, "-c", str(clients), "-j", str(clients),
         "-T", str(seconds), dsn],
        capture_output=True, text=True, check=True,
    ).stdout
    cpu = None
    if pid is not None and before is not None:
        after = cpu_seconds(pid)
        cpu = (after[0] - before[0], after[1] - before[1], after[2] - before[2])
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))  # type: ignore[union-attr]
    done = int(re.search(r"actually processed: (\d+)", out).group(1))  # type: ignore[union-attr]
    return Run(tps, lat, done, cpu)


def start_pgbouncer(setup: Setup) -> tuple[subprocess.Popen[bytes], str] | None:
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        return None
    port = free_port()
    d = setup.work / "pgbouncer"
    d.mkdir()
    (d / "users.txt").write_text(f'"bench" "{setup.target_password}"\n')
    (d / "pgbouncer.ini").write_text(
        f"[databases]\nbench = host=127.0.0.1 port={setup.cluster.port} dbname=bench\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n"
        f"auth_type = scram-sha-256\nauth_file = {d / 'users.txt'}\npool_mode = session\n"
        "max_client_conn = 200\ndefault_pool_size = 20\nlogfile = /dev/null\n"
        f"unix_socket_dir = {d}\n"
    )
    cmd = [binary, str(d / "pgbouncer.ini")]
    import os
    if os.geteuid() == 0:
        shutil.chown(d, "postgres")
        for f in d.iterdir():
            shutil.chown(f, "postgres")
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    proc = subprocess.Popen(cmd)
    wait_port(port)
    dsn = (f"host=127.0.0.1 port={port} dbname=bench user=bench "
           f"password={setup.target_password} sslmode=disable")
    return proc, dsn


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--scale", type=int, default=5)
    ap.add_argument("--clients", default="1,8")
    ap.add_argument("--modes", default="simple,prepared")
    ap.add_argument("--durability", default="normal")
    ap.add_argument("--cpu", action="store_true", help="engine CPU per transaction")
    ap.add_argument("--workers", type=int, default=1, help="engine.workers")
    ap.add_argument("--baseline", type=Path, action="append", default=[],
                    help="another checkout to run the engines from too (may be repeated)")
    args = ap.parse_args()
    load = os.getloadavg()
    with target() as setup, contextlib.ExitStack() as stack:
        subprocess.run(["pgbench", "-i", "-q", "-s", str(args.scale), setup.direct_dsn()],
                       check=True, capture_output=True)
        bouncer = start_pgbouncer(setup)
        relay_port = free_port()
        relay = subprocess.Popen([sys.executable, str(Path(__file__).with_name("bare_relay.py")),
                                  str(relay_port), str(setup.cluster.port)])
        wait_port(relay_port)
        relay_dsn = setup.direct_dsn().replace(f"port={setup.cluster.port}", f"port={relay_port}")
        results: dict[tuple[str, int, str], Run] = {}
        # name → (dsn, engine pid or None)
        paths: dict[str, tuple[str, int | None]] = {"direct": (setup.direct_dsn(), None)}
        roots = [("", ROOT)] + [(f" ({b.name})", b.resolve()) for b in args.baseline]
        for suffix, root in roots:
            for label, rules in (("gatewatch", False), ("gw+rules", True)):
                port = free_port()
                proc = stack.enter_context(engine(setup, args.durability, guardrails=rules,
                                                  port=port, root=root,
                                                  workers=args.workers))
                dsn = setup.gateway_dsn().replace(f"port={setup.gateway_port}", f"port={port}")
                paths[label + suffix] = (dsn, proc.pid if args.cpu else None)
        paths["bare relay"] = (relay_dsn, None)
        if bouncer:
            paths["pgbouncer"] = (bouncer[1], None)
        for mode in args.modes.split(","):
            for c in map(int, args.clients.split(",")):
                for name, (dsn, pid) in paths.items():
                    results[(name, c, mode)] = pgbench(dsn, c, mode, args.seconds, pid)
        relay.terminate()
        relay.wait()
        if bouncer:
            bouncer[0].terminate()
            bouncer[0].wait()
    after = os.getloadavg()
    print(f"pgbench -S, scale {args.scale}, {args.seconds} s each, recording on "
          f"(durability {args.durability}, {args.workers} worker(s)); gw+rules: the example "
          "policies.yaml guardrails; "
          f"{os.cpu_count()} CPUs, load average {load[0]:.2f} before, {after[0]:.2f} after")
    cpu_head = f" {'µs/tx loop':>10} {'thread':>6} {'child':>6}" if args.cpu else ""
    print(f"{'path':<18} {'mode':<9} {'c':>2} {'tps':>9} {'lat ms':>7} {'/direct':>8} "
          f"{'/pgbouncer':>10}{cpu_head}")
    for (path, c, mode), run in results.items():
        direct = results[("direct", c, mode)].tps
        bouncer_tps = results[("pgbouncer", c, mode)].tps if ("pgbouncer", c, mode) in results \
            else 0.0
        vs_bouncer = f"{run.tps / bouncer_tps:.2f}" if bouncer_tps else "-"
        cpu = run.per_transaction_us()
        cpu_cols = (f" {cpu[0]:>10.0f} {cpu[1]:>6.0f} {cpu[2]:>6.0f}" if cpu
                    else (" " * 25 if args.cpu else ""))
        print(f"{path:<18} {mode:<9} {c:>2} {run.tps:>9.0f} {run.latency_ms:>7.3f} "
              f"{run.tps / direct:>8.2f} {vs_bouncer:>10}{cpu_cols}")


if __name__ == "__main__":
    main()
