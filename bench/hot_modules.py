"""Which of Gatewatch's modules the engine spends its CPU in under pgbench -S (issue 18: which
modules to compile, ``store/compiled.py``).

    .venv/bin/python bench/hot_modules.py [--seconds 15] [--clients 8] [--modes simple,prepared]
        [--pure] [--top 30]

Runs one engine (``engine.workers: 1``, the example policies.yaml's guardrails and masking,
recording on) and samples it with py-spy (``.venv/bin/py-spy``, installed with the dev tools)
while pgbench runs; prints each module's share of the samples spent in its own code (self) and
below it (total). ``--pure`` runs the engine's pure-Python modules (``GATEWATCH_PURE_PYTHON``);
compiled modules are invisible to py-spy, their time shows in their Python callers.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import ROOT, engine, target

FRAME = re.compile(r"\((?P<file>[^():]+):\d+\)$")


def module_of(frame: str) -> str:
    """The frame's module name when it is Gatewatch's (relative to the checkout), else its
    file's package (``asyncio``, ``pglast``…)."""
    found = FRAME.search(frame.strip())
    if not found:
        return "?"
    path = found["file"]
    try:
        rel = Path(path).resolve().relative_to(ROOT)
        return ".".join(rel.with_suffix("").parts)
    except ValueError:
        parts = Path(path).parts
        if "site-packages" in parts:
            return "site:" + parts[parts.index("site-packages") + 1]
        return "stdlib:" + Path(path).stem


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--scale", type=int, default=5)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--modes", default="simple,prepared")
    ap.add_argument("--pure", action="store_true", help="GATEWATCH_PURE_PYTHON=1")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if args.pure:
        os.environ["GATEWATCH_PURE_PYTHON"] = "1"
    own: collections.Counter[str] = collections.Counter()
    below: collections.Counter[str] = collections.Counter()
    total = 0
    with target() as setup, tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["pgbench", "-i", "-q", "-s", str(args.scale), setup.direct_dsn()],
                       check=True, capture_output=True)
        with engine(setup, guardrails=True, masking=True, workers=1) as proc:
            dsn = setup.gateway_dsn()
            for mode in args.modes.split(","):
                out = Path(tmp) / f"{mode}.txt"
                sampler = subprocess.Popen([spy, "record", "-p", str(proc.pid), "-f", "raw",
                                            "-r", "200", "-o", str(out), "--nonblocking"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                subprocess.run(["pgbench", "-S", "-n", "-M", mode, "-c", str(args.clients),
                                "-j", str(args.clients), "-T", str(args.seconds), dsn],
                               check=True, capture_output=True)
                sampler.send_signal(signal.SIGINT)
                sampler.wait(60)
                for line in out.read_text().splitlines():
                    stack, _, count = line.rpartition(" ")
                    if not stack or not count.isdigit():
                        continue
                    n = int(count)
                    frames = [f for f in stack.split(";") if f.strip()]
                    if not frames:
                        continue
                    total += n
                    own[module_of(frames[-1])] += n
                    for module in {module_of(f) for f in frames}:
                        below[module] += n
    print(f"engine samples: {total} ({'pure Python' if args.pure else 'as built'}; "
          f"pgbench -S -c {args.clients}, {args.modes}, {args.seconds} s each)")
    print(f"{'module':<40} {'self %':>7} {'total %':>8}")
    for module, n in own.most_common(args.top):
        print(f"{module:<40} {100 * n / total:>7.1f} {100 * below[module] / total:>8.1f}")


if __name__ == "__main__":
    main()
