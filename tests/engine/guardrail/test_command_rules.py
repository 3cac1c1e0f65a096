"""Rules over shell command lines, and SessionGuard.judge_command."""

from __future__ import annotations

import re

from engine.guardrail.commands import classify_command
from engine.guardrail.guard import SessionGuard
from engine.guardrail.rules import GuardrailSettings, Match, Rule, judge_command

RULES = (
    Rule("no-rm-system", "block",
         Match(commands=frozenset({"RM RECURSIVE"}), paths=("/", "/etc", "/etc/*"))),
    Rule("review-kubectl", "review", Match(programs=("kubectl",))),
    Rule("review-unseen", "review", Match(opaque=True)),
    Rule("sql-only", "block", Match(statements=frozenset({"DROP"}))),
    Rule("word", "block", Match(regex=re.compile("forbidden"))),
)


def verdict(line: str) -> tuple[str, str | None]:
    v = judge_command(RULES, classify_command(line))
    return v.action, v.rule


def test_kind_and_path_must_both_match() -> None:
    assert verdict("sudo rm -rf /etc/nginx") == ("block", "no-rm-system")
    assert verdict("rm -rf /tmp/build") == ("allow", None)
    assert verdict("rm /etc/motd") == ("allow", None)  # not recursive


def test_programs_match_after_unwrapping() -> None:
    assert verdict("env KUBECONFIG=x /usr/local/bin/kubectl get pods") == (
        "review", "review-kubectl")


def test_opaque_lines_can_be_judged_by_what_cannot_be_seen() -> None:
    action, rule = verdict("bash ./deploy.sh")
    assert (action, rule) == ("review", "review-unseen")
    v = judge_command(RULES, classify_command("bash ./deploy.sh"))
    assert "not seen" in v.reason


def test_sql_rules_never_match_commands_and_regex_matches_both() -> None:
    assert verdict("drop table x") == ("allow", None)
    assert verdict("echo forbidden") == ("block", "word")


def test_session_guard_falls_back_on_lines_it_cannot_read() -> None:
    guard = SessionGuard(RULES, GuardrailSettings(fallback="block"))
    judgement = guard.judge_command("echo 'unterminated")
    assert judgement.action == "block" and judgement.rule == "fallback"
    assert judgement.parse_error
    assert guard.judge_command("echo 'unterminated") is judgement  # cached by exact text
    lenient = SessionGuard(RULES, GuardrailSettings(fallback="review"))
    assert lenient.judge_command("echo 'unterminated").action == "review"
