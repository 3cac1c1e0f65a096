"""pgbench -S through Gatewatch, directly, through pgbouncer and a bare relay, in one run.

The bare relay (bench/bare_relay.py: uvloop, no parsing, no recording) is the floor of any
Python proxy on this machine: it shows how much of the gap to direct is the extra hop itself.

    .venv/bin/python bench/pgbench_compare.py [--seconds 10] [--scale 5]

Prints TPS, average latency and the ratio to direct for -c 1 and -c 8, -M simple and
-M prepared. pgbouncer (Debian package) is used when it is installed.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import Setup, engine, free_port, target, wait_port


def pgbench(dsn: str, clients: int, mode: str, seconds: int) -> tuple[float, float]:
    out = subprocess.run(
        ["pgbench", "-S", "-n", "-M", mode, "-c", str(clients), "-j", str(clients),
         "-T", str(seconds), dsn],
        capture_output=True, text=True, check=True,
    ).stdout
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))  # type: ignore[union-attr]
    return tps, lat


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
    args = ap.parse_args()
    with target() as setup:
        subprocess.run(["pgbench", "-i", "-q", "-s", str(args.scale), setup.direct_dsn()],
                       check=True, capture_output=True)
        bouncer = start_pgbouncer(setup)
        relay_port = free_port()
        relay = subprocess.Popen([sys.executable, str(Path(__file__).with_name("bare_relay.py")),
                                  str(relay_port), str(setup.cluster.port)])
        wait_port(relay_port)
        relay_dsn = setup.direct_dsn().replace(f"port={setup.cluster.port}", f"port={relay_port}")
        results: dict[tuple[str, int, str], tuple[float, float]] = {}
        rules_port = free_port()
        rules_dsn = setup.gateway_dsn().replace(f"port={setup.gateway_port}", f"port={rules_port}")
        with engine(setup, args.durability), engine(setup, args.durability, guardrails=True,
                                                    port=rules_port):
            for mode in args.modes.split(","):
                for c in map(int, args.clients.split(",")):
                    paths = [("direct", setup.direct_dsn()), ("gatewatch", setup.gateway_dsn()),
                             ("gw+rules", rules_dsn), ("bare relay", relay_dsn)]
                    if bouncer:
                        paths.append(("pgbouncer", bouncer[1]))
                    for name, dsn in paths:
                        results[(name, c, mode)] = pgbench(dsn, c, mode, args.seconds)
        relay.terminate()
        relay.wait()
        if bouncer:
            bouncer[0].terminate()
            bouncer[0].wait()
    print(f"pgbench -S, scale {args.scale}, {args.seconds} s each, recording on "
          f"(durability {args.durability}); gw+rules: the example policies.yaml guardrails")
    print(f"{'path':<11} {'mode':<9} {'c':>2} {'tps':>9} {'lat ms':>7} {'/direct':>8} "
          f"{'/pgbouncer':>10}")
    for (path, c, mode), (tps, lat) in sorted(results.items(), key=lambda kv: (kv[0][2],
                                                                             kv[0][1])):
        direct = results[("direct", c, mode)][0]
        bouncer_tps = results.get(("pgbouncer", c, mode), (0.0, 0.0))[0]
        vs_bouncer = f"{tps / bouncer_tps:.2f}" if bouncer_tps else "-"
        print(f"{path:<11} {mode:<9} {c:>2} {tps:>9.0f} {lat:>7.3f} {tps / direct:>8.2f} "
              f"{vs_bouncer:>10}")


if __name__ == "__main__":
    main()
