"""The validated configuration: plain frozen dataclasses, built only by ``engine.config.load``.

The rules of a feature are that feature's own types (``engine.guardrail.rules.Rule``,
``engine.masking.rules.MaskingRule``): the features sit below the policies file and never
import it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_address
from pathlib import Path

from engine.guardrail.rules import GuardrailSettings, Rule
from engine.masking.rules import MaskingRule
from store.nodes import default_node


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int
    user: str
    password_env: str | None = None
    password_file: Path | None = None
    sslmode: str = "prefer"  # disable | prefer | require | verify-ca | verify-full
    sslrootcert: Path | None = None
    connect_timeout: float = 10.0
    # How the gateway may prove itself to the target. SCRAM never reveals the password to
    # whoever asks; md5 and password (cleartext) do, so they must be listed explicitly.
    auth: tuple[str, ...] = ("scram-sha-256",)
    # SSH targets: the gateway's own key for the target, and the target's host key(s). There is
    # no trust on first use: a target whose key is not in known_hosts is refused.
    key_file: Path | None = None
    known_hosts: Path | None = None

    def password(self) -> str | None:
        """Read the target credential at the moment it is needed; it is never kept in config."""
        if self.password_env is not None:
            return os.environ.get(self.password_env)
        if self.password_file is not None:
            return self.password_file.read_text().rstrip("\r\n")
        return None


@dataclass(frozen=True)
class Forward:
    """Destinations that ``ssh -L`` may reach through the target: a network and its ports."""

    network: IPv4Network | IPv6Network
    ports: frozenset[int] | None  # None: any port

    def allows(self, address: str, port: int) -> bool:
        try:
            ip = ip_address(address)
        except ValueError:
            return False
        return ip in self.network and (self.ports is None or port in self.ports)


@dataclass(frozen=True)
class SshSettings:
    host_key: Path | None = None  # the gateway's host key; None: generated beside the store
    shell: bool = True  # False: exec (and sftp/scp) only, no interactive shell
    forward: tuple[Forward, ...] = ()  # ssh -L destinations; empty: none
    max_channels: int = 10  # per session
    login_attempts: int = 3  # failed authentications before the client is disconnected
    login_grace: float = 30.0  # seconds from connect to a completed login, or disconnected
    max_unauthenticated: int = 10  # connections per address not yet logged in
    # strict: the gateway owns the command line (its own line editor; only a judged, whole line
    # reaches the shell); lenient: keys go to the shell and the line is read off the screen
    interactive: str = "lenient"
    # File transfers (sftp, scp) from the target: mask their file data like terminal output
    # (length kept, so the protocols still parse), refuse them, or allow them unmasked.
    transfers: str = "mask"


@dataclass(frozen=True)
class Connection:
    name: str
    kind: str  # "postgres" or "ssh"
    listen_host: str
    listen_port: int
    upstream: Upstream
    tls: TlsFiles | None = None
    # Tokens travel only over TLS, loopback excepted, unless the connection says
    # ``tls: optional``.
    tls_optional: bool = False
    databases: tuple[str, ...] | None = None
    allow_groups: frozenset[str] = frozenset()
    allow_identities: frozenset[str] = frozenset()
    # Just-in-time access: a session opens only after an approval, which then lets that
    # identity open sessions on this connection for ``access_grant`` seconds.
    access_approval: bool = False
    access_grant: float = 3600.0
    ssh: SshSettings | None = None  # kind ssh


@dataclass(frozen=True)
class IdentityConfig:
    name: str
    groups: frozenset[str]
    kind: str = "person"  # "person" or "agent"
    token_sha256: str | None = None
    token_env: str | None = None
    ssh_keys: tuple[str, ...] = ()  # OpenSSH public key lines that prove this identity


@dataclass(frozen=True)
class AgentRule:
    """How an OIDC token tells an AI agent apart from a person: a claim and the values that
    mean "agent" (a ``kind`` claim the provider adds, or Auth0's ``gty: client-credentials``),
    and the claim that carries the agent's vendor tag."""

    claim: str = "kind"
    values: tuple[str, ...] = ("agent",)
    vendor_claim: str = "vendor"


@dataclass(frozen=True)
class OidcSettings:
    """``identity.oidc``: tokens from the corporate OpenID provider (see engine/identity/oidc.py).

    Only asymmetric signature algorithms can be listed: ``none`` and HMAC are refused when the
    file is loaded, so a key confusion cannot be configured in.
    """

    issuer: str
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    username_claim: str = "preferred_username"  # absent from a token: ``sub`` is the name
    groups_claim: str = "groups"  # a dotted path reaches into objects: realm_access.roles
    clock_skew: float = 60.0
    max_token_bytes: int = 8192
    jwks_refresh: float = 3600.0  # keys are fetched again when older than this
    jwks_cooldown: float = 30.0  # at most one fetch per cooldown for an unknown key id
    http_timeout: float = 5.0
    agent: AgentRule = field(default_factory=AgentRule)
    # ``gatewatch login`` (the device flow): the public client registered for the CLI, the
    # scopes it asks for, and which of the returned tokens it presents to the gateway.
    client_id: str | None = None
    scopes: tuple[str, ...] = ("openid", "profile", "offline_access")
    login_token: str = "access_token"  # or "id_token"
    # A session signed in with a token ends when the token expires, after this much grace.
    session_grace: float = 0.0


@dataclass(frozen=True)
class MetricsSettings:
    """``engine.metrics``: where ``/metrics``, ``/healthz`` and ``/readyz`` are served."""

    listen_host: str
    listen_port: int


@dataclass(frozen=True)
class AuditStreamSettings:
    """``engine.audit_stream``: every audit record, as committed, to a SIEM's sink. ``file``:
    JSON lines at ``path``, rotated at ``max_size`` (``keep`` old files); ``syslog``: RFC 5424
    to ``host:port`` over ``udp`` or ``tcp`` (octet-counted framing, RFC 6587). At most
    ``queue`` records wait; beyond that they are dropped, counted and recorded as a gap."""

    sink: str  # file | syslog
    path: Path | None = None
    max_size: int = 64 * 1024 * 1024
    keep: int = 5
    host: str = "127.0.0.1"
    port: int = 514
    transport: str = "udp"  # udp | tcp
    queue: int = 10_000
    app_name: str = "gatewatch"


@dataclass(frozen=True)
class EngineSettings:
    # SQLite: the store's file. With a PostgreSQL store (``store_url``): this node's own local
    # file beside it (its journal, the SSH host key), ``engine.local_store``.
    store: Path
    control_socket: Path
    store_url: str | None = None  # ``engine.store: postgresql://…``: the fleet's shared store
    node: str | None = None  # this engine's name in the store; None: the host's name
    workers: int | None = None  # processes on the same listeners; None: the machine's cores
    heartbeat: float = 5.0  # how often a node says it is alive in the store
    node_timeout: float = 30.0  # a node silent this long is lost: its sessions are ended
    startup_timeout: float = 10.0
    max_message_size: int = 64 * 1024 * 1024
    durability: str = "normal"  # "normal": WAL commit; "full": fsync per group commit
    log_level: str = "INFO"
    masking_key_env: str | None = None  # the key of the hash masking strategy
    # Seconds of masking one long value may take before its result is refused.
    masking_value_budget: float = 5.0
    metrics: MetricsSettings | None = None  # None: no metrics endpoint
    audit_stream: AuditStreamSettings | None = None  # None: the store is the only copy


@dataclass(frozen=True)
class Config:
    path: Path
    engine: EngineSettings
    identities: tuple[IdentityConfig, ...]
    connections: tuple[Connection, ...]
    rules: tuple[Rule, ...] = field(default_factory=tuple)
    guardrails: GuardrailSettings = field(default_factory=GuardrailSettings)
    masking: tuple[MaskingRule, ...] = field(default_factory=tuple)
    oidc: OidcSettings | None = None  # identity.oidc; None: static identities only

    def connection(self, name: str) -> Connection | None:
        return next((c for c in self.connections if c.name == name), None)

    def node_name(self) -> str:
        """``engine.node``, or the store's default: this host's name (the name a lone engine's
        records, lock and journal have always had). Two engines of one machine writing one
        store need names of their own; the store refuses a second writer under one name."""
        return self.engine.node or default_node()

    def worker_count(self) -> int:
        """``engine.workers``, or one per core of this machine."""
        return self.engine.workers or os.cpu_count() or 1

    def store_location(self) -> Path | str:
        """What ``store.open_store`` opens: the PostgreSQL URL, or the SQLite file."""
        return self.engine.store_url or self.engine.store

    def store_shown(self) -> str:
        """The store as a log line may show it: a URL without its password."""
        url = self.engine.store_url
        if url is None:
            return str(self.engine.store)
        scheme, _, rest = url.partition("://")
        user, at, host = rest.rpartition("@")
        return f"{scheme}://{user.split(':', 1)[0]}{at}{host}"
