"""SSH straight to OpenSSH's sshd and through Gatewatch, side by side, in one run.

    .venv/bin/python bench/ssh_compare.py [--size 300M] [--repeat 3] [--ciphers default,...]
                                          [--keystrokes 500] [--sessions 50]

1. Bulk throughput: ``ssh HOST 'head -c SIZE /dev/zero'`` into /dev/null with OpenSSH's client
   (``-o Compression=no``; to the gateway as alice, her token typed through SSH_ASKPASS), direct
   and gateway runs alternating; best and median, as measured and net of session setup. Once with
   ssh's own cipher choice (chacha20-poly1305) and once with AES-GCM, which asyncssh does in one
   OpenSSL call per packet. The gateway records every byte it relays into its SQLite store: that
   is part of the cost, and the store's size is printed.
2. Keystroke echo latency: one printable byte sent to ``cat`` on a PTY until the terminal's echo
   comes back, direct and gateway alternating on open shells; p50, p99 and what is added. Through
   the gateway twice: lenient (``ssh.interactive: lenient``: the target's tty echoes the key,
   and the echo goes through output masking: the keys make one word that grows to hundreds of
   characters, drawn early and masked as it stands at every key, the terminal masker's worst
   case) and strict (the gateway's own line editor echoes it; the key reaches cat with its
   line's Enter).
3. Memory per idle interactive session (PTY shell) through the gateway: the engine runs in a
   thread of this process, so its cost is this process's VmRSS growth; sshd's own cost is the
   PSS (and RSS) of its per-connection processes, measured on the gateway's upstream sessions.

The asyncssh clients of 2 and 3 run in a child process (this file with ``--client``): here they
would share the GIL with the engine (2) and add their own memory to the engine's (3). The memory
figure is taken first, before a 300 MB run has grown and fragmented the heap that new sessions
would otherwise reuse.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncssh
import cryptography

from bench.harness import rss_kib
from tests.sshd import SshdTarget, start_sshd
from tests.sshgw import SshGateway, start_ssh_gateway, stop_ssh_gateway

TOKEN_ENV = "GATEWATCH_BENCH_TOKEN"
WARMUP_KEYS = 20
# Keys are typed this far apart, not back to back: a person's keystrokes find both paths idle.
KEY_GAP = 0.005


# --- the asyncssh client (runs in a child process) ----------------------------------------

async def open_shell(t: dict[str, Any]) -> tuple[asyncssh.SSHClientConnection,
                                                 asyncssh.SSHClientProcess[bytes]]:
    """An interactive shell on a PTY, its prompt read."""
    conn = await asyncssh.connect(
        t["host"], t["port"], username=t["user"], known_hosts=t["known_hosts"],
        password=os.environ[TOKEN_ENV] if t["token"] else None,
        client_keys=[t["key"]] if t["key"] else None,
        preferred_auth="password" if t["token"] else "publickey",
        agent_path=None, config=None)
    proc = await conn.create_process(term_type="xterm", term_size=(80, 24), encoding=None)
    await quiet(proc)
    return conn, proc


async def quiet(proc: asyncssh.SSHClientProcess[bytes], silence: float = 0.3,
                first: float = 75.0) -> bytes:
    """Read output until some came and then none for ``silence`` seconds (a prompt).

    The first output may be long in coming: the login shell runs the user's rc files, and on
    these machines root's ~/.bashrc runs ``pyenv init``, which waits up to 60 s for a lock that
    a shell killed halfway through it left behind.
    """
    got = b""
    deadline = time.monotonic() + first + 15
    while time.monotonic() < deadline:
        try:
            data = await asyncio.wait_for(proc.stdout.read(65536), silence if got else first)
        except TimeoutError:
            if got:
                return got
            raise RuntimeError(f"the shell printed no prompt within {first:.0f} s: is its "
                               "rc file stuck?") from None
        if not data:
            raise RuntimeError(f"the shell ended; it printed {got[-200:]!r}")
        got += data
    raise RuntimeError(f"the shell never fell silent; it printed {got[-200:]!r}")


async def keystrokes(targets: dict[str, dict[str, Any]], count: int) -> dict[str, list[float]]:
    shells = {name: await open_shell(t) for name, t in targets.items()}
    for _, proc in shells.values():
        proc.stdin.write(b"exec cat\r")  # the tty echoes what is typed; cat waits for Enter
        # The gateway holds the Enter while it judges the line; a marker typed after it comes
        # back once cat reads the terminal, whatever the shell printed in between.
        proc.stdin.write(b"=")
        await asyncio.wait_for(proc.stdout.readuntil(b"="), 15)
    names = list(shells)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(WARMUP_KEYS + count):
        key = bytes([ord("a") + i % 26])
        for name in names[i % len(names):] + names[:i % len(names)]:  # who goes first turns
            proc = shells[name][1]
            start = time.perf_counter()
            proc.stdin.write(key)
            echo = await asyncio.wait_for(proc.stdout.readexactly(1), 10)
            elapsed = time.perf_counter() - start
            if name == "strict" and echo in b"\r\n":  # the editor wraps at the margin
                echo = await asyncio.wait_for(proc.stdout.readexactly(1), 10)
                echo = await asyncio.wait_for(proc.stdout.readexactly(1), 10) \
                    if echo in b"\r\n" else echo
            if echo != key:
                raise RuntimeError(f"{name}: typed {key!r}, the terminal echoed {echo!r}")
            if i >= WARMUP_KEYS:
                times[name].append(elapsed)
            await asyncio.sleep(KEY_GAP)
    for conn, _ in shells.values():
        conn.close()
        await conn.wait_closed()
    return times


async def idle(target: dict[str, Any], count: int) -> None:
    """Open ``count`` PTY shells, say "ready", keep them open until stdin closes."""
    gate = asyncio.Semaphore(8)

    async def one() -> asyncssh.SSHClientConnection:
        async with gate:
            return (await open_shell(target))[0]

    conns = await asyncio.gather(*(one() for _ in range(count)))
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for conn in conns:
        conn.close()
    await asyncio.gather(*(conn.wait_closed() for conn in conns))


def client_main(spec: dict[str, Any]) -> None:
    if spec["mode"] == "keystrokes":
        print(json.dumps(asyncio.run(keystrokes(spec["targets"], spec["count"]))), flush=True)
    else:
        asyncio.run(idle(spec["target"], spec["count"]))


# --- the benchmark ----------------------------------------------------------------------

class Clients:
    """Child processes running the asyncssh client; all of them end with the benchmark."""

    def __init__(self, gw: SshGateway) -> None:
        self.gw = gw
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, spec: dict[str, Any]) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--client", json.dumps(spec)], text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env={**os.environ, TOKEN_ENV: self.gw.tokens["alice"]})
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def direct_target(sshd: SshdTarget) -> dict[str, Any]:
    return {"host": sshd.host, "port": sshd.port, "user": sshd.user,
            "known_hosts": str(sshd.known_hosts), "key": str(sshd.client_key), "token": False}


def gateway_target(gw: SshGateway, connection: str = "web") -> dict[str, Any]:
    known = gw.work / f"known_hosts_bench_{connection}"
    known.write_text(gw.host_key_line(connection) + "\n")
    return {"host": "127.0.0.1", "port": gw.port(connection), "user": "alice",
            "known_hosts": str(known), "key": None, "token": True}


def parse_size(text: str) -> int:
    """Bytes in a size as ``head -c`` reads it: K, M, G are powers of 1024, KB, MB, GB of 1000."""
    m = re.fullmatch(r"(\d+)([KMGT]?)(B?)", text.upper())
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 300M")
    power = "KMGT".find(m.group(2)) + 1 if m.group(2) else 0
    return int(m.group(1)) * (1000 if m.group(3) else 1024) ** power


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def sshd_processes(sshd: SshdTarget) -> list[int]:
    """sshd's per-connection processes, not the shells (one per connection as root, for whom
    sshd skips post-authentication privilege separation; two for anyone else)."""
    parent, name = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name in parentheses may hold spaces; the parent pid follows it.
            head, _, rest = stat.read_text().rpartition(")")
        except OSError:
            continue
        pid = int(stat.parent.name)
        parent[pid], name[pid] = int(rest.split()[1]), head.partition("(")[2]
    found, todo = [], [sshd.process.pid]
    while todo:
        pid = todo.pop()
        children = [p for p, pp in parent.items() if pp == pid and name[p] == "sshd"]
        found += children
        todo += children
    return found


def memory(gw: SshGateway, sshd: SshdTarget, clients: Clients, count: int) -> dict[str, float]:
    target = gateway_target(gw)
    warm = clients.start({"mode": "idle", "target": target, "count": 1})
    assert warm.stdout and warm.stdin
    warm.stdout.readline()
    warm.communicate("\n", timeout=30)
    wait_for(lambda: not gw.engine.live(), "the warm-up session to end")
    gc.collect()
    time.sleep(0.5)
    before = rss_kib(os.getpid())
    sshd_before = [(rss_kib(p), pss_kib(p)) for p in sshd_processes(sshd)]
    proc = clients.start({"mode": "idle", "target": target, "count": count})
    assert proc.stdout and proc.stdin
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("the idle sessions did not open")
    time.sleep(1)
    live = len(gw.engine.live())
    if live != count:
        raise RuntimeError(f"{count} sessions opened but the engine holds {live}")
    after = rss_kib(os.getpid())
    sshd_after = [(rss_kib(p), pss_kib(p)) for p in sshd_processes(sshd)]
    proc.communicate("\n", timeout=60)
    grow = [sum(x[i] for x in sshd_after) - sum(x[i] for x in sshd_before) for i in (0, 1)]
    return {"engine": (after - before) / count, "sshd_rss": grow[0] / count,
            "sshd_pss": grow[1] / count, "sshd_procs": (len(sshd_after) - len(sshd_before)) / count,
            "before": before, "after": after}


def latency(gw: SshGateway, sshd: SshdTarget, clients: Clients,
            count: int) -> dict[str, list[float]]:
    proc = clients.start({"mode": "keystrokes", "count": count,
                          "targets": {"direct": direct_target(sshd),
                                      "gatewatch": gateway_target(gw),
                                      "strict": gateway_target(gw, "web_strict")}})
    out, _ = proc.communicate(timeout=120 + count)
    if proc.returncode != 0:
        raise RuntimeError("the keystroke client failed")
    result: dict[str, list[float]] = json.loads(out)
    return result


def throughput(gw: SshGateway, sshd: SshdTarget, size: str, repeat: int,
               ciphers: list[str]) -> dict[tuple[str, str], list[float]]:
    """Seconds per bulk run, from starting ssh to its exit, by (path, cipher)."""
    command = f"head -c {size} /dev/zero"
    runs = {}
    for cipher in ciphers:
        options = ("-o", "Compression=no") + (("-c", cipher) if cipher != "default" else ())
        runs[("direct", cipher)] = (sshd.ssh_argv(command, options=options), None)
        runs[("gatewatch", cipher)] = (gw.ssh_argv(command, options=options), gw.env("alice"))
    times: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
    for _ in range(repeat):
        for key, (argv, env) in runs.items():
            start = time.perf_counter()
            subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           check=True, timeout=1800)
            times[key].append(time.perf_counter() - start)
    return times


def connect_time(gw: SshGateway, sshd: SshdTarget, repeat: int) -> dict[str, list[float]]:
    """Seconds for ``ssh HOST true``: handshake, login, a channel, and (gateway) the upstream."""
    runs = {"direct": (sshd.ssh_argv("true"), None),
            "gatewatch": (gw.ssh_argv("true"), gw.env("alice"))}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, (argv, env) in runs.items():
            start = time.perf_counter()
            subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           check=True, timeout=60)
            times[name].append(time.perf_counter() - start)
    return times


def wait_for(condition: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def store_size(gw: SshGateway) -> tuple[int, int]:
    """Bytes of the SQLite store with its WAL and journal, and bytes of output it recorded."""
    on_disk = sum(p.stat().st_size for p in gw.work.glob("store.db*"))
    rows = gw.query("SELECT sum(length(data)) AS n FROM ssh_output")
    return on_disk, int(rows[0]["n"] or 0)


@contextlib.contextmanager
def ssh_setup() -> Iterator[tuple[SshdTarget, SshGateway, Clients]]:
    # Stopped with SIGTERM the benchmark still stops sshd and the engine and removes its files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="gatewatch-bench-ssh-"))
    sshd = gw = clients = None
    try:
        sshd = start_sshd(work / "sshd")
        gw = start_ssh_gateway(sshd, work / "gw")
        clients = Clients(gw)
        yield sshd, gw, clients
    finally:
        if clients is not None:
            clients.close()
        if gw is not None:
            stop_ssh_gateway(gw)
        if sshd is not None:
            sshd.stop()
        shutil.rmtree(work, ignore_errors=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def header() -> str:
    model = next((line.split(":", 1)[1].strip()
                  for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "?")
    openssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    return (f"machine: {os.cpu_count()} cores ({model}), loopback\n"
            f"versions: {openssh}; asyncssh {asyncssh.__version__}, cryptography "
            f"{cryptography.__version__}, Python {sys.version.split()[0]}")


def print_keystrokes(keys: dict[str, list[float]]) -> None:
    kd, kg = keys["direct"], keys["gatewatch"]
    print(f"\n2. keystroke echo: one byte to cat on a PTY until its echo is back, "
          f"{len(kd)} keys per path, alternating (ms)")
    print(f"{'path':<10} {'p50':>7} {'/direct':>8} {'p99':>7} {'/direct':>8}")
    for name, k in keys.items():
        print(f"{name:<10} {pct(k, .5) * 1e3:>7.3f} {pct(k, .5) / pct(kd, .5):>8.2f} "
              f"{pct(k, .99) * 1e3:>7.3f} {pct(k, .99) / pct(kd, .99):>8.2f}")
    print(f"added by the gateway: p50 {(pct(kg, .5) - pct(kd, .5)) * 1e3:+.3f} ms, "
          f"p99 {(pct(kg, .99) - pct(kd, .99)) * 1e3:+.3f} ms (lenient)")
    ks = keys["strict"]
    print(f"added by the gateway: p50 {(pct(ks, .5) - pct(kd, .5)) * 1e3:+.3f} ms, "
          f"p99 {(pct(ks, .99) - pct(kd, .99)) * 1e3:+.3f} ms (strict: the gateway echoes)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="300M", help="bytes per bulk run, as head -c reads it")
    ap.add_argument("--repeat", type=int, default=3, help="bulk runs per path")
    ap.add_argument("--ciphers", default="default,aes128-gcm@openssh.com",
                    help="OpenSSH client ciphers for the bulk runs (default: ssh's choice, "
                         "chacha20-poly1305)")
    ap.add_argument("--keystrokes", type=int, default=500)
    ap.add_argument("--sessions", type=int, default=50, help="idle sessions for the memory")
    ap.add_argument("--only-keystrokes", action="store_true",
                    help="measure keystroke echo latency only (lenient and strict)")
    args = ap.parse_args()
    try:
        parse_size(args.size)
    except argparse.ArgumentTypeError as exc:
        ap.error(str(exc))
    print(header(), flush=True)
    if args.only_keystrokes:
        with ssh_setup() as (sshd, gw, clients):
            keys = latency(gw, sshd, clients, args.keystrokes)
        print_keystrokes(keys)
        return
    with ssh_setup() as (sshd, gw, clients):
        print("memory ...", file=sys.stderr, flush=True)
        mem = memory(gw, sshd, clients, args.sessions)
        print("keystrokes ...", file=sys.stderr, flush=True)
        keys = latency(gw, sshd, clients, args.keystrokes)
        print("connect ...", file=sys.stderr, flush=True)
        connect = connect_time(gw, sshd, 5)
        print("throughput ...", file=sys.stderr, flush=True)
        bulk = throughput(gw, sshd, args.size, args.repeat, args.ciphers.split(","))
        wait_for(lambda: not gw.engine.live(), "the sessions to end")
        time.sleep(0.5)  # the recorder's lazy writes and checkpoint
        on_disk, recorded = store_size(gw)

    # Each run's wall time includes the login and the remote shell's start (about as long as
    # `ssh HOST true`); "net" takes off that path's median `true` time, leaving the transfer.
    mib = parse_size(args.size) / 2**20
    setup = {name: statistics.median(t) for name, t in connect.items()}
    rates = {key: ([mib / t for t in times], [mib / (t - setup[key[0]]) for t in times])
             for key, times in bulk.items()}
    print(f"\n1. bulk throughput: ssh -o Compression=no [-c CIPHER] HOST 'head -c {args.size} "
          f"/dev/zero' > /dev/null, {args.repeat} runs per path, alternating (MiB/s; net: less "
          "the path's median `ssh HOST true`; /direct: to direct with the same client cipher)")
    columns = ("best", "/direct", "median", "/direct", "net best", "/direct", "net med",
               "/direct")
    print(f"{'path':<27}" + "".join(f"{c:>9}" for c in columns))
    for (path, cipher), (wall, net) in rates.items():
        cells = []
        for values, direct in zip((wall, net), rates[("direct", cipher)], strict=True):
            for f in (max, statistics.median):
                cells += [f"{f(values):.1f}", f"{f(values) / f(direct):.2f}"]
        name = path if cipher == "default" else f"{path} {cipher.split('@')[0]}"
        print(f"{name:<27}" + "".join(f"{c:>9}" for c in cells))
    print(f"gateway store after the run: {on_disk / 2**20:.0f} MiB on disk (store.db, WAL, "
          f"journal) after {len(bulk) // 2 * args.repeat} x {args.size} through the gateway"
          f"; {recorded / 2**20:.0f} MiB of output recorded in it")
    spread = {name: f"{setup[name] * 1e3:.0f} ({min(t) * 1e3:.0f}-{max(t) * 1e3:.0f})"
              for name, t in connect.items()}
    print("session setup, ssh HOST true, median (range) of 5, ms: "
          f"direct {spread['direct']}, gatewatch {spread['gatewatch']}")

    print_keystrokes(keys)

    print(f"\n3. memory per idle interactive session (PTY shell), {args.sessions} sessions (KiB)")
    print(f"{'path':<48} {'KiB':>7} {'/direct':>8}")
    rows = [(f"direct: sshd processes, PSS ({mem['sshd_procs']:.0f} per session)",
             mem["sshd_pss"]),
            ("direct: sshd processes, RSS (shared pages too)", mem["sshd_rss"]),
            ("gatewatch: engine VmRSS growth", mem["engine"])]
    for name, kib in rows:
        print(f"{name:<48} {kib:>7.0f} {kib / mem['sshd_pss']:>8.2f}")
    print(f"engine VmRSS {mem['before'] / 1024:.1f} MiB before, {mem['after'] / 1024:.1f} MiB "
          f"with {args.sessions} sessions; sshd measured on the gateway's upstream sessions, "
          "which a direct session costs alike (the shells not counted)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--client"]:
        client_main(json.loads(sys.argv[2]))
    else:
        main()
