"""Seeking in a long SSH recording: index build time, random-seek latency, memory.

Generates a one-hour SSH session with about 100 MB of terminal output — a shell with typed
commands and coloured output, build logs and busy `tail -f`s in 256 KiB chunks every 50 ms
(the tape's limits), full-screen redraws (a `top`-like monitor, an editor with scroll
regions), window resizes — into a temporary store through the store's own write path (ops,
``SqliteStore.apply``, checkpoints, as the engine's recorder does), in a child process so that
the peak RSS printed is the replay's alone. Then, reading it the way the TUI would (a
read-only store): opens a ``TerminalTimeline`` (chunk index), builds every keyframe, and times
random seeks, short forward steps (playing), and for comparison a few seeks by replaying
from the start, which is what seeking cost without keyframes.

    .venv/bin/python bench/replay_seek.py [--mb 100] [--seconds 3600] [--seeks 500]
        [--baseline 3] [--store PATH (keep/reuse it)] [--no-tracemalloc]
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recordings.emulator import Emulator
from recordings.replay import TerminalTimeline
from store import Op, open_store
from store import ops as O

SID = "bench-replay"
T0 = 1_790_000_000.0
CHUNK = 256 * 1024
FLUSH = 0.05

# --- a realistic session ------------------------------------------------------------------

PROMPT = "\x1b[01;32malice@web-3\x1b[00m:\x1b[01;34m~/src/shop\x1b[00m$ "
COMMANDS = ["ls -la --color", "git log --oneline -20", "grep -rn TODO src/", "ps aux",
            "df -h", "cat /etc/hosts", "systemctl status nginx", "docker ps",
            "journalctl -u app --since today | tail -50", "kubectl get pods -A"]
WORDS = ("request handled user order payment cache miss hit retry timeout connection pool "
         "worker started finished queued error warning info debug trace").split()
COLOURS = ["31", "32", "33", "34", "35", "36", "1;31", "1;32", "90", "0"]


class Writer:
    """Chunks as the tape cuts them, written as the recorder writes them."""

    def __init__(self, path: Path) -> None:
        self.store = open_store(path)
        self.seq = self.statements = 0
        self.batch: list[Op] = []
        self.pending = 0
        self.bytes = 0
        self.store.apply([Op(O.SESSION_OPEN, SID, 0, {
            "protocol": "ssh", "connection": "web", "identity": "alice",
            "identity_kind": "person", "client_addr": "10.0.0.7:52000",
            "application_name": None, "database": None, "started_at": O.utc(T0),
            "status": "open", "target": "web-3"})])

    def out(self, t: float, data: bytes, stream: str = "o") -> None:
        self.seq += 1
        self.batch.append(O.output_op(SID, self.seq, t, 1, stream, data))
        self.pending += len(data)
        self.bytes += len(data) if stream != "r" else 0
        if len(self.batch) >= 64 or self.pending >= 8 * CHUNK:
            self.flush()

    def stream(self, t: float, data: bytes, rate: float) -> float:
        """``data`` printed at ``rate`` bytes/s: a chunk per 50 ms, at most 256 KiB each."""
        step = max(1, min(CHUNK, int(rate * FLUSH)))
        for at in range(0, len(data), step):
            self.out(t, data[at:at + step])
            t += FLUSH
        return t

    def command(self, t: float, text: str, verdict: str = "allow") -> None:
        self.statements += 1
        n = self.statements
        self.batch += [
            Op(O.STATEMENT_START, SID, n, {
                "protocol": "ssh", "text": text, "params": None, "started_at": O.utc(T0 + t),
                "status": "running", "verdict": verdict, "rule": None, "approval_id": None}),
            Op(O.STATEMENT_END, SID, n, {
                "finished_at": O.utc(T0 + t + 0.3), "duration_ms": 300.0,
                "status": "ok" if verdict == "allow" else "blocked", "command": None,
                "rows": None, "sqlstate": None, "error": None, "exit_status": 0,
                "masked": None})]

    def flush(self) -> None:
        if self.batch:
            self.store.apply(self.batch)
            self.batch = []
        if self.pending >= 32 * 1024 * 1024:
            self.store.checkpoint()
            self.pending = 0

    def close(self, t: float) -> None:
        self.batch.append(Op(O.SESSION_CLOSE, SID, 0, {
            "ended_at": O.utc(T0 + t), "status": "closed", "end_reason": "client quit",
            "masked": None}))
        self.flush()
        self.store.close()


def log_lines(rnd: random.Random, n: int, width: int) -> bytes:
    lines = []
    for k in range(n):
        colour = rnd.choice(COLOURS)
        words = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(4, width // 7)))
        lines.append(f"\x1b[90m2026-11-27 03:{k % 60:02d}:{k % 57:02d}\x1b[0m "
                     f"\x1b[{colour}m{rnd.choice(['INFO', 'WARN', 'ERROR'])}\x1b[0m {words}")
    return ("\r\n".join(lines) + "\r\n").encode()


def build_log(rnd: random.Random, n: int) -> bytes:
    return "".join(
        f"[{100 * k // n:3d}%] \x1b[32mBuilding CXX object src/{rnd.choice(WORDS)}/"
        f"{rnd.choice(WORDS)}_{k}.cpp.o\x1b[0m\r\n" + ("\x1b[1;33mwarning:\x1b[0m unused "
                                                    "variable 'x' [-Wunused]\r\n"
                                                    if k % 17 == 0 else "")
        for k in range(n)).encode()


def monitor_frame(rnd: random.Random, cols: int, rows: int, tick: int) -> bytes:
    """A full redraw, as top does: home, every row positioned, coloured fields, erase."""
    out = [f"\x1b[H\x1b[1mtop - 03:{tick % 60:02d} up 12 days, load average: "
           f"{rnd.random() * 4:.2f}\x1b[0m\x1b[K"]
    out.append(f"\x1b[2;1H\x1b[7m{'  PID USER      %CPU %MEM COMMAND':<{cols}}\x1b[0m")
    for y in range(3, rows + 1):
        cpu = rnd.random() * 100
        colour = "1;31" if cpu > 80 else "0"
        out.append(f"\x1b[{y};1H\x1b[{colour}m{rnd.randint(1, 99999):5d} "
                   f"{rnd.choice(['root', 'www', 'pg', 'alice']):<9} {cpu:5.1f} "
                   f"{rnd.random() * 20:4.1f} {rnd.choice(WORDS)}\x1b[0m\x1b[K")
    return "".join(out).encode()


def editor(rnd: random.Random, w: Writer, t: float, cols: int, rows: int,
           until: float) -> float:
    """An editor: alternate screen, a scroll region, inserted/deleted lines, a status line."""
    w.out(t, f"\x1b[?1049h\x1b[H\x1b[2J\x1b[1;{rows - 1}r".encode())
    for _ in range(rnd.randint(40, 150)):
        t += rnd.uniform(0.1, 1.5)
        if t > until:
            break
        op = rnd.random()
        if op < 0.3:  # scroll down a line
            w.out(t, f"\x1b[{rows - 1};1H\n{rnd.choice(WORDS)} = {rnd.random()}\x1b[K".encode())
        elif op < 0.5:  # insert a line
            w.out(t, f"\x1b[{rnd.randint(1, rows - 2)};1H\x1b[L    "
                  f"{rnd.choice(WORDS)}()".encode())
        elif op < 0.6:
            w.out(t, f"\x1b[{rnd.randint(1, rows - 2)};1H\x1b[M".encode())
        else:  # typing
            w.out(t, rnd.choice(WORDS).encode())
        status = f" main.py  {rnd.randint(1, 900)},{rnd.randint(1, 80)}"
        w.out(t + 0.01, f"\x1b7\x1b[{rows};1H\x1b[7m{status:<{cols}}\x1b[0m\x1b8".encode())
    w.out(t + 0.5, b"\x1b[r\x1b[?1049l")
    return t + 0.5


def session(rnd: random.Random, w: Writer, seconds: float, megabytes: float) -> float:
    t, target = 0.5, megabytes * 1024 * 1024
    sizes = [(120, 40), (80, 24), (200, 50), (160, 48)]
    cols, rows = sizes[0]
    w.out(0.0, f"{cols}x{rows}".encode(), "r")
    next_resize = 600.0
    while t < seconds - 5:
        left = seconds - t
        behind = (target - w.bytes) / target - left / seconds  # >0: more output needed
        if t >= next_resize:
            cols, rows = rnd.choice(sizes)
            w.out(t, f"{cols}x{rows}".encode(), "r")
            next_resize += rnd.uniform(300, 900)
        pick = rnd.random()
        if behind > 0.01 and pick < 0.5:  # a burst: a build, a busy log, a big cat
            size = rnd.uniform(2, 8) * 1024 * 1024
            data = (build_log(rnd, int(size / 90)) if rnd.random() < 0.5
                    else log_lines(rnd, int(size / 110), cols))
            w.command(t, rnd.choice(["make -j8", "tail -f /var/log/app.log", "cat big.log"]))
            t = w.stream(t + 0.2, data, rnd.uniform(3, 20) * 1024 * 1024)
        elif pick < 0.08:
            w.command(t, "top")
            w.out(t, b"\x1b[?1049h\x1b[?25l")
            for tick in range(min(rnd.randint(30, 120), int(seconds - t - 5))):
                t += 1.0
                w.out(t, monitor_frame(rnd, cols, rows, tick))
            t += 0.5
            w.out(t, b"\x1b[?25h\x1b[?1049l")
        elif pick < 0.12:
            w.command(t, "vim main.py")
            t = editor(rnd, w, t, cols, rows, seconds - 5)
        else:  # a command typed at the prompt, its output, a pause
            w.out(t, PROMPT.encode())
            text = rnd.choice(COMMANDS)
            for char in text:  # each keystroke echoed in its own chunk
                t += rnd.uniform(0.06, 0.25)
                w.out(t, char.encode())
            t += 0.2
            w.command(t, text, "block" if rnd.random() < 0.03 else "allow")
            w.out(t, b"\r\n" + log_lines(rnd, rnd.randint(2, 60), cols))
            t += rnd.uniform(1, 25)
    t = min(max(t, seconds - 1), seconds)
    w.close(t)
    return t


def generate(path: Path, seconds: float, megabytes: float) -> None:
    w = Writer(path)
    end = session(random.Random(7), w, seconds, megabytes)
    print(f"generated: {w.bytes / 1e6:.1f} MB of output in {w.seq} chunks, "
          f"{w.statements} commands, {end / 60:.1f} min", flush=True)


# --- measuring ----------------------------------------------------------------------------

def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def ms(x: float) -> str:
    return f"{x * 1000:.1f} ms"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def replay_from_start(timeline: TerminalTimeline, t: float) -> None:
    em = Emulator(80, 24)
    for _, payload in timeline.index.chunks(0, timeline.index.count_at(t)):
        if isinstance(payload, tuple):
            em.resize(*payload)
        else:
            em.feed(payload)


def times(rnd: random.Random, n: int, duration: float) -> Iterator[float]:
    return (rnd.uniform(0, duration) for _ in range(n))


def measure(path: Path, seeks: int, baseline: int, trace: bool) -> None:
    store = open_store(path, readonly=True)
    start = time.perf_counter()
    timeline = TerminalTimeline(store, SID)
    opened = time.perf_counter() - start
    index = timeline.index
    print(f"session: {timeline.duration / 60:.1f} min, {index.total / 1e6:.1f} MB shown in "
          f"{len(index)} chunks; {len(timeline.markers)} markers")
    print(f"open (chunk index, markers): {ms(opened)}")
    start = time.perf_counter()
    cpu = time.process_time()
    timeline.build()
    built, built_cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"index build (keyframes): {built:.1f} s wall, {built_cpu:.1f} s CPU "
          f"({index.total / 1e6 / built:.2f} MB/s), {len(timeline.keyframes)} keyframes, "
          f"{timeline.keyframes.size() / 1e6:.1f} MB packed")
    print(f"peak RSS after build: {rss_mb():.0f} MB")

    rnd = random.Random(42)
    lat = []
    for t in times(rnd, seeks, timeline.duration):
        start = time.perf_counter()
        timeline.seek(t)
        lat.append(time.perf_counter() - start)
    print(f"random seeks ({seeks}): p50 {ms(pct(lat, 50))}, p99 {ms(pct(lat, 99))}, "
          f"max {ms(max(lat))}, mean {ms(statistics.fmean(lat))}")

    steps = []
    for t0 in times(rnd, 10, timeline.duration - 30):
        timeline.seek(t0)
        for k in range(1, 31):  # 3 s at 10 frames a second
            start = time.perf_counter()
            timeline.seek(t0 + k * 0.1)
            steps.append(time.perf_counter() - start)
    print(f"play steps of 0.1 s ({len(steps)}): p50 {ms(pct(steps, 50))}, "
          f"p99 {ms(pct(steps, 99))}, max {ms(max(steps))}")

    for text, backwards in (("load average", False), ("Wunused", True),
                            ("text that is nowhere", False)):
        start = time.perf_counter()
        found = timeline.find(text, timeline.duration if backwards else 0.0, backwards)
        took = time.perf_counter() - start
        where = "not found" if found is None else f"found at {found / 60:.1f} min"
        print(f"search {text!r} {'backwards from the end' if backwards else 'from the start'}:"
              f" {where} in {took:.2f} s")

    for t in times(rnd, baseline, timeline.duration):
        start = time.perf_counter()
        replay_from_start(timeline, t)
        took = time.perf_counter() - start
        print(f"baseline: seek to {t / 60:.1f} min by replaying from the start: {took:.1f} s")
    print(f"peak RSS: {rss_mb():.0f} MB")

    if trace:
        del timeline
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        again = TerminalTimeline(store, SID)
        index_only = tracemalloc.get_traced_memory()[0] - before
        again.build()
        after, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"tracemalloc: timeline {(after - before) / 1e6:.1f} MB after build "
              f"(chunk index and markers {index_only / 1e6:.1f} MB, keyframes "
              f"{(after - before - index_only) / 1e6:.1f} MB: "
              f"{(after - before - index_only) / len(again.keyframes) / 1024:.1f} KiB each); "
              f"peak while building {(peak - before) / 1e6:.1f} MB")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=3600.0)
    parser.add_argument("--seeks", type=int, default=500)
    parser.add_argument("--baseline", type=int, default=3)
    parser.add_argument("--store", type=Path, help="keep the generated store here (reused)")
    parser.add_argument("--no-tracemalloc", action="store_true")
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(args.generate, args.seconds, args.mb)
        return
    with tempfile.TemporaryDirectory(prefix="gatewatch-replay-") as tmp:
        path = args.store or Path(tmp) / "gatewatch.db"
        if not path.exists():
            start = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--generate", str(path), "--mb",
                            str(args.mb), "--seconds", str(args.seconds)], check=True)
            print(f"generation and store writes: {time.perf_counter() - start:.1f} s")
        measure(path, args.seeks, args.baseline, not args.no_tracemalloc)


if __name__ == "__main__":
    main()
