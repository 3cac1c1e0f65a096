"""The unprivileged account the demo's SSH target runs its shells as.

A demo run as root would otherwise hand every SSH user a root shell on the gateway's own host,
from which the engine's memory (``/proc/<pid>/environ``, ``mem``), its store and the demo
cluster's superuser socket are all within reach. So when we are root the target's shells, file
transfers and commands run as ``gatewatch-demo``, a system account made for this (no password,
no login shell), created on first use. When we are not root there is no other account to switch
to: the target runs as the current user, and the demo says so.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess

DEMO_ACCOUNT = "gatewatch-demo"


class AccountError(RuntimeError):
    """The demo's target account could not be found or created; the message says why."""


def target_account(name: str = DEMO_ACCOUNT) -> pwd.struct_passwd | None:
    """The account the SSH target runs as, created when missing; None when we are not root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    nologin = shutil.which("nologin") or "/usr/sbin/nologin"
    try:
        done = subprocess.run(
            [useradd, "--system", "--create-home", "--user-group", "--shell", nologin,
             "--comment", "Gatewatch demo SSH target", name],
            capture_output=True, text=True, check=False, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AccountError(f"cannot create the demo's target account {name}: {exc}") from exc
    try:
        # Also when useradd failed: another demo starting at the same moment may have made it.
        return pwd.getpwnam(name)
    except KeyError:
        reason = (done.stderr or done.stdout).strip().splitlines()
        raise AccountError(
            f"cannot create the demo's target account {name}: "
            f"{reason[-1] if reason else f'useradd exited with {done.returncode}'}"
        ) from None
