"""This process's place in a fleet: its node name, and, when it is one worker of several on one
machine, what the supervisor decided once for all of them.

A lone engine is a ``Placement`` with one worker and nothing handed down. A worker gets from its
supervisor (``engine/workers.py``) the listening sockets it accepts on (bound once, with
SO_REUSEPORT, so that a worker that dies and is restarted takes over the same accept queue),
the masking key (a random per-process key would hash one value two ways), and where its
siblings take forwarded CancelRequests.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Placement:
    node: str
    index: int = 0
    count: int = 1
    masking_key: bytes | None = None  # None: the engine's own (engine.masking_key_env or random)
    sockets: dict[str, socket.socket] = field(default_factory=dict)  # connection → listening
    cancel_paths: tuple[Path, ...] = ()  # by worker index: where each takes forwarded cancels
    # A worker serves its metrics on a private loopback port, which the supervisor reads and
    # sums on engine.metrics' own address (engine/metrics_fanout.py).
    metrics: bool = True
    control_socket: Path | None = None  # a worker's private one; None: engine.control_socket
    siblings: tuple[str, ...] = ()  # every worker's node name, this one's included

    def own_nodes(self) -> frozenset[str]:
        """This engine's nodes: its workers' (whose sessions the supervisor lists itself)."""
        return frozenset((self.node, *self.siblings))

    @property
    def worker(self) -> bool:
        return self.count > 1


def worker_node(node: str, index: int) -> str:
    """The node name of worker ``index`` of the engine ``node``."""
    return f"{node}-w{index}"


def sibling_path(control_socket: Path, index: int, what: str) -> Path:
    """A private Unix socket of worker ``index`` beside the public control socket."""
    return control_socket.with_name(f"{control_socket.name}.w{index}.{what}")
