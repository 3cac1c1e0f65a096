"""A small file system that can be filled up: a tmpfs mounted for one test (root only; without
it a test skips, or fails with GATEWATCH_REQUIRE_INTEGRATION=1)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REQUIRE


def cannot(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"GATEWATCH_REQUIRE_INTEGRATION=1 but {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (mount's syntax: 1m, 8m), mode 0700, at ``where``."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        cannot("a full file system is simulated with a small tmpfs, which needs root")
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                           str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        cannot(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(directory: Path) -> Path:
    """Take every free byte of ``directory``'s file system, down to the last one."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1):
            while True:
                try:
                    f.write(b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    return filler
