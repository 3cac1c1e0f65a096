"""The handshake on both sides of a PostgreSQL session.

Client side: SSLRequest (TLS when the listener has a certificate), GSSENCRequest (declined),
CancelRequest (handed back to the caller), StartupMessage 3.x, then a cleartext password that
carries the identity's token. Target side: TCP, TLS per ``sslmode``, StartupMessage with the
connection's own user, and the target's authentication challenge answered by
``UpstreamAuthenticator``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field

from engine.config import Upstream
from engine.pg import codec, messages
from engine.pg.codec import ProtocolViolation
from engine.pg.side import Side
from engine.pg.upstream_auth import UpstreamAuthenticator, UpstreamAuthError

log = logging.getLogger(__name__)

# Startup parameters passed on to the target; any other is refused, since it would act like a
# SET that the guardrails never see (options=-c role=..., role=..., session_authorization=...).
PASSED_PARAMS = frozenset({
    "user", "database", "application_name", "client_encoding", "datestyle", "timezone",
    "extra_float_digits", "intervalstyle", "search_path", "default_transaction_isolation",
    "default_transaction_read_only", "statement_timeout", "lock_timeout",
    "idle_in_transaction_session_timeout", "bytea_output",
})


@dataclass
class ClientHello:
    params: dict[str, str] = field(default_factory=dict)
    tls: bool = False
    cancel: tuple[int, int] | None = None  # (pid, secret) of a CancelRequest


async def client_hello(client: Side, tls: ssl.SSLContext | None) -> ClientHello:
    """Read the untagged packets up to a StartupMessage (or a CancelRequest)."""
    hello = ClientHello()
    negotiated = False
    while True:
        length = codec.parse_startup_header(await client.read_exactly(4))
        packet = await client.read_exactly(length - 4)
        code = int.from_bytes(packet[:4], "big")
        if code == codec.CANCEL_REQUEST:
            if length != 16:
                raise ProtocolViolation("malformed CancelRequest")
            hello.cancel = (
                int.from_bytes(packet[4:8], "big", signed=True),
                int.from_bytes(packet[8:12], "big", signed=True),
            )
            return hello
        if code in (codec.SSL_REQUEST, codec.GSSENC_REQUEST):
            if negotiated or length != 8:
                raise ProtocolViolation("unexpected second encryption request")
            if client.buffered:
                # Bytes sent before our answer could be injected ahead of the TLS handshake.
                raise ProtocolViolation("received unencrypted data after an SSL request")
            if code == codec.SSL_REQUEST and tls is not None:
                client.write(b"S")
                await client.start_tls(tls, server_side=True)
                hello.tls = True
            else:
                client.write(b"N")
            negotiated = code == codec.SSL_REQUEST or negotiated
            continue
        major, minor = code >> 16, code & 0xFFFF
        if major != 3:
            raise ProtocolViolation(
                f"unsupported frontend protocol {major}.{minor}: the gateway speaks 3.0",
                sqlstate="0A000",
            )
        params = codec.parse_startup_params(packet[4:])
        extensions = [k for k in params if k.startswith("_pq_.")]
        if minor > 0 or extensions:
            client.write(codec.negotiate_protocol_version(0, extensions))
            for key in extensions:
                del params[key]
        if not params.get("user"):
            raise ProtocolViolation("no PostgreSQL user name specified in startup packet",
                                    sqlstate="28000")
        if "replication" in params and params["replication"].lower() not in (
                "0", "false", "off", "no"):
            raise ProtocolViolation("replication connections are not allowed through the "
                                    "gateway", sqlstate="28000")
        params.pop("replication", None)
        refused = sorted(k for k in params if k.lower() not in PASSED_PARAMS)
        if refused:
            raise ProtocolViolation(
                f"startup parameter {refused[0]!r} is not allowed through the gateway "
                "(it would change the session where the guardrails cannot see it)",
                sqlstate="28000")
        params.setdefault("database", params["user"])
        hello.params = params
        return hello


async def read_password(client: Side, max_size: int) -> str:
    client.write(codec.auth_request(3))
    tag, body = await client.read_message(max_size=min(max_size, 1024 * 1024))
    if tag != ord("p"):
        raise ProtocolViolation(f"expected a password message, got message type {chr(tag)!r}")
    if not body.endswith(b"\x00"):
        raise ProtocolViolation("malformed password message")
    return body[:-1].decode("utf-8", "replace")


_METHODS = {3: "password", 5: "md5", 10: "scram-sha-256"}


class UpstreamUnavailable(Exception):
    """The target cannot be reached or refused the gateway; the detail is for the log only."""


@dataclass
class UpstreamGreeting:
    side: Side
    status_messages: bytes  # ParameterStatus and notices, relayed to the client as they were
    pid: int
    secret: int
    transaction_status: bytes
    tls: bool


def upstream_tls_context(upstream: Upstream) -> ssl.SSLContext | None:
    mode = upstream.sslmode
    if mode == "disable":
        return None
    ctx = ssl.create_default_context(
        cafile=str(upstream.sslrootcert) if upstream.sslrootcert else None
    )
    if mode in ("prefer", "require"):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif mode == "verify-ca":
        ctx.check_hostname = False
    return ctx


async def connect_upstream(
    upstream: Upstream, client_params: dict[str, str], max_size: int
) -> UpstreamGreeting:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(upstream.connect_timeout):
            _, side = await loop.create_connection(Side, upstream.host, upstream.port)
            try:
                return await _login(side, upstream, client_params, max_size)
            except BaseException:
                side.close()
                raise
    except TimeoutError as exc:
        raise UpstreamUnavailable(
            f"timed out after {upstream.connect_timeout:g}s connecting to the target"
        ) from exc
    except OSError as exc:
        raise UpstreamUnavailable(f"cannot reach {upstream.host}:{upstream.port}: {exc}") from exc


async def _login(
    side: Side, upstream: Upstream, client_params: dict[str, str], max_size: int
) -> UpstreamGreeting:
    ctx = upstream_tls_context(upstream)
    tls = False
    if ctx is not None:
        side.write(codec.untagged(codec.SSL_REQUEST))
        answer = await side.read_exactly(1)
        if answer == b"S":
            await side.start_tls(ctx, server_side=False, hostname=upstream.host)
            tls = True
        elif answer != b"N" or upstream.sslmode != "prefer":
            raise UpstreamUnavailable(f"the target refused TLS (sslmode={upstream.sslmode})")
    params = {k: v for k, v in client_params.items() if k != "user"}
    params["user"] = upstream.user
    side.write(codec.startup_message(params))
    auth = UpstreamAuthenticator(upstream.user, upstream.password())
    statuses: list[bytes] = []
    pid = secret = 0
    try:
        while True:
            tag, body = await side.read_message(max_size)
            if tag == ord("R"):
                code = int.from_bytes(body[:4], "big")
                method = _METHODS.get(code)
                if method is not None and method not in upstream.auth:
                    # A spoofed target could ask for the password in the clear (or as MD5,
                    # which is as good as cleartext offline): only methods the connection
                    # allows are answered.
                    raise UpstreamAuthError(
                        f"the target asks for {method} authentication, which this connection "
                        f"does not allow (upstream.auth: {', '.join(upstream.auth)})")
                reply = auth.respond(code, body[4:])
                if reply is not None:
                    side.write(reply)
            elif tag == ord("E"):
                fields = messages.error_fields(body)
                raise UpstreamRefused(fields.get("C", ""), fields.get("M", "error"))
            elif tag in (ord("S"), ord("N")):
                statuses.append(codec.message(bytes([tag]), body))
            elif tag == ord("K"):
                pid = int.from_bytes(body[0:4], "big", signed=True)
                secret = int.from_bytes(body[4:8], "big", signed=True)
            elif tag == ord("v"):
                continue
            elif tag == ord("Z"):
                return UpstreamGreeting(side, b"".join(statuses), pid, secret, body[:1], tls)
            else:
                raise UpstreamUnavailable(f"unexpected message {chr(tag)!r} during target login")
    except UpstreamAuthError as exc:
        raise UpstreamUnavailable(str(exc)) from exc
    except ProtocolViolation as exc:
        raise UpstreamUnavailable(f"the target broke the protocol: {exc}") from exc


async def read_settings(side: Side, names: list[str], max_size: int,
                        ) -> dict[str, str] | None:
    """The session's values of the settings ``names``, read on a connection that has just
    logged in (before the client's first message), with the gateway's own query; None when
    the target answered an error. What a login's startup message does not say is the role's
    or the database's default (``ALTER ROLE … SET``), which PostgreSQL does not report."""
    columns = ", ".join("pg_catalog.current_setting('" + n.replace("'", "''") + "', true)"
                        for n in names)
    side.write(codec.message(b"Q", codec.cstr(f"SELECT {columns}")))
    values: dict[str, str] = {}
    failed = False
    try:
        while True:
            tag, body = await side.read_message(max_size)
            if tag == ord("D"):
                row = messages.data_row(body)
                values = {n: v.decode(errors="replace") for n, v in zip(names, row, strict=False)
                          if v is not None}
            elif tag == ord("E"):
                failed = True
            elif tag == ord("Z"):
                return None if failed else values
    except ProtocolViolation as exc:
        raise UpstreamUnavailable(f"the target broke the protocol: {exc}") from exc


class UpstreamRefused(UpstreamUnavailable):
    """The target answered the login with an ErrorResponse."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(f"target refused the login: {sqlstate} {message}")
        self.sqlstate = sqlstate
        self.message = message
