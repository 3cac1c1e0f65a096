"""The gateway's SSH host key: made once, 0600 whatever the umask; refused when others can
read it (ARCHITECTURE.md invariant 12)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from engine.ssh.hostkey import HostKeyError, load_or_create_host_key


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277])
def test_a_new_key_is_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "keys" / "ssh_host_web_ed25519_key"
    old = os.umask(umask)
    try:
        key = load_or_create_host_key(path)
    finally:
        os.umask(old)
    assert (mode(path), mode(path.with_name(path.name + ".pub")), mode(path.parent)) == (
        0o600, 0o644, 0o700)
    again = load_or_create_host_key(path)  # kept, not made again
    assert again.export_public_key() == key.export_public_key()


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ssh_host_web_ed25519_key"
    load_or_create_host_key(path)
    path.chmod(0o644)
    with pytest.raises(HostKeyError) as refused:
        load_or_create_host_key(path)
    assert str(refused.value) == (
        f"the SSH host key {path} is readable by other users (mode 0644): run `chmod 600"
        f" {path}`, and consider a new key if they may have copied it")
    assert isinstance(refused.value, OSError)  # `gatewatch engine` says it in one line, exit 2


def test_a_key_that_is_not_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ssh_host_web_ed25519_key"
    path.write_text("not a key\n")
    path.chmod(0o600)
    with pytest.raises(HostKeyError, match="cannot read the SSH host key"):
        load_or_create_host_key(path)
