"""Guardrail settings and rules in ``policies.yaml``: what loads, and errors as FILE:LINE: key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.config import ConfigError, load_config
from engine.guardrail import Guard, GuardrailSettings, Rule

BASE = """\
version: 1
engine:
  store: gatewatch.db
  control_socket: control.sock
identities:
  - name: alice
    groups: [engineering]
    token_env: ALICE_TOKEN
  - name: oncall
    groups: [operators]
    token_env: ONCALL_TOKEN
connections:
  - name: shop
    kind: postgres
    listen: 127.0.0.1:6432
    upstream:
      host: db.internal
      user: gatewatch
      password_env: SHOP_PASSWORD
"""

VALID = BASE + """\
guardrails:
  fallback: review
  review_timeout: 90s
  approvers:
    groups: [operators]
    identities: [oncall]
  min_approvals: 2
  cache_size: 50
rules:
  - name: no-drop
    action: block
    match:
      statements: [drop, "alter   system", Create Function Untrusted]
    message: Use a reviewed migration.
  - name: review-customer-writes
    action: review
    match:
      tables: [Public.Customers, "cust*"]
      schemas: [Audit]
      functions: [DBLINK*]
      access: write
      regex: "(?i)pg_sleep"
    connections: [shop]
    groups: [engineering]
    identities: [alice]
  - name: allow-rest
    action: allow
    match: {regex: "."}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policies.yaml"
    path.write_text(text)
    return path


def line_of(text: str, needle: str) -> int:
    found = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(found) == 1, (needle, found)
    return found[0]


def assert_error(tmp_path: Path, text: str, line: int, key: str, reason: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    prefix = f"{path}:{line}: {key}: "
    assert message.startswith(prefix), f"{message!r} does not start with {prefix!r}"
    assert re.search(reason, message[len(prefix):]), message


# --- what loads ----------------------------------------------------------------------------


def test_valid_rules_load_in_order(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))
    assert all(isinstance(r, Rule) for r in config.rules)
    assert [r.name for r in config.rules] == ["no-drop", "review-customer-writes", "allow-rest"]
    assert [r.action for r in config.rules] == ["block", "review", "allow"]

    drop, writes, rest = config.rules
    # Kinds are normalised to the vocabulary: upper case, single spaces.
    assert drop.match.statements == {"DROP", "ALTER SYSTEM", "CREATE FUNCTION UNTRUSTED"}
    assert drop.message == "Use a reviewed migration."
    assert (drop.connections, drop.groups, drop.identities) == (None, None, None)
    assert drop.match.access == "any"
    assert drop.match.regex is None

    # Names are matched in lower case, as the classifier reports them.
    assert writes.match.tables == ("public.customers", "cust*")
    assert writes.match.schemas == {"audit"}
    assert writes.match.functions == ("dblink*",)
    assert writes.match.access == "write"
    assert writes.match.regex is not None
    assert writes.match.regex.pattern == "(?i)pg_sleep"
    assert writes.connections == {"shop"}
    assert writes.groups == {"engineering"}
    assert writes.identities == {"alice"}
    assert writes.message is None

    assert rest.match.regex is not None
    assert rest.match.statements == frozenset()


def test_valid_guardrail_settings(tmp_path: Path) -> None:
    settings = load_config(write(tmp_path, VALID)).guardrails
    assert settings.fallback == "review"
    assert settings.review_timeout == 90.0
    assert settings.approver_groups == {"operators"}
    assert settings.approver_identities == {"oncall"}
    assert settings.min_approvals == 2
    assert settings.cache_size == 50


def test_loaded_rules_judge(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))
    guard = Guard(config.rules, config.guardrails)
    alice = guard.for_session("shop", "alice", frozenset({"engineering"}))
    oncall = guard.for_session("shop", "oncall", frozenset({"operators"}))
    every_key = ("WITH a AS (INSERT INTO audit.log VALUES (1)) UPDATE customers "
                 "SET v = pg_sleep(1) FROM dblink('x', 'y') AS d(i int) WHERE id = 1")
    assert alice.judge("DROP TABLE x").rule == "no-drop"
    assert alice.judge(every_key).rule == "review-customer-writes"
    # One key short (no write to the audit schema): the rule does not match.
    assert alice.judge(every_key.replace("audit.log", "log")).rule == "allow-rest"
    # Outside the rule's scope.
    assert oncall.judge(every_key).rule == "allow-rest"


def test_no_guardrails_and_no_rules(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE))
    assert config.rules == ()
    assert config.guardrails == GuardrailSettings()
    assert config.guardrails.fallback == "block"
    config = load_config(write(tmp_path, BASE + "rules: []\n"))
    assert config.rules == ()


def test_approvers_default_to_operators(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE + "guardrails:\n  fallback: block\n"))
    assert config.guardrails.approver_groups == {"operators"}
    assert config.guardrails.approver_identities == frozenset()


# --- rule errors ---------------------------------------------------------------------------

ONE_RULE = BASE + """\
rules:
  - name: r1
    action: block
    match:
      statements:
        - DROP
        - DROPP TABLE
"""


def test_unknown_statement_kind(tmp_path: Path) -> None:
    assert_error(tmp_path, ONE_RULE, line_of(ONE_RULE, "DROPP"), "rules.0.match.statements.1",
                 r"^unknown statement kind 'DROPP TABLE' \(did you mean: DROP TABLE,")


def test_empty_statement_list(tmp_path: Path) -> None:
    text = BASE + "rules:\n  - name: r1\n    action: block\n    match:\n      statements: []\n"
    assert_error(tmp_path, text, line_of(text, "statements: []"), "rules.0.match.statements",
                 "expected a non-empty list")


def test_invalid_regex(tmp_path: Path) -> None:
    text = BASE + ("rules:\n  - name: r1\n    action: block\n    match:\n"
                   "      regex: \"(unclosed\"\n")
    assert_error(tmp_path, text, line_of(text, "regex:"), "rules.0.match.regex",
                 "^not a valid regular expression: missing \\)")


def test_rule_without_match(tmp_path: Path) -> None:
    text = BASE + "rules:\n  - name: r1\n    action: block\n    message: nothing to match\n"
    assert_error(tmp_path, text, line_of(text, "- name: r1"), "rules.0",
                 "missing required key 'match'")


@pytest.mark.parametrize("match", ["match: {}", "match: {access: write}"])
def test_rule_with_empty_match(tmp_path: Path, match: str) -> None:
    text = BASE + f"rules:\n  - name: r1\n    action: block\n    {match}\n"
    assert_error(tmp_path, text, line_of(text, "match:"), "rules.0.match",
                 "a match needs at least one of statements, functions, tables, schemas, "
                 "commands, programs, opaque or regex")


def test_rule_mixing_sql_and_shell_criteria(tmp_path: Path) -> None:
    text = BASE + ("rules:\n  - name: r1\n    action: block\n"
                   "    match: {statements: [DROP], commands: [MKFS]}\n")
    assert_error(tmp_path, text, line_of(text, "match:"), "rules.0.match",
                 re.escape("a match is either for SQL (statements, functions, tables, schemas) "
                           "or for shell commands (commands, programs, paths, opaque), "
                           "not both"))


def test_unknown_command_kind(tmp_path: Path) -> None:
    text = BASE + ("rules:\n  - name: r1\n    action: block\n"
                   "    match: {commands: [RM EVERYTHING]}\n")
    assert_error(tmp_path, text, line_of(text, "RM EVERYTHING"), "rules.0.match.commands.0",
                 "unknown command kind 'RM EVERYTHING'")


def test_unknown_match_key(tmp_path: Path) -> None:
    text = BASE + ("rules:\n  - name: r1\n    action: block\n    match:\n"
                   "      statement: [DROP]\n")
    assert_error(tmp_path, text, line_of(text, "statement:"), "rules.0.match.statement",
                 "unknown key")


def test_unknown_action(tmp_path: Path) -> None:
    text = BASE + "rules:\n  - name: r1\n    action: deny\n    match: {statements: [DROP]}\n"
    assert_error(tmp_path, text, line_of(text, "action: deny"), "rules.0.action",
                 "expected one of allow, review, block, not 'deny'")


def test_unknown_access(tmp_path: Path) -> None:
    text = BASE + ("rules:\n  - name: r1\n    action: block\n    match:\n"
                   "      tables: [t]\n      access: delete\n")
    assert_error(tmp_path, text, line_of(text, "access:"), "rules.0.match.access",
                 "expected one of read, write, any")


SCOPED_TO_MALLORY = BASE + ("rules:\n  - name: r1\n    action: block\n"
                            "    match: {statements: [DROP]}\n"
                            "    identities: [alice, mallory]\n")


def test_unknown_identity_in_scope(tmp_path: Path) -> None:
    assert_error(tmp_path, SCOPED_TO_MALLORY, line_of(SCOPED_TO_MALLORY, "mallory"),
                 "rules.0.identities", "^unknown .*'mallory'$")


def test_unknown_identity_in_scope_wording(tmp_path: Path) -> None:
    assert_error(tmp_path, SCOPED_TO_MALLORY, line_of(SCOPED_TO_MALLORY, "mallory"),
                 "rules.0.identities", "^unknown identity 'mallory'$")


def test_unknown_connection_in_scope(tmp_path: Path) -> None:
    text = BASE + ("rules:\n  - name: r1\n    action: block\n    match: {statements: [DROP]}\n"
                   "    connections: [warehouse]\n")
    assert_error(tmp_path, text, line_of(text, "warehouse"), "rules.0.connections",
                 "unknown connection 'warehouse'")


def test_duplicate_rule_name(tmp_path: Path) -> None:
    text = BASE + ("rules:\n"
                   "  - name: same\n    action: block\n    match: {statements: [DROP]}\n"
                   "  - name: other\n    action: block\n    match: {statements: [TRUNCATE]}\n"
                   "  - name: same  # again\n    action: review\n    match: {regex: x}\n")
    assert_error(tmp_path, text, line_of(text, "# again"), "rules.2.name",
                 "rule 'same' is defined twice")


def test_rule_errors_point_at_the_right_rule(tmp_path: Path) -> None:
    text = VALID.replace("match: {regex: \".\"}", "match: {regex: \"[\"}")
    assert_error(tmp_path, text, line_of(text, "regex: \"[\""), "rules.2.match.regex",
                 "not a valid regular expression")


# --- guardrail setting errors --------------------------------------------------------------


def test_invalid_fallback(tmp_path: Path) -> None:
    text = BASE + "guardrails:\n  fallback: maybe\n"
    assert_error(tmp_path, text, line_of(text, "fallback:"), "guardrails.fallback",
                 "expected one of allow, review, block, not 'maybe'")


@pytest.mark.parametrize("value", ["0", "-1", "two", "true"])
def test_min_approvals_must_be_at_least_one(tmp_path: Path, value: str) -> None:
    text = BASE + f"guardrails:\n  min_approvals: {value}\n"
    assert_error(tmp_path, text, line_of(text, "min_approvals:"), "guardrails.min_approvals",
                 "expected a whole number of at least 1")


def test_approvers_naming_an_unknown_identity(tmp_path: Path) -> None:
    text = BASE + "guardrails:\n  approvers:\n    identities: [oncall, ghost]\n"
    assert_error(tmp_path, text, line_of(text, "ghost"), "guardrails.approvers.identities",
                 "unknown identity 'ghost'")


def test_invalid_review_timeout(tmp_path: Path) -> None:
    text = BASE + "guardrails:\n  review_timeout: soon\n"
    assert_error(tmp_path, text, line_of(text, "review_timeout:"), "guardrails.review_timeout",
                 "expected a duration")


def test_unknown_guardrails_key(tmp_path: Path) -> None:
    text = BASE + "guardrails:\n  fallbak: block\n"
    assert_error(tmp_path, text, line_of(text, "fallbak:"), "guardrails.fallbak", "unknown key")


def test_kinds_for_code_the_gateway_cannot_read_and_destructive_alter_table(
        tmp_path: Path) -> None:
    text = BASE + """\
rules:
  - name: no-dynamic
    action: block
    match: {statements: [dynamic sql, "Alter Table Drop Column", ALTER TABLE RENAME]}
  - name: opaque
    action: review
    match: {statements: [OPAQUE BODY, RENAME TABLE, ALTER TABLE SET DATA TYPE]}
"""
    config = load_config(write(tmp_path, text))
    assert config.rules[0].match.statements == {"DYNAMIC SQL", "ALTER TABLE DROP COLUMN",
                                                "ALTER TABLE RENAME"}
    guard = Guard(config.rules, config.guardrails).for_session("shop", "alice",
                                                               frozenset({"engineering"}))
    assert guard.judge("ALTER TABLE t DROP COLUMN a").rule == "no-dynamic"
    assert guard.judge("CREATE FUNCTION f() RETURNS int LANGUAGE plperl AS '1'").rule == (
        "opaque")
    assert guard.judge("ALTER TABLE t ALTER a TYPE text").rule == "opaque"


def test_rows_over_loads_and_needs_review_or_block(tmp_path: Path) -> None:
    rule = "rules:\n  - name: big\n    action: {action}\n    match: {{rows_over: 100}}\n"
    config = load_config(write(tmp_path, BASE + rule.format(action="review")))
    assert config.rules[0].match.rows_over == 100
    text = BASE + rule.format(action="allow")
    assert_error(tmp_path, text, line_of(text, "rows_over"), "rules.0.match.rows_over",
                 "must be review or block")
