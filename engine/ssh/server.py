"""The asyncssh server in front of one SSH connection: who may log in, and what they may open.

The login name is the identity (``ssh -p PORT alice@gateway``); the listener names the target,
one per connection as for PostgreSQL. Authentication: the identity's token as the password (or
keyboard-interactive answer), or a public key registered to the identity. Failed attempts are
answered late (longer for an address that keeps failing) and the client is disconnected after
``login_attempts`` failures.
Agent and X11 forwarding are refused (the listener turns them off); remote forwarding (-R) is
refused; local forwarding (-L) reaches only the connection's ``forward`` destinations, through
the target, and each attempt is recorded with its verdict. A forward's bytes are a protocol the
gateway does not read, so a session whose output is masked gets none (fail closed): anything on
the target can listen on an allowed destination and send a secret file through the tunnel.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import uuid
from collections.abc import Awaitable, Sequence
from typing import Any

import asyncssh

from engine.config import Connection
from engine.identity import Identity, IdentityDirectory
from engine.session import Session, SessionContext, may_use
from engine.ssh.bridge import ChannelBridge
from engine.ssh.output import ChannelOutput
from engine.ssh.session import SshSession
from engine.ssh.upstream import TargetUnavailable
from engine.tasks import spawn
from store import StoreError

log = logging.getLogger(__name__)

class GatewayServer(asyncssh.SSHServer):
    def __init__(self, ctx: SessionContext, conn: Connection,
                 identities: IdentityDirectory) -> None:
        self.ctx = ctx
        self.conn = conn
        self.identities = identities
        self.session: SshSession | None = None
        self.client_conn: asyncssh.SSHServerConnection | None = None
        self.addr = "?"
        self.attempts = 0
        self.channels = 0
        self.identity: Identity | None = None
        self.how = ""
        self.refused: tuple[str, str] | None = None  # the last failed login: (user, why)
        self._counted = False  # counted among its address's connections not logged in
        self._grace: asyncio.TimerHandle | None = None

    # --- connection -----------------------------------------------------------------------

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.client_conn = conn
        peer = conn.get_extra_info("peername")
        self.addr = f"{peer[0]}:{peer[1]}" if peer else "?"
        assert self.conn.ssh is not None
        settings, loop = self.conn.ssh, asyncio.get_running_loop()
        host = self.addr.rpartition(":")[0]
        if not self.ctx.unauthenticated.enter(host, settings.max_unauthenticated):
            log.warning("ssh %s: %d connections from %s are not logged in yet; refused",
                        self.addr, settings.max_unauthenticated, host)
            loop.call_soon(conn.abort)
            return
        self._counted = True
        self._grace = loop.call_later(settings.login_grace, self._grace_over)

    def _grace_over(self) -> None:
        """No completed login within ``login_grace``: the connection is dropped (a client that
        never sends its banner is not even able to hear why)."""
        log.info("ssh %s: no login within %g s, disconnected", self.addr,
                 self.conn.ssh.login_grace if self.conn.ssh else 0)
        self._logged_in_or_gone()
        if self.client_conn is not None:
            self.client_conn.abort()

    def _logged_in_or_gone(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        if self._counted:
            self._counted = False
            self.ctx.unauthenticated.leave(self.addr.rpartition(":")[0])

    def connection_lost(self, exc: Exception | None) -> None:
        self._logged_in_or_gone()
        if self.session is None and self.refused is not None:
            self._record_refusal(*self.refused)
        if self.session is not None:
            reason = "client disconnected" if exc is None else f"connection lost: {exc}"
            self.session.end(reason)

    # --- authentication -------------------------------------------------------------------

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def kbdint_auth_supported(self) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> Awaitable[bool]:
        return self._token_login(username, password)

    def get_kbdint_challenge(self, username: str, lang: str,
                             submethods: str) -> tuple[str, str, str, list[tuple[str, bool]]]:
        return ("Gatewatch", f"Sign in as {username} with your token.", "",
                [("Token: ", False)])

    def validate_kbdint_response(self, username: str,
                                 responses: Sequence[str]) -> Awaitable[bool] | bool:
        if len(responses) != 1:
            return False
        return self._token_login(username, responses[0])

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> Awaitable[bool]:
        return self._key_login(username, key)

    async def _token_login(self, username: str, token: str) -> bool:
        # The wait comes before the check, and an attempt that a client's next one cancels is
        # never checked: sending guesses early gains nothing.
        await self.ctx.throttle.wait(self.addr.rpartition(":")[0])
        identity = await self.identities.authenticate(username, token)
        return await self._admit(username, identity, "token")

    async def _key_login(self, username: str, key: asyncssh.SSHKey) -> bool:
        identity = self.identities.by_public_key(username, key.public_data)
        if identity is None:  # clients offer every key they have: not a guess, not throttled
            return False
        return await self._admit(username, identity, "public key")

    async def _admit(self, username: str, identity: Identity | None, how: str) -> bool:
        refusal = "authentication failed"
        if identity is not None and may_use(self.conn, identity) is not None:
            log.info("ssh %s: identity %s may not use connection %s", self.addr,
                     identity.name, self.conn.name)
            identity, refusal = None, "not allowed"
        if identity is None:
            self.ctx.throttle.note(self.addr.rpartition(":")[0])
            self.attempts += 1
            self.refused = (username, refusal)
            assert self.conn.ssh is not None
            if self.attempts >= self.conn.ssh.login_attempts and self.client_conn is not None:
                log.warning("ssh %s: %d failed logins as %r, disconnected", self.addr,
                            self.attempts, username)
                self.client_conn.disconnect(asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE,
                                            "too many failed attempts")
            return False
        # Not yet a session: a public key is validated once before the client proves that it
        # holds the private key. The session opens in auth_completed, once asyncssh is sure.
        self.identity, self.how = identity, how
        return True

    def auth_completed(self) -> None:
        self._logged_in_or_gone()
        identity = self.identity
        assert identity is not None and self.client_conn is not None
        version = self.client_conn.get_extra_info("client_version") or ""
        session = SshSession(self.ctx, self.conn, uuid.uuid4().hex[:16], self.addr,
                             str(version))
        session.client_conn = self.client_conn
        self.session = session
        spawn(self._open(session, identity), name=f"ssh-open-{session.session_id}")

    async def _open(self, session: SshSession, identity: Identity) -> None:
        try:
            await session.open(identity)
        except StoreError as exc:
            log.error("ssh %s refused: the store is not writable: %s", self.addr, exc)
            session.end("store unwritable", "error")
            return
        log.info("ssh session %s: %s signed in with a %s from %s", session.session_id,
                 identity.name, self.how, self.addr)

    def _record_refusal(self, user: str, reason: str) -> None:
        """A connection that never logged in but tried: recorded as a rejected session, as a
        PostgreSQL login that fails is (one record per connection, with its last reason)."""
        assert self.client_conn is not None
        version = str(self.client_conn.get_extra_info("client_version") or "")
        up = self.conn.upstream
        core = Session(self.ctx, self.conn, _NoClient(), protocol="ssh", client_addr=self.addr,
                       application_name=version, target=f"{up.user}@{up.host}:{up.port}")

        async def record() -> None:
            try:
                await core.record_open(user=user, rejected=reason)
            except StoreError as exc:
                log.error("ssh %s: failed login not recorded: %s", self.addr, exc)

        spawn(record(), name=f"ssh-refusal-{core.id}")

    # --- channels -------------------------------------------------------------------------

    def session_requested(self) -> ChannelBridge:
        session = self.session
        assert session is not None and self.conn.ssh is not None
        if len(session.bridges) >= self.conn.ssh.max_channels:
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
                f"at most {self.conn.ssh.max_channels} channels per session")
        self.channels += 1
        return ChannelBridge(session, self.channels)

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str,
                             orig_port: int) -> Awaitable[Any]:
        return self._forward(dest_host, dest_port)

    async def _forward(self, dest_host: str, dest_port: int) -> Any:
        session = self.session
        assert session is not None and self.conn.ssh is not None and self.client_conn
        try:
            await session.wait_open()
        except StoreError as exc:
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED,
                                            "the gateway cannot record sessions") from exc
        except TargetUnavailable as exc:
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, str(exc)) from exc
        text = f"forward to {dest_host}:{dest_port}"
        address, why = await _resolve(dest_host)
        allowed = address is not None and any(
            f.allows(address, dest_port) for f in self.conn.ssh.forward)
        if not allowed:
            reason = why or (f"{dest_host}:{dest_port} is outside the connection's allowed "
                             "forward destinations")
            await session.refused(text, "forward-not-allowed", reason)
            log.info("ssh session %s: %s refused: %s", session.session_id, text, reason)
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
                                            f"gatewatch: {reason}")
        if ChannelOutput.masks(session.masking):
            reason = ("port forwarding is refused for this identity on this connection: its "
                      "data is masked, and the gateway cannot read (nor mask) what a tunnel "
                      "carries")
            await session.refused(text, "masking", reason)
            log.info("ssh session %s: %s refused: %s", session.session_id, text, reason)
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
                                            f"gatewatch: {reason}")
        admission = await session.admit(text, "forward")
        if not admission.allowed:
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
                                            f"gatewatch: {admission.message}")
        session.end_command(admission.seq, "ok", None, None, command="forward")
        try:
            target = await session.target()
        except TargetUnavailable as exc:
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, str(exc)) from exc
        assert address is not None
        return await self.client_conn.forward_tunneled_connection(target, address, dest_port)

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        if self.session is not None:
            log.info("ssh session %s: remote forwarding of %s:%d refused",
                     self.session.session_id, listen_host, listen_port)
            self.session.note_refusal(f"remote forward {listen_host}:{listen_port}",
                                      "remote forwarding (-R) is not allowed")
        return False


async def _resolve(host: str) -> tuple[str | None, str | None]:
    """The address a forward goes to. Names are resolved here, once, and the connection goes
    to that address, so that what was checked is what is reached."""
    try:
        return str(ipaddress.ip_address(host)), None
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except OSError:
        return None, f"{host} does not resolve"
    addresses = sorted({str(info[4][0]) for info in infos})
    return (addresses[0], None) if addresses else (None, f"{host} does not resolve")


class _NoClient:
    """The transport of a session that was refused at login: nothing left to say or close."""

    def tell(self, message: str) -> None:
        pass

    def refuse(self, message: str, *, denied: bool = False) -> None:
        pass

    def close(self, reason: str) -> None:
        return None

    def details(self) -> dict[str, Any]:
        return {}
