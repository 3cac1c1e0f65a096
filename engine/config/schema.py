"""A JSON Schema of the policies file, for editors (yaml-language-server validates and completes
with it): `gatewatch policy schema` prints it, `deploy/policies.schema.json` holds it.

It describes the keys `load.py` reads, with their types and choices; the loader stays the
judge (it checks what a schema cannot: names that must exist, rules that must make sense). A
test keeps the two in step: every key the loader reads while loading the example and the
test policies is in the schema at the same place, and the committed file is this one.
"""

from __future__ import annotations

import json
from typing import Any

from engine.config.load import SSLMODES
from engine.guardrail.rules import ACTIONS
from engine.masking.detectors import BUILTIN as DETECTORS
from engine.masking.strategies import KINDS as MASKING_STRATEGIES

Schema = dict[str, Any]

# Any value may be ${VAR} or ${VAR:-default}, substituted when the file is read.
_VARIABLE: Schema = {"type": "string", "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}"}


def _or_variable(schema: Schema) -> Schema:
    return {"anyOf": [schema, _VARIABLE]}


_DURATION = _or_variable({"anyOf": [
    {"type": "number", "exclusiveMinimum": 0},
    {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)\s*$"}],
    "description": "seconds, or a duration such as 500ms, 10s, 2m, 1h"})
_SIZE = _or_variable({"anyOf": [
    {"type": "integer", "minimum": 1},
    {"type": "string", "pattern": r"^\s*\d+\s*(B|KiB|MiB|GiB|kB|MB|GB)?\s*$"}],
    "description": "bytes, or a size such as 64MiB"})
_STRING: Schema = {"type": "string"}
_NAMES: Schema = {"type": "array", "items": {"type": "string"}}
_BOOL = _or_variable({"type": "boolean"})
_POSITIVE = _or_variable({"type": "integer", "minimum": 1})
_COUNT = _or_variable({"type": "integer", "minimum": 0})
_LISTEN: Schema = {"type": "string", "description": "HOST:PORT (port 0: any free port)"}
_PORT = _or_variable({"type": "integer", "minimum": 1, "maximum": 65535})


def _choice(*options: str) -> Schema:
    return _or_variable({"enum": list(options)})


def _object(properties: dict[str, Schema], required: tuple[str, ...] = (),
            description: str | None = None) -> Schema:
    out: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        out["required"] = list(required)
    if description:
        out["description"] = description
    return out


def _scope() -> dict[str, Schema]:
    return {"connections": _NAMES, "groups": _NAMES, "identities": _NAMES}


def schema() -> Schema:
    """The schema of a policies file (JSON Schema draft 2020-12)."""
    upstream_common = {
        "host": _STRING, "port": _PORT, "user": _STRING, "password_env": _STRING,
        "password_file": _STRING, "connect_timeout": _DURATION,
    }
    pg_upstream = _object({
        **upstream_common,
        "sslmode": _choice(*SSLMODES),
        "sslrootcert": _STRING,
        "auth": {"type": "array", "items": _choice("scram-sha-256", "md5", "password")},
    }, ("host", "user"), "the PostgreSQL target and the credential the gateway holds")
    ssh_upstream = _object({**upstream_common, "key_file": _STRING, "known_hosts": _STRING},
                           ("host", "user", "known_hosts"),
                           "the SSH target and the credential the gateway holds")
    ssh = _object({
        "host_key": _STRING, "shell": _BOOL,
        "forward": {"type": "array", "items": _object(
            {"to": _STRING, "ports": {"type": "array", "items": _PORT}}, ("to",))},
        "max_channels": _POSITIVE, "login_attempts": _POSITIVE, "login_grace": _DURATION,
        "max_unauthenticated": _POSITIVE, "interactive": _choice("strict", "lenient"),
        "transfers": _choice("mask", "refuse", "allow"),
    }, description="SSH settings of an ssh connection")
    connection = _object({
        "name": _STRING, "kind": _choice("postgres", "ssh"), "listen": _LISTEN,
        "tls": {"anyOf": [_choice("optional"), _object({"cert": _STRING, "key": _STRING})],
                "description": "TLS towards clients, or `optional` (tokens in clear from other"
                               " hosts too)"},
        "upstream": {"anyOf": [pg_upstream, ssh_upstream]},
        "ssh": ssh,
        "databases": _NAMES,
        "access": _object({"approval": _BOOL, "grant": _DURATION},
                          description="just-in-time access"),
        "allow": _object({"groups": _NAMES, "identities": _NAMES},
                         description="who may use this connection"),
    }, ("name", "kind", "listen", "upstream"))
    identity = _object({
        "name": _STRING, "groups": _NAMES, "kind": _choice("person", "agent"),
        "token_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "token_env": _STRING, "ssh_keys": _NAMES,
    }, ("name",))
    oidc = _object({
        "issuer": _STRING, "audiences": _NAMES,
        "algorithms": _NAMES, "username_claim": _STRING, "groups_claim": _STRING,
        "clock_skew": _DURATION, "max_token_bytes": _SIZE, "jwks_refresh": _DURATION,
        "jwks_cooldown": _DURATION, "http_timeout": _DURATION, "client_id": _STRING,
        "scopes": _NAMES, "login_token": _choice("access_token", "id_token"),
        "session_grace": _DURATION,
        "agent": _object({"claim": _STRING, "values": _NAMES, "vendor_claim": _STRING}),
    }, description="sign-in through the corporate OpenID Connect provider")
    engine = _object({
        "store": {"type": "string",
                  "description": "a SQLite file, or postgresql://USER@HOST:PORT/DB (the "
                                 "password through ${VAR} or libpq's environment)"},
        "local_store": _STRING, "node": _STRING, "workers": _POSITIVE,
        "heartbeat": _DURATION, "node_timeout": _DURATION,
        "control_socket": _STRING, "startup_timeout": _DURATION,
        "max_message_size": _SIZE, "durability": _choice("normal", "full"),
        "log_level": _choice("DEBUG", "INFO", "WARNING", "ERROR"),
        "masking_key_env": _STRING, "masking_value_budget": _DURATION,
        "metrics": _object({"listen": _LISTEN}, ("listen",)),
        "audit_stream": _object({
            "sink": _choice("file", "syslog"), "path": _STRING, "address": _LISTEN,
            "max_size": _SIZE, "keep": _POSITIVE, "transport": _choice("udp", "tcp"),
            "queue": _POSITIVE, "app_name": _STRING,
        }, ("sink",)),
    }, ("store", "control_socket"))
    guardrails = _object({
        "fallback": _choice(*ACTIONS), "review_timeout": _DURATION,
        "approvers": _object({"groups": _NAMES, "identities": _NAMES}),
        "min_approvals": _POSITIVE, "cache_size": _POSITIVE, "webhook": _STRING,
    })
    match = _object({
        "statements": _NAMES, "functions": _NAMES, "tables": _NAMES, "schemas": _NAMES,
        "access": _choice("read", "write", "any"), "regex": _STRING, "commands": _NAMES,
        "programs": _NAMES, "paths": _NAMES, "opaque": _BOOL, "rows_over": _COUNT,
    }, description="every key given must hold; any entry of a list may")
    rule = _object({"name": _STRING, "action": _choice(*ACTIONS), "match": match,
                    **_scope(), "message": _STRING}, ("name", "action", "match"))
    masking_rule = _object({
        "name": _STRING, "regex": _STRING, "detect": {"type": "array",
                                                      "items": _choice(*sorted(DETECTORS))},
        "columns": _NAMES, "strategy": _choice(*MASKING_STRATEGIES), "keep_first": _COUNT,
        "keep_last": _COUNT, "exempt": _BOOL, **_scope(),
    }, ("name",))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://gatewatch.invalid/policies.schema.json",
        "title": "Gatewatch policies file",
        **_object({
            "version": {"const": 1},
            "engine": engine,
            "identities": {"type": "array", "items": identity},
            "identity": _object({"oidc": oidc}),
            "connections": {"type": "array", "items": connection},
            "guardrails": guardrails,
            "rules": {"type": "array", "items": rule},
            "masking": {"type": "array", "items": masking_rule},
        }),
    }


def schema_text() -> str:
    return json.dumps(schema(), indent=2, sort_keys=False) + "\n"
