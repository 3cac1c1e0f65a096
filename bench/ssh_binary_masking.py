"""What masking a large binary download costs the SSH side's event loop (issue 14, class 7).

Feeds a binary file (default: this Python's own executable) through the SFTP transfer masker
in 32 KiB replies and through a terminal stream masker in 4 KiB reads, as the bridge would, and
prints the total time and the longest single feed (the longest the event loop is held), beside
the time to merely copy the bytes.

    .venv/bin/python bench/ssh_binary_masking.py [--file PATH]
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.masking import ValueMasker
from engine.masking.stream import StreamMasker
from engine.masking.transfer import SftpMasker


def _reply(request: int, chunk: bytes) -> bytes:
    body = struct.pack("!II", request, len(chunk)) + chunk
    return struct.pack("!IB", len(body) + 1, 103) + body


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", type=Path, default=Path(sys.executable).resolve())
    data = ap.parse_args().file.read_bytes()
    start = time.perf_counter()
    copied = bytearray()
    for at in range(0, len(data), 32768):
        copied += data[at:at + 32768]
    copy = time.perf_counter() - start
    print(f"{len(data) / 1e6:.1f} MB; copying alone: {copy * 1e3:.1f} ms")
    for name, size, feed in (
            ("sftp replies (32 KiB)", 32768,
             SftpMasker(ValueMasker(keep_length=True)).feed),
            ("terminal stream (4 KiB)", 4096, StreamMasker(ValueMasker()).feed)):
        worst = 0.0
        start = time.perf_counter()
        for i, at in enumerate(range(0, len(data), size)):
            chunk = data[at:at + size]
            began = time.perf_counter()
            feed(_reply(i, chunk) if name.startswith("sftp") else chunk)
            worst = max(worst, time.perf_counter() - began)
        total = time.perf_counter() - start
        print(f"{name:<24} total {total:6.2f} s  {len(data) / total / 2**20:6.1f} MiB/s  "
              f"longest feed {worst * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
