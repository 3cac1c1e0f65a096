"""One worker of an engine with ``engine.workers`` above one: ``python -m engine.worker``, started
by the supervisor (``engine/workers.py``), never by hand.

The supervisor writes one JSON line on the worker's stdin (the policies file, the worker's index
and node name, the masking key, the file descriptors of its sockets, where its siblings take
forwarded CancelRequests, its private control socket). The worker says ``recovered`` on its
stdout once it has recovered its own records, waits for ``listen`` on stdin (sent when every
worker has recovered), and says ``ready`` once it takes sessions. stdin is a pipe only the two
share: the masking key never appears in an argument list or the environment.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
from pathlib import Path
from typing import Any

from engine.config import ConfigError, load_config
from engine.engine import Engine
from engine.node import Placement
from engine.serve import run_engine
from store import StoreError


def placement(setup: dict[str, Any]) -> Placement:
    return Placement(
        node=str(setup["node"]), index=int(setup["index"]), count=int(setup["count"]),
        masking_key=bytes.fromhex(setup["masking_key"]),
        sockets={name: socket.socket(fileno=int(fd)) for name, fd in setup["sockets"].items()},
        cancel_paths=tuple(Path(p) for p in setup["cancel_paths"]),
        control_socket=Path(setup["control_socket"]),
        siblings=tuple(str(n) for n in setup["nodes"]))


def _ready(engine: Engine) -> None:
    server = engine.metrics_server  # its private port, for the supervisor to read
    sys.stdout.write(f"ready {server.port if server is not None else ''}\n")
    sys.stdout.flush()


async def _recovered() -> None:
    """Say this worker recovered its records; listen when the supervisor says so (once every
    worker has: ``engine/workers.py``)."""
    sys.stdout.write("recovered\n")
    sys.stdout.flush()
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if line.strip() != "listen":
        raise OSError("the supervisor went away before this worker could listen")


def main() -> int:
    setup = json.loads(sys.stdin.readline())
    place = placement(setup)
    logging.basicConfig(
        stream=sys.stderr, level=setup.get("log_level", "INFO"),
        format=f"%(asctime)s %(levelname)s [w{place.index}] %(name)s: %(message)s")
    try:
        config = load_config(setup["config"])
    except ConfigError as exc:
        print(f"worker {place.index}: {exc}", file=sys.stderr)
        return 2
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run_engine(config, place, _ready, _recovered))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run_engine(config, place, _ready, _recovered))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except (OSError, StoreError) as exc:  # a store or socket that cannot be opened: the
        # supervisor says it, as a lone engine would (and logs which worker it was)
        kind = "store" if isinstance(exc, StoreError) else "os"
        print(f"failed {kind} {' '.join(str(exc).split())}", flush=True)
        sys.exit(2)
