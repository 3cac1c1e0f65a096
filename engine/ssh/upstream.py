"""The gateway's own SSH connection to the target, with the credential the connection holds."""

from __future__ import annotations

import asyncio
import logging

import asyncssh

from engine.config import Upstream

log = logging.getLogger(__name__)


# AES-GCM first on both legs: asyncssh does it through OpenSSL (AES-NI) in one call per packet,
# while its ChaCha20-Poly1305 builds a new cipher object per packet (several times slower here).
# Towards clients ChaCha20 is not offered at all, since OpenSSH clients pick it first; every
# OpenSSH since 6.2 has AES-GCM. Towards targets it stays as the last resort.
CLIENT_SIDE_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr",
                       "aes192-ctr", "aes256-ctr")
TARGET_SIDE_CIPHERS = (*CLIENT_SIDE_CIPHERS, "chacha20-poly1305@openssh.com")


class TargetUnavailable(Exception):
    """The target cannot be reached or refuses the gateway; the message is for the user."""


async def connect_target(up: Upstream) -> asyncssh.SSHClientConnection:
    """Connect and authenticate to the target. Its host key must be in the connection's
    known_hosts (no trust on first use); a mismatch is refused and logged as an alarm."""
    assert up.known_hosts is not None
    if not up.known_hosts.is_file():
        log.error("connection to %s:%d: known_hosts file %s is missing", up.host, up.port,
                  up.known_hosts)
        raise TargetUnavailable("the gateway has no known host key for the target; refused")
    password = None
    client_keys: list[str] | None = None
    if up.key_file is not None:
        client_keys = [str(up.key_file)]
    else:
        try:
            password = up.password()
        except OSError as exc:
            raise TargetUnavailable("the gateway's credential for the target is unreadable") \
                from exc
        if password is None:
            raise TargetUnavailable("the gateway has no credential for the target")
    try:
        return await asyncio.wait_for(asyncssh.connect(
            up.host, up.port, username=up.user, password=password, client_keys=client_keys,
            known_hosts=str(up.known_hosts), agent_path=None, config=None,
            preferred_auth="publickey" if client_keys else "password,keyboard-interactive",
            kbdint_auth=password is not None, encoding=None,
            keepalive_interval=30, login_timeout=up.connect_timeout,
            encryption_algs=list(TARGET_SIDE_CIPHERS),
        ), up.connect_timeout)
    except asyncssh.HostKeyNotVerifiable as exc:
        log.warning("target %s:%d presented a host key that is not in %s: %s — refused",
                    up.host, up.port, up.known_hosts, exc.reason)
        raise TargetUnavailable("the target's host key does not match the gateway's "
                                "known hosts; refused") from exc
    except asyncssh.PermissionDenied as exc:
        log.error("target %s:%d refused the gateway's credential: %s", up.host, up.port,
                  exc.reason)
        raise TargetUnavailable("the target refused the gateway's credential") from exc
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        log.warning("target %s:%d unreachable: %s", up.host, up.port, exc)
        raise TargetUnavailable(f"the target {up.host}:{up.port} is unreachable") from exc
