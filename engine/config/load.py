"""Load ``policies.yaml``: YAML → checked dataclasses, with errors that name file, line and key.

Every scalar may refer to the environment: ``${NAME}`` (must be set) or ``${NAME:-default}``.
Relative paths are taken from the directory of the policies file. Unknown keys are errors, so
that a typo never silently turns a rule off; a misspelt key is named as unknown, with the key
it is closest to ("did you mean"), even when the key it stands for is a required one. A file
that loads may still carry warnings (``check_config``): what works but cannot be what was meant,
such as an approver group nobody is in.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from engine.config.model import (
    AgentRule,
    AuditStreamSettings,
    Config,
    Connection,
    EngineSettings,
    Forward,
    IdentityConfig,
    MetricsSettings,
    OidcSettings,
    SshSettings,
    TlsFiles,
    Upstream,
)
from engine.guardrail.classify import STATEMENT_KINDS
from engine.guardrail.commands import COMMAND_KINDS
from engine.guardrail.rules import ACTIONS, GuardrailSettings, Match, Rule
from engine.masking.detectors import BUILTIN as DETECTORS
from engine.masking.rules import MaskingRule
from engine.masking.strategies import KINDS as MASKING_STRATEGIES

T = TypeVar("T")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
SSLMODES = ("disable", "prefer", "require", "verify-ca", "verify-full")
# Signature algorithms an OIDC token may use: asymmetric only. HMAC ("HS256") would let anyone
# who holds the provider's *public* key mint tokens if it were ever keyed with it, and "none"
# is no signature at all; neither can be listed.
OIDC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
                   "ES512", "EdDSA", "Ed25519")
_LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


_NONE: tuple[str, ...] = ()


class ConfigError(Exception):
    """A policies file that cannot be used; the message is one line for the operator."""


class _Doc:
    """The parsed YAML plus the line of every value, keyed by its path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: dict[tuple[str | int, ...], int] = {}
        self.warnings: list[str] = []

    def fail(self, where: tuple[str | int, ...], expected: str) -> ConfigError:
        line = self.lines.get(where)
        while line is None and where:
            where = where[:-1]
            line = self.lines.get(where)
        key = ".".join(str(p) for p in where) or "(top level)"
        return ConfigError(f"{self.path}:{line or 1}: {key}: {expected}")

    def warn(self, where: tuple[str | int, ...], what: str) -> None:
        """A warning in the shape of an error (file:line: key: what)."""
        self.warnings.append(str(self.fail(where, what)))

    def build(self, node: yaml.Node, where: tuple[str | int, ...],
              parents: frozenset[int] = frozenset()) -> Any:
        self.lines[where] = node.start_mark.line + 1
        if id(node) in parents:
            raise self.fail(where, "a YAML alias refers to itself")
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            parents = parents | {id(node)}
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = key_node.value
                if not isinstance(key_node, yaml.ScalarNode) or not isinstance(key, str):
                    raise self.fail(where, "mapping keys must be plain strings")
                if key in out:
                    raise self.fail((*where, key), "this key is given twice")
                out[key] = self.build(value_node, (*where, key), parents)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*where, i), parents) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        text = self._interpolate(str(node.value), where)
        if node.style:  # quoted: always a string
            return text
        return _plain_scalar(text)

    def _interpolate(self, text: str, where: tuple[str | int, ...]) -> str:
        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            value = os.environ.get(name)
            if value is None or (value == "" and default is not None):
                if default is None:
                    raise self.fail(where, f"environment variable {name} is not set")
                return default
            return value

        return _ENV.sub(sub, text)


def _plain_scalar(text: str) -> Any:
    """Type a plain (unquoted) scalar after interpolation: null, bool, int, float or str."""
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE", "false", "False", "FALSE"):
        return text.lower() == "true"
    if re.fullmatch(r"[-+]?[0-9]+", text):
        return int(text)
    if re.fullmatch(r"[-+]?([0-9]*\.[0-9]+|[0-9]+\.[0-9]*)([eE][-+]?[0-9]+)?", text):
        return float(text)
    return text


class _Section:
    """Typed access to one mapping of the document, remembering which keys were read."""

    def __init__(self, doc: _Doc, data: Any, where: tuple[str | int, ...], what: str) -> None:
        if not isinstance(data, dict):
            raise doc.fail(where, f"expected a mapping ({what})")
        self.doc, self.data, self.where = doc, data, where
        self._known: set[str] = set()

    def get(self, key: str, kind: Callable[[Any, tuple[str | int, ...]], T], default: T) -> T:
        self._known.add(key)
        if key not in self.data or self.data[key] is None:
            return default
        return kind(self.data[key], (*self.where, key))

    def need(self, key: str, kind: Callable[[Any, tuple[str | int, ...]], T]) -> T:
        self._known.add(key)
        if key not in self.data or self.data[key] is None:
            # `actoin:` is a misspelt `action:`, not a missing one: name the key that is there.
            typo = difflib.get_close_matches(key, [k for k in self.data if k != key], 1, 0.75)
            if typo:
                raise self.doc.fail((*self.where, typo[0]),
                                    f"unknown key '{typo[0]}' (did you mean '{key}'?)")
            raise self.doc.fail(self.where, f"missing required key '{key}'")
        return kind(self.data[key], (*self.where, key))

    def section(self, key: str, what: str) -> _Section | None:
        self._known.add(key)
        if self.data.get(key) is None:
            return None
        return _Section(self.doc, self.data[key], (*self.where, key), what)

    def done(self) -> None:
        for key in self.data:
            if key not in self._known:
                close = difflib.get_close_matches(key, sorted(self._known), 1, 0.75)
                if close:
                    raise self.doc.fail((*self.where, key),
                                        f"unknown key '{key}' (did you mean '{close[0]}'?)")
                known = ", ".join(sorted(self._known))
                raise self.doc.fail((*self.where, key), f"unknown key (expected one of: {known})")


def _closest(word: str, names: frozenset[str] | set[str], what: str) -> str:
    """``unknown statement kind 'DELTE' (did you mean: DELETE, ...)``: the few names closest to
    a wrong one (by spelling, then those sharing its first word), never all of them (there are
    about 180 statement kinds)."""
    close = difflib.get_close_matches(word, sorted(names), 5, 0.6)
    first = word.split(" ", 1)[0]
    close += [n for n in sorted(names) if n.split(" ", 1)[0] == first and n not in close]
    if not close:
        return f"unknown {what} {word!r} (none of the {len(names)} known is close to it)"
    more = f", … {len(close) - 5} more" if len(close) > 5 else ""
    return f"unknown {what} {word!r} (did you mean: {', '.join(close[:5])}{more})"


def load_config(path: str | Path) -> Config:
    """Read and check a policies file; raise ``ConfigError`` with a one-line reason."""
    return _load(Path(path))[0]


def check_config(path: str | Path) -> tuple[Config, list[str]]:
    """``gatewatch policy check``: the file loaded as the engine loads it, and its warnings
    (each ``file:line: key: what``), which do not stop an engine."""
    config, doc = _load(Path(path))
    return config, doc.warnings


def _load(path: Path) -> tuple[Config, _Doc]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the policies file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the policies file is not UTF-8 text (byte {exc.start})"
                          ) from exc
    doc = _Doc(path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError(f"{path}:{line}: not valid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if node is None:
        raise ConfigError(f"{path}:1: the policies file is empty")
    top = _Section(doc, doc.build(node, ()), (), "the policies file")
    return _Builder(doc, path.parent.resolve()).config(top), doc


class _Builder:
    def __init__(self, doc: _Doc, base: Path) -> None:
        self.doc = doc
        self.base = base
        self.names_are_open = False

    # scalar kinds ------------------------------------------------------------------------
    def string(self, value: Any, where: tuple[str | int, ...]) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.doc.fail(where, "expected a string")
        return str(value)

    def name(self, value: Any, where: tuple[str | int, ...]) -> str:
        text = self.string(value, where)
        if not _NAME.match(text):
            raise self.doc.fail(where, f"'{text}' is not a valid name (letters, digits, _.@-)")
        return text

    def path(self, value: Any, where: tuple[str | int, ...]) -> Path:
        text = self.string(value, where)
        if not text:
            raise self.doc.fail(where, "expected a path")
        p = Path(text).expanduser()
        return p if p.is_absolute() else self.base / p

    def port(self, value: Any, where: tuple[str | int, ...]) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
            raise self.doc.fail(where, "expected a TCP port number (0-65535)")
        return value

    def names(self, value: Any, where: tuple[str | int, ...]) -> frozenset[str]:
        if not isinstance(value, list):
            raise self.doc.fail(where, "expected a list of names")
        return frozenset(self.name(v, (*where, i)) for i, v in enumerate(value))

    def seconds(self, value: Any, where: tuple[str | int, ...]) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*", str(value))
        if not match:
            raise self.doc.fail(where, "expected a duration such as 10s, 500ms or 2m")
        scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match.group(2)]
        seconds = float(match.group(1)) * scale
        if seconds <= 0:
            raise self.doc.fail(where, "expected a duration above zero")
        return seconds

    def size(self, value: Any, where: tuple[str | int, ...]) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        match = re.fullmatch(r"\s*(\d+)\s*(B|KiB|MiB|GiB)\s*", str(value))
        if not match:
            raise self.doc.fail(where, "expected a size such as 64MiB, 512KiB or a byte count")
        size = int(match.group(1)) * {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}[
            match.group(2)
        ]
        if size <= 0:
            raise self.doc.fail(where, "expected a size above zero")
        return size

    def choice(self, *options: str) -> Callable[[Any, tuple[str | int, ...]], str]:
        def kind(value: Any, where: tuple[str | int, ...]) -> str:
            text = self.string(value, where)
            if text not in options:
                raise self.doc.fail(where, f"expected one of {', '.join(options)}, not '{text}'")
            return text

        return kind

    def listen(self, value: Any, where: tuple[str | int, ...]) -> tuple[str, int]:
        text = self.string(value, where)
        host, sep, port = text.rpartition(":")
        host = host.strip("[]")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if host != "localhost":
                raise self.doc.fail(where, "expected HOST:PORT with an IP address") from None
        if not sep or not port.isdigit() or int(port) > 65535:
            raise self.doc.fail(where, "expected HOST:PORT, for example 127.0.0.1:6432")
        return host, int(port)

    # sections ----------------------------------------------------------------------------
    def config(self, top: _Section) -> Config:
        version = top.get("version", lambda v, w: v, 1)
        if version != 1:
            raise self.doc.fail(("version",), "this Gatewatch reads policies version 1")
        engine = self.engine(top.section("engine", "engine settings"))
        identities = self.identities(top.get("identities", self.list_of("identity"), []))
        oidc = self.identity(top.section("identity", "identity providers"))
        # With an OpenID provider, people and agents are named by their tokens: a policy may
        # name one the file does not list.
        self.names_are_open = oidc is not None
        connections = self.connections(
            top.get("connections", self.list_of("connection"), []), identities
        )
        guardrails = self.guardrails(top.section("guardrails", "guardrail settings"), identities)
        rules = self.rules(top.get("rules", self.list_of("rule"), []), identities, connections)
        masking = self.masking(top.get("masking", self.list_of("masking rule"), []),
                               identities, connections)
        top.done()
        return Config(self.doc.path, engine, identities, connections, rules, guardrails,
                      masking, oidc=oidc)

    # identity.oidc -------------------------------------------------------------------------
    def identity(self, sec: _Section | None) -> OidcSettings | None:
        if sec is None:
            return None
        oidc = self.oidc(sec.section("oidc", "the OpenID Connect provider"))
        sec.done()
        return oidc

    def oidc(self, sec: _Section | None) -> OidcSettings | None:
        if sec is None:
            return None
        if "issuer" not in sec.data:
            raise self.doc.fail(sec.where, "missing required key 'issuer'")
        issuer = sec.get("issuer", self.string, "")
        if not issuer:  # given but empty (an unset ${VAR:-}): OIDC is off, static tokens only
            return None
        self.issuer_url(issuer, (*sec.where, "issuer"))
        agent = sec.section("agent", "how agent tokens are told apart")
        rule = AgentRule()
        if agent is not None:
            rule = AgentRule(
                claim=agent.get("claim", self.claim, rule.claim),
                values=agent.get("values", self.strings, rule.values),
                vendor_claim=agent.get("vendor_claim", self.claim, rule.vendor_claim),
            )
            agent.done()
        settings = OidcSettings(
            issuer=issuer,
            audiences=sec.need("audiences", self.strings),
            algorithms=sec.get("algorithms", self.algorithms, ("RS256", "ES256")),
            username_claim=sec.get("username_claim", self.claim, "preferred_username"),
            groups_claim=sec.get("groups_claim", self.claim, "groups"),
            clock_skew=sec.get("clock_skew", self.skew, 60.0),
            max_token_bytes=sec.get("max_token_bytes", self.size, 8192),
            jwks_refresh=sec.get("jwks_refresh", self.seconds, 3600.0),
            jwks_cooldown=sec.get("jwks_cooldown", self.seconds, 30.0),
            http_timeout=sec.get("http_timeout", self.seconds, 5.0),
            agent=rule,
            client_id=sec.get("client_id", self.string, None),
            scopes=sec.get("scopes", self.strings, ("openid", "profile", "offline_access")),
            login_token=sec.get("login_token", self.choice("access_token", "id_token"),
                                "access_token"),
            session_grace=sec.get("session_grace", self.seconds, 0.0),
        )
        sec.done()
        if settings.max_token_bytes > 65536:
            raise self.doc.fail((*sec.where, "max_token_bytes"), "at most 64KiB: a token is "
                                "read before it is proven, so its size is capped")
        return settings

    def issuer_url(self, text: str, where: tuple[str | int, ...]) -> None:
        match = re.fullmatch(r"(https?)://(\[[^\]/]+\]|[^/:\s]+)(:\d+)?(/[^\s?#]*)?", text)
        if not match:
            raise self.doc.fail(where, "expected the issuer's URL, such as "
                                "https://login.example.com/realms/corp")
        host = match.group(2).strip("[]")
        if match.group(1) == "http" and host not in _LOOPBACK_HOSTS:
            raise self.doc.fail(where, "the issuer must use https:// (plain http only on "
                                "the loopback address, for demos and tests)")

    def claim(self, value: Any, where: tuple[str | int, ...]) -> str:
        text = self.string(value, where)
        if not re.fullmatch(r"[A-Za-z0-9_:/.-]+", text) or ".." in text:
            raise self.doc.fail(where, f"'{text}' is not a claim name (a dotted path such as "
                                "realm_access.roles reaches into objects)")
        return text

    def strings(self, value: Any, where: tuple[str | int, ...]) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.doc.fail(where, "expected a non-empty list of strings")
        out = tuple(self.string(v, (*where, i)) for i, v in enumerate(value))
        if any(not v for v in out):
            raise self.doc.fail(where, "expected non-empty strings")
        return out

    def algorithms(self, value: Any, where: tuple[str | int, ...]) -> tuple[str, ...]:
        out = self.strings(value, where)
        for i, alg in enumerate(out):
            if alg.lower() == "none" or alg.upper().startswith("HS"):
                raise self.doc.fail((*where, i), f"{alg} is refused: only asymmetric "
                                    f"signatures ({', '.join(OIDC_ALGORITHMS)})")
            if alg not in OIDC_ALGORITHMS:
                raise self.doc.fail((*where, i), f"unknown algorithm {alg!r} (expected one of "
                                    f"{', '.join(OIDC_ALGORITHMS)})")
        return out

    def skew(self, value: Any, where: tuple[str | int, ...]) -> float:
        seconds = 0.0 if value == 0 or value == "0s" else self.seconds(value, where)
        if seconds > 600:
            raise self.doc.fail(where, "at most 10m: a larger skew keeps expired tokens alive")
        return seconds

    def guardrails(self, sec: _Section | None,
                   identities: tuple[IdentityConfig, ...]) -> GuardrailSettings:
        if sec is None:
            return GuardrailSettings()
        approvers = sec.section("approvers", "who may decide approvals and kill sessions")
        groups, people = frozenset({"operators"}), frozenset[str]()
        if approvers is not None:
            groups = approvers.get("groups", self.names, frozenset())
            people = approvers.get("identities", self.names, frozenset())
            approvers.done()
            unknown = people - {i.name for i in identities}
            if unknown and not self.names_are_open:
                raise self.doc.fail((*approvers.where, "identities"),
                                    f"unknown identity {sorted(unknown)[0]!r}")
            if not self.names_are_open:  # with OIDC, groups come from tokens: members unknown
                for group in sorted(groups):
                    if not any(group in i.groups for i in identities):
                        self.doc.warn((*approvers.where, "groups"),
                                      f"no identity is in the approver group '{group}': "
                                      "nobody in it can approve, deny or kill")
        settings = GuardrailSettings(
            fallback=sec.get("fallback", self.choice(*ACTIONS), "block"),
            review_timeout=sec.get("review_timeout", self.seconds, 300.0),
            approver_groups=groups,
            approver_identities=people,
            min_approvals=sec.get("min_approvals", self.positive, 1),
            cache_size=sec.get("cache_size", self.positive, 10_000),
            webhook=sec.get("webhook", self.url, None),
        )
        sec.done()
        return settings

    def url(self, value: Any, where: tuple[str | int, ...]) -> str | None:
        text = self.string(value, where)
        if not text:
            return None  # an empty value (say, an unset environment variable): no webhook
        if not re.match(r"^https?://[^/\s]+", text):
            raise self.doc.fail(where, "expected an http:// or https:// URL")
        return text

    def auth_methods(self, value: Any, where: tuple[str | int, ...]) -> tuple[str, ...]:
        methods = self.patterns(value, where)
        for i, method in enumerate(methods):
            if method not in ("scram-sha-256", "md5", "password"):
                raise self.doc.fail((*where, i), "expected scram-sha-256, md5 or password")
        return methods

    def boolean(self, value: Any, where: tuple[str | int, ...]) -> bool:
        if not isinstance(value, bool):
            raise self.doc.fail(where, "expected true or false")
        return value

    def positive(self, value: Any, where: tuple[str | int, ...]) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.doc.fail(where, "expected a whole number of at least 1")
        return value

    def patterns(self, value: Any, where: tuple[str | int, ...]) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.doc.fail(where, "expected a non-empty list")
        return tuple(self.string(v, (*where, i)).lower() for i, v in enumerate(value))

    def kinds(self, value: Any, where: tuple[str | int, ...]) -> frozenset[str]:
        out = set()
        for i, item in enumerate(self.patterns(value, where)):
            kind = " ".join(item.upper().split())
            if kind not in STATEMENT_KINDS:
                raise self.doc.fail((*where, i), _closest(kind, STATEMENT_KINDS,
                                                          "statement kind"))
            out.add(kind)
        return frozenset(out)

    def command_kinds(self, value: Any, where: tuple[str | int, ...]) -> frozenset[str]:
        out = set()
        for i, item in enumerate(self.patterns(value, where)):
            kind = " ".join(item.upper().split())
            if kind not in COMMAND_KINDS:
                raise self.doc.fail((*where, i), _closest(kind, COMMAND_KINDS,
                                                          "command kind"))
            out.add(kind)
        return frozenset(out)

    def regex(self, value: Any, where: tuple[str | int, ...]) -> re.Pattern[str]:
        text = self.string(value, where)
        try:
            return re.compile(text)
        except re.error as exc:
            raise self.doc.fail(where, f"not a valid regular expression: {exc}") from exc

    def rules(self, items: list[Any], identities: tuple[IdentityConfig, ...],
              connections: tuple[Connection, ...]) -> tuple[Rule, ...]:
        out: list[Rule] = []
        people = {i.name for i in identities}
        conns = {c.name for c in connections}
        for i, item in enumerate(items):
            where: tuple[str | int, ...] = ("rules", i)
            sec = _Section(self.doc, item, where, "a rule")
            name = sec.need("name", self.name)
            action = sec.need("action", self.choice(*ACTIONS))
            m = sec.section("match", "what the rule matches")
            if m is None:
                raise self.doc.fail(where, "missing required key 'match'")
            match = Match(
                statements=m.get("statements", self.kinds, frozenset()),
                functions=m.get("functions", self.patterns, _NONE),
                tables=m.get("tables", self.patterns, _NONE),
                schemas=frozenset(m.get("schemas", self.patterns, _NONE)),
                access=m.get("access", self.choice("read", "write", "any"), "any"),
                regex=m.get("regex", self.regex, None),
                commands=m.get("commands", self.command_kinds, frozenset()),
                programs=m.get("programs", self.patterns, _NONE),
                paths=m.get("paths", self.patterns, _NONE),
                opaque=m.get("opaque", self.boolean, False),
                rows_over=m.get("rows_over", self.count, None),
            )
            m.done()
            if match.empty():
                raise self.doc.fail(m.where, "a match needs at least one of statements, "
                                    "functions, tables, schemas, commands, programs, opaque "
                                    "or regex")
            if not (match.for_sql() or match.for_commands()):
                raise self.doc.fail(m.where, "a match is either for SQL (statements, "
                                    "functions, tables, schemas) or for shell commands "
                                    "(commands, programs, paths, opaque), not both")
            if match.rows_over is not None and action == "allow":
                raise self.doc.fail((*m.where, "rows_over"), "rows_over holds or refuses "
                                    "writes over a count: the rule's action must be review "
                                    "or block")
            rule = Rule(
                name=name, action=action, match=match,
                connections=sec.get("connections", self.names, None),
                groups=sec.get("groups", self.names, None),
                identities=sec.get("identities", self.names, None),
                message=sec.get("message", self.string, None),
            )
            sec.done()
            self.known_scope(where, rule.connections, conns, rule.identities, people)
            if any(r.name == name for r in out):
                raise self.doc.fail((*where, "name"), f"rule '{name}' is defined twice")
            out.append(rule)
        return tuple(out)

    def known_scope(self, where: tuple[str | int, ...], connections: frozenset[str] | None,
                    conns: set[str], identities: frozenset[str] | None,
                    people: set[str]) -> None:
        """A rule's scope names only connections and identities that exist."""
        for key, noun, known, given in (
            ("connections", "connection", conns, connections),
            ("identities", "identity", people, identities),
        ):
            unknown = (given or frozenset()) - known
            if unknown:
                raise self.doc.fail((*where, key), f"unknown {noun} {sorted(unknown)[0]!r}")

    def masking(self, items: list[Any], identities: tuple[IdentityConfig, ...],
                connections: tuple[Connection, ...]) -> tuple[MaskingRule, ...]:
        out: list[MaskingRule] = []
        people = {i.name for i in identities}
        conns = {c.name for c in connections}
        for i, item in enumerate(items):
            where: tuple[str | int, ...] = ("masking", i)
            sec = _Section(self.doc, item, where, "a masking rule")
            name = sec.need("name", self.name)
            regex = sec.get("regex", self.regex, None)
            rule = MaskingRule(
                name=name,
                detectors=tuple(sec.get("detect", self.detector_names, [])),
                regex=regex.pattern if regex is not None else None,
                columns=sec.get("columns", self.patterns, _NONE),
                strategy=sec.get("strategy", self.choice(*MASKING_STRATEGIES), "redact"),
                keep_first=sec.get("keep_first", self.count, 0),
                keep_last=sec.get("keep_last", self.count, 0),
                exempt=sec.get("exempt", self.boolean, False),
                connections=sec.get("connections", self.names, None),
                groups=sec.get("groups", self.names, None),
                identities=sec.get("identities", self.names, None),
            )
            sec.done()
            if not (rule.exempt or rule.detectors or rule.regex or rule.columns):
                raise self.doc.fail(where, "a masking rule needs detect, regex or columns "
                                    "(or exempt: true)")
            if rule.strategy == "null" and not rule.columns:
                raise self.doc.fail((*where, "strategy"), "null replaces whole columns: it "
                                    "needs columns")
            self.known_scope(where, rule.connections, conns, rule.identities, people)
            if any(r.name == name for r in out):
                raise self.doc.fail((*where, "name"), f"masking rule '{name}' is defined twice")
            out.append(rule)
        return tuple(out)

    def detector_names(self, value: Any, where: tuple[str | int, ...]) -> list[str]:
        names = list(self.patterns(value, where))
        for i, detector in enumerate(names):
            if detector not in DETECTORS:
                raise self.doc.fail((*where, i), f"unknown detector {detector!r} (known: "
                                    f"{', '.join(sorted(DETECTORS))})")
        return names

    def count(self, value: Any, where: tuple[str | int, ...]) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.doc.fail(where, "expected a whole number, 0 or more")
        return value

    def list_of(self, what: str) -> Callable[[Any, tuple[str | int, ...]], list[Any]]:
        def kind(value: Any, where: tuple[str | int, ...]) -> list[Any]:
            if not isinstance(value, list):
                raise self.doc.fail(where, f"expected a list of {what} entries")
            return value

        return kind

    def engine(self, sec: _Section | None) -> EngineSettings:
        if sec is None:
            raise self.doc.fail((), "missing required key 'engine' (store and control_socket)")
        url = sec.need("store", self.string)
        shared = url.startswith(("postgresql://", "postgres://"))
        local = sec.get("local_store", self.path, None)
        if local is not None and not shared:
            raise self.doc.fail((*sec.where, "local_store"),
                                "local_store is for a PostgreSQL store (engine.store: "
                                "postgresql://...); a SQLite store keeps its files beside it")
        settings = EngineSettings(
            store=(local or self.base / "gatewatch-local.db") if shared
            else self.path(url, (*sec.where, "store")),
            store_url=url if shared else None,
            node=sec.get("node", self.name, None),
            workers=sec.get("workers", self.positive, None),
            heartbeat=sec.get("heartbeat", self.seconds, 5.0),
            node_timeout=sec.get("node_timeout", self.seconds, 30.0),
            control_socket=sec.need("control_socket", self.path),
            startup_timeout=sec.get("startup_timeout", self.seconds, 10.0),
            max_message_size=sec.get("max_message_size", self.size, 64 * 1024 * 1024),
            durability=sec.get("durability", self.choice("normal", "full"), "normal"),
            log_level=sec.get(
                "log_level", self.choice("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"
            ),
            masking_key_env=sec.get("masking_key_env", self.string, None),
            masking_value_budget=sec.get("masking_value_budget", self.seconds, 5.0),
            metrics=self.metrics(sec.section("metrics", "the metrics endpoint")),
            audit_stream=self.audit_stream(sec.section("audit_stream", "the audit stream")),
        )
        sec.done()
        return settings

    def metrics(self, sec: _Section | None) -> MetricsSettings | None:
        if sec is None:
            return None
        host, port = sec.need("listen", self.listen)
        sec.done()
        return MetricsSettings(host, port)

    def audit_stream(self, sec: _Section | None) -> AuditStreamSettings | None:
        if sec is None:
            return None
        sink = sec.need("sink", self.choice("file", "syslog"))
        host, port = "127.0.0.1", 514
        if sink == "syslog":
            host, port = sec.need("address", self.address)
        elif "address" in sec.data:
            raise self.doc.fail((*sec.where, "address"), "address is for sink: syslog")
        path = sec.need("path", self.path) if sink == "file" else None
        if sink != "file" and "path" in sec.data:
            raise self.doc.fail((*sec.where, "path"), "path is for sink: file")
        settings = AuditStreamSettings(
            sink=sink, path=path,
            max_size=sec.get("max_size", self.size, 64 * 1024 * 1024),
            keep=sec.get("keep", self.positive, 5),
            host=host, port=port,
            transport=sec.get("transport", self.choice("udp", "tcp"), "udp"),
            queue=sec.get("queue", self.positive, 10_000),
            app_name=sec.get("app_name", self.name, "gatewatch"),
        )
        sec.done()
        return settings

    def address(self, value: Any, where: tuple[str | int, ...]) -> tuple[str, int]:
        """HOST:PORT where HOST may be a name (a SIEM's collector)."""
        text = self.string(value, where)
        host, sep, port = text.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
            raise self.doc.fail(where, "expected HOST:PORT, for example siem.example.com:514")
        return host, int(port)

    def identities(self, items: list[Any]) -> tuple[IdentityConfig, ...]:
        out: list[IdentityConfig] = []
        for i, item in enumerate(items):
            sec = _Section(self.doc, item, ("identities", i), "an identity")
            ident = IdentityConfig(
                name=sec.need("name", self.name),
                groups=sec.get("groups", self.names, frozenset()),
                kind=sec.get("kind", self.choice("person", "agent"), "person"),
                token_sha256=sec.get("token_sha256", self.sha256, None),
                token_env=sec.get("token_env", self.string, None),
                ssh_keys=tuple(sec.get("ssh_keys", self.public_keys, [])),
            )
            if (ident.token_sha256 is None) == (ident.token_env is None):
                raise self.doc.fail(
                    ("identities", i),
                    "give exactly one of token_sha256 or token_env (never a plaintext token)",
                )
            sec.done()
            if any(o.name == ident.name for o in out):
                raise self.doc.fail(("identities", i, "name"), f"identity '{ident.name}' twice")
            out.append(ident)
        return tuple(out)

    def sha256(self, value: Any, where: tuple[str | int, ...]) -> str:
        text = self.string(value, where).lower()
        if not re.fullmatch(r"[0-9a-f]{64}", text):
            raise self.doc.fail(where, "expected the hex SHA-256 of the token (64 hex digits)")
        return text

    def connections(
        self, items: list[Any], identities: tuple[IdentityConfig, ...]
    ) -> tuple[Connection, ...]:
        out: list[Connection] = []
        known = {i.name for i in identities}
        for i, item in enumerate(items):
            where: tuple[str | int, ...] = ("connections", i)
            sec = _Section(self.doc, item, where, "a connection")
            name = sec.need("name", self.name)
            kind = sec.need("kind", self.choice("postgres", "ssh"))
            host, port = sec.need("listen", self.listen)
            # ``tls: optional``: tokens may come in clear from other hosts too (said explicitly)
            tls_optional = sec.get("tls", lambda v, w: v, None) == "optional"
            tls = None if tls_optional else self.tls(
                sec.section("tls", "TLS certificate and key, or optional"))
            up = sec.section("upstream", "the target")
            if up is None:
                raise self.doc.fail(where, "missing required key 'upstream'")
            upstream = self.upstream(up) if kind == "postgres" else self.ssh_upstream(up)
            ssh = None
            if kind == "ssh":
                ssh = self.ssh_settings(sec.section("ssh", "SSH settings"))
            elif "ssh" in sec.data:
                raise self.doc.fail((*where, "ssh"), "ssh settings are for kind: ssh")
            databases = sec.get("databases", self.names, None)
            access = sec.section("access", "just-in-time access")
            access_approval, access_grant = False, 3600.0
            if access is not None:
                access_approval = access.get("approval", self.boolean, False)
                access_grant = access.get("grant", self.seconds, 3600.0)
                access.done()
            allow = sec.section("allow", "who may use this connection")
            groups: frozenset[str] = frozenset()
            people: frozenset[str] = frozenset()
            if allow is not None:
                groups = allow.get("groups", self.names, frozenset())
                people = allow.get("identities", self.names, frozenset())
                allow.done()
                unknown = people - known
                if unknown and not self.names_are_open:
                    raise self.doc.fail(
                        (*where, "allow", "identities"),
                        f"unknown identity {sorted(unknown)[0]!r}",
                    )
            sec.done()
            if any(o.name == name for o in out):
                raise self.doc.fail((*where, "name"), f"connection '{name}' is defined twice")
            if any((o.listen_host, o.listen_port) == (host, port) for o in out if port):
                raise self.doc.fail((*where, "listen"), f"{host}:{port} is used twice")
            out.append(
                Connection(
                    name=name,
                    kind=kind,
                    listen_host=host,
                    listen_port=port,
                    upstream=upstream,
                    tls=tls,
                    tls_optional=tls_optional,
                    databases=tuple(sorted(databases)) if databases is not None else None,
                    allow_groups=groups,
                    allow_identities=people,
                    access_approval=access_approval,
                    access_grant=access_grant,
                    ssh=ssh,
                )
            )
        return tuple(out)

    def ssh_upstream(self, sec: _Section) -> Upstream:
        upstream = Upstream(
            host=sec.need("host", self.string),
            port=sec.get("port", self.port, 22),
            user=sec.need("user", self.string),
            password_env=sec.get("password_env", self.string, None),
            password_file=sec.get("password_file", self.path, None),
            key_file=sec.get("key_file", self.path, None),
            known_hosts=sec.need("known_hosts", self.path),
            connect_timeout=sec.get("connect_timeout", self.seconds, 10.0),
        )
        if "password" in sec.data:
            raise self.doc.fail(
                (*sec.where, "password"),
                "target passwords never go in this file: use password_env or password_file",
            )
        given = [k for k in ("password_env", "password_file", "key_file") if k in sec.data]
        if len(given) != 1:
            raise self.doc.fail(sec.where, "give exactly one target credential: key_file, "
                                "password_env or password_file")
        sec.done()
        return upstream

    def ssh_settings(self, sec: _Section | None) -> SshSettings:
        if sec is None:
            return SshSettings()
        forwards: list[Forward] = []
        items: list[Any] = sec.get("forward", self.list_of("forward"), [])
        for i, item in enumerate(items):
            fw = _Section(self.doc, item, (*sec.where, "forward", i), "a forward destination")
            ports = fw.get("ports", self.port_list, None)
            forwards.append(Forward(fw.need("to", self.network), ports))
            fw.done()
        settings = SshSettings(
            host_key=sec.get("host_key", self.optional_path, None),
            shell=sec.get("shell", self.boolean, True),
            forward=tuple(forwards),
            max_channels=sec.get("max_channels", self.positive, 10),
            login_attempts=sec.get("login_attempts", self.positive, 3),
            login_grace=sec.get("login_grace", self.seconds, 30.0),
            max_unauthenticated=sec.get("max_unauthenticated", self.positive, 10),
            interactive=sec.get("interactive", self.choice("strict", "lenient"), "lenient"),
            transfers=sec.get("transfers", self.choice("mask", "refuse", "allow"), "mask"),
        )
        sec.done()
        return settings

    def optional_path(self, value: Any, where: tuple[str | int, ...]) -> Path | None:
        return self.path(value, where) if self.string(value, where) else None

    def network(self, value: Any, where: tuple[str | int, ...]) -> Any:
        try:
            return ipaddress.ip_network(self.string(value, where), strict=False)
        except ValueError as exc:
            raise self.doc.fail(where, f"expected an address or CIDR network: {exc}") from exc

    def port_list(self, value: Any, where: tuple[str | int, ...]) -> frozenset[int]:
        if not isinstance(value, list) or not value:
            raise self.doc.fail(where, "expected a list of ports")
        return frozenset(self.port(v, (*where, i)) for i, v in enumerate(value))

    def public_keys(self, value: Any, where: tuple[str | int, ...]) -> list[str]:
        if not isinstance(value, list):
            raise self.doc.fail(where, "expected a list of OpenSSH public keys")
        out = []
        for i, item in enumerate(value):
            text = " ".join(self.string(item, (*where, i)).split())
            parts = text.split(" ")
            if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-", "sk-")):
                raise self.doc.fail((*where, i), "expected an OpenSSH public key line "
                                    "(ssh-ed25519 AAAA… comment)")
            out.append(text)
        return out

    def tls(self, sec: _Section | None) -> TlsFiles | None:
        if sec is None:
            return None
        cert = sec.get("cert", self.string, "")
        key = sec.get("key", self.string, "")
        sec.done()
        if not cert and not key:
            return None  # both empty (for example unset environment variables): TLS off
        if not cert or not key:
            raise self.doc.fail(sec.where, "give both cert and key, or neither")
        return TlsFiles(self.path(cert, (*sec.where, "cert")), self.path(key, (*sec.where, "key")))

    def upstream(self, sec: _Section) -> Upstream:
        upstream = Upstream(
            host=sec.need("host", self.string),
            port=sec.get("port", self.port, 5432),
            user=sec.need("user", self.string),
            password_env=sec.get("password_env", self.string, None),
            password_file=sec.get("password_file", self.path, None),
            sslmode=sec.get("sslmode", self.choice(*SSLMODES), "prefer"),
            sslrootcert=sec.get("sslrootcert", self.path, None),
            connect_timeout=sec.get("connect_timeout", self.seconds, 10.0),
            auth=sec.get("auth", self.auth_methods, ("scram-sha-256",)),
        )
        if "password" in sec.data:
            raise self.doc.fail(
                (*sec.where, "password"),
                "target passwords never go in this file: use password_env or password_file",
            )
        if upstream.password_env and upstream.password_file:
            raise self.doc.fail(sec.where, "give password_env or password_file, not both")
        sec.done()
        return upstream


def token_digest(token: str) -> str:
    """What ``token_sha256`` holds for a token."""
    return hashlib.sha256(token.encode()).hexdigest()
