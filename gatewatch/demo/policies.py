"""The demo's own policies file: the example (or ``demo -c FILE``) with the sandbox filled in.

Each ``gatewatch demo`` writes the policies file it runs into its own directory, and the engine
loads that file, not the example: what the demo runs and what ``gatewatch sessions -c FILE``
reads from another terminal are then the same file. Written into it, in place of what the
example takes from the environment:

- ``engine.store`` and ``engine.control_socket`` in the sandbox, whatever ``GATEWATCH_STORE``
  or ``GATEWATCH_CONTROL`` say: two demos never share a store;
- every identity's token as the SHA-256 of one the demo made at start (``token_sha256``): no
  token whose plaintext exists anywhere else is accepted, and the file holds no secret;
- every connection on a free loopback port, pointed at the demo's targets, with the target
  credentials as ``password_file`` (files in the sandbox, never their contents);
- the OpenID issuer, the TLS certificate and the SSH target's known hosts.

What the example still takes from the environment (``${NAME:-default}``) is resolved as it
stands now, and relative paths are made absolute from the example's directory, so that the file
reads the same from any terminal. The YAML is rewritten node by node (comments are lost; each
value keeps its quoting, so that it is typed as the loader would have typed it in the example).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.resolver import Resolver

# ${NAME} or ${NAME:-default}, as engine.config.load reads them.
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# How YAML types a plain scalar (PyYAML's resolver is untyped).
_RESOLVER: Any = Resolver()
_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
# Keys whose values are paths, which the loader takes relative to the policies file.
_PATH_KEYS = frozenset({"store", "control_socket", "cert", "key", "known_hosts",
                        "password_file", "key_file", "sslrootcert", "host_key"})
_CREDENTIAL_KEYS = ("password", "password_env", "password_file", "key_file")
_TOKEN_KEYS = ("token", "token_env", "token_sha256")


class PoliciesError(Exception):
    """The policies file cannot be made into the demo's; one line naming the file."""


@dataclass(frozen=True)
class Target:
    """Where a connection's target is, and the file holding the gateway's password for it."""

    host: str
    port: int
    user: str
    password_file: Path


@dataclass(frozen=True)
class Sandbox:
    """What the demo fills in (see the module's docstring)."""

    store: Path
    control_socket: Path
    tokens: Mapping[str, str]          # identity -> token; only the digest is written
    listen: Mapping[str, str]          # connection -> "127.0.0.1:PORT"
    postgres: Target
    ssh: Target
    ssh_known_hosts: Path
    tls: tuple[Path, Path]             # certificate and key towards PostgreSQL clients
    oidc_issuer: str
    metrics_listen: str | None = None  # engine.metrics.listen, "127.0.0.1:PORT"
    store_url: str | None = None       # a PostgreSQL store; ``store`` is then the node's file
    node: str | None = None            # engine.node
    workers: int | None = None         # engine.workers; None: the default (the cores)


class DemoPolicies:
    """A policies file read as YAML nodes; ``write()`` puts the demo's copy of it on disk."""

    def __init__(self, source: Path) -> None:
        self.source = source
        try:
            root = yaml.compose(source.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
        except OSError as exc:
            raise PoliciesError(f"{source}: cannot read the policies file: {exc.strerror}"
                                ) from exc
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise PoliciesError(f"{source}: not a policies file: {exc}") from exc
        if not isinstance(root, yaml.MappingNode):
            raise PoliciesError(f"{source}: not a policies file (expected a mapping)")
        self._root = root
        self.identities = [_text(_get(item, "name")) for item in _items(root, "identities")]
        self.connections = [(_text(_get(item, "name")), _text(_get(item, "kind")))
                            for item in _items(root, "connections")]

    def first(self, kind: str) -> str:
        """The name of the first connection of ``kind`` (postgres or ssh)."""
        for name, connection_kind in self.connections:
            if connection_kind == kind:
                return name
        raise PoliciesError(f"{self.source}: the demo needs a connection of kind: {kind}")

    def write(self, dest: Path, sandbox: Sandbox) -> None:
        """Write the demo's policies file to ``dest`` (created 0600, never overwritten)."""
        root = self._root
        engine = _get(root, "engine")
        if not isinstance(engine, yaml.MappingNode):
            raise PoliciesError(f"{self.source}: no engine section")
        if sandbox.store_url is not None:
            _put(engine, "store", _string(sandbox.store_url))
            _put(engine, "local_store", _string(str(sandbox.store)))
        else:
            _put(engine, "store", _string(str(sandbox.store)))
        if sandbox.node is not None:
            _put(engine, "node", _string(sandbox.node))
        if sandbox.workers is not None:
            _put(engine, "workers", _number(sandbox.workers))
        _put(engine, "control_socket", _string(str(sandbox.control_socket)))
        if sandbox.metrics_listen is not None:
            _put(engine, "metrics", yaml.MappingNode("tag:yaml.org,2002:map", [(
                yaml.ScalarNode(_STR, "listen"), _string(sandbox.metrics_listen))]))
        for item in _items(root, "identities"):
            name = _text(_get(item, "name"))
            _drop(item, *_TOKEN_KEYS)
            digest = hashlib.sha256(sandbox.tokens[name].encode()).hexdigest()
            _put(item, "token_sha256", _string(digest))
        for item in _items(root, "connections"):
            self._connection(item, sandbox)
        oidc = _get(_get(root, "identity"), "oidc")
        if isinstance(oidc, yaml.MappingNode):
            _put(oidc, "issuer", _string(sandbox.oidc_issuer))
        self._resolve(root)
        text = (f"# Written by `gatewatch demo` from {self.source.resolve()}, for this demo only.\n"
                "# Tokens are SHA-256 digests of tokens made at start; target passwords are in\n"
                "# the files that password_file names. Removed when the demo stops.\n"
                + yaml.serialize(root, Dumper=yaml.SafeDumper, width=100))
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)

    def _connection(self, item: yaml.Node, sandbox: Sandbox) -> None:
        name, kind = _text(_get(item, "name")), _text(_get(item, "kind"))
        assert isinstance(item, yaml.MappingNode)
        _put(item, "listen", _string(sandbox.listen[name]))
        upstream = _get(item, "upstream")
        if not isinstance(upstream, yaml.MappingNode):
            raise PoliciesError(f"{self.source}: connection {name} has no upstream mapping")
        target = sandbox.postgres if kind == "postgres" else sandbox.ssh
        _put(upstream, "host", _string(target.host))
        _put(upstream, "port", _number(target.port))
        _put(upstream, "user", _string(target.user))
        _drop(upstream, *_CREDENTIAL_KEYS)
        _put(upstream, "password_file", _string(str(target.password_file)))
        if kind == "postgres":
            cert, key = sandbox.tls
            tls = yaml.MappingNode("tag:yaml.org,2002:map", [])
            _put(tls, "cert", _string(str(cert)))
            _put(tls, "key", _string(str(key)))
            _put(item, "tls", tls)
        else:
            _put(upstream, "known_hosts", _string(str(sandbox.ssh_known_hosts)))

    def _resolve(self, node: yaml.Node, key: str | None = None) -> None:
        """Interpolate what is left of ``${NAME}``; make relative paths absolute."""
        if isinstance(node, yaml.MappingNode):
            for key_node, value in node.value:
                self._resolve(value, key_node.value)
        elif isinstance(node, yaml.SequenceNode):
            for value in node.value:
                self._resolve(value, None)
        elif isinstance(node, yaml.ScalarNode):
            text = self._interpolate(node)
            if (key in _PATH_KEYS and text and "://" not in text
                    and not Path(text).is_absolute()):
                text = str(self.source.parent.resolve() / text)
            if text != node.value:
                node.value = text
                if not node.style:  # stays plain: typed by the loader as in the example
                    node.tag = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))

    def _interpolate(self, node: yaml.ScalarNode) -> str:
        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            value = os.environ.get(name)
            if value is None or (value == "" and default is not None):
                if default is None:
                    raise PoliciesError(f"{self.source}:{node.start_mark.line + 1}: "
                                        f"environment variable {name} is not set")
                return default
            return value

        return _ENV.sub(sub, str(node.value))


def _items(root: yaml.Node, key: str) -> list[yaml.MappingNode]:
    node = _get(root, key)
    if node is None:
        return []
    if not isinstance(node, yaml.SequenceNode) or not all(
            isinstance(item, yaml.MappingNode) for item in node.value):
        raise PoliciesError(f"line {node.start_mark.line + 1}: {key}: expected a list of "
                            "mappings")
    return list(node.value)


def _get(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value in node.value:
        if key_node.value == key:
            return value  # type: ignore[no-any-return]
    return None


def _put(node: yaml.MappingNode, key: str, value: yaml.Node) -> None:
    for i, (key_node, _) in enumerate(node.value):
        if key_node.value == key:
            node.value[i] = (key_node, value)
            return
    node.value.append((yaml.ScalarNode(_STR, key), value))


def _drop(node: yaml.MappingNode, *keys: str) -> None:
    node.value = [(k, v) for k, v in node.value if k.value not in keys]


def _text(node: yaml.Node | None) -> str:
    if not isinstance(node, yaml.ScalarNode):
        line = node.start_mark.line + 1 if node is not None else "?"
        raise PoliciesError(f"line {line}: expected a name")
    return str(node.value)


def _string(value: str) -> yaml.ScalarNode:
    """A quoted scalar: a string to the loader, whatever it looks like (a path, a digest)."""
    return yaml.ScalarNode(_STR, value, style='"')


def _number(value: int) -> yaml.ScalarNode:
    return yaml.ScalarNode(_INT, str(value))
