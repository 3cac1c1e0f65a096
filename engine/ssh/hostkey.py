"""The gateway's own SSH host key: the one given, or one generated once and kept."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import asyncssh

log = logging.getLogger(__name__)


class HostKeyError(OSError):
    """A host key the engine cannot use; one line for the operator. An OSError, so that
    ``gatewatch engine`` reports it and exits 2 like any other failure to start."""


def load_or_create_host_key(path: Path) -> asyncssh.SSHKey:
    """Clients pin this key; generating a new one at every start would train users to accept
    changed host keys, so it is created once (ed25519, mode 0600 whatever the umask, in a
    0700 directory when the engine makes the directory) and reused. Like sshd, a private key
    that others can read is refused: it may have been copied."""
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise HostKeyError(
                f"the SSH host key {path} is readable by other users (mode {mode:04o}): run"
                f" `chmod 600 {path}`, and consider a new key if they may have copied it")
        try:
            return asyncssh.read_private_key(str(path))
        except (OSError, asyncssh.KeyImportError) as exc:
            raise HostKeyError(f"cannot read the SSH host key {path}: {exc}") from exc
    key = asyncssh.generate_private_key("ssh-ed25519")
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(fd, 0o600)  # a umask takes bits away; an odd one could take the owner's
        f.write(key.export_private_key())
    public = path.with_name(path.name + ".pub")
    public.write_bytes(key.export_public_key())
    public.chmod(0o644)  # what ssh-keygen gives a public key, whatever the umask
    log.info("generated the gateway's SSH host key %s", path)
    return key
