"""What ``policy check`` says about the mistakes people make (issue 16): a misspelt key is an
unknown key with the one it is closest to, a wrong statement kind lists the closest few names
(not all ~180), and an approver group nobody is in is a warning, not silence."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.config import ConfigError, load_config
from engine.config.load import check_config
from gatewatch.cli.main import main

HEAD = """\
version: 1
engine:
  store: gw.db
  control_socket: c.sock
identities:
  - name: alice
    groups: [engineering]
    token_sha256: "{digest}"
  - name: oncall
    groups: [operators]
    token_sha256: "{digest}"
""".replace("{digest}", "0" * 64)


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "policies.yaml"
    path.write_text(HEAD + textwrap.dedent(body))
    return path


def error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


def test_a_misspelt_required_key_is_unknown_with_did_you_mean(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        rules:
          - name: no-drop
            actoin: block
            match: {statements: [DROP TABLE]}
        """)
    assert error(path) == (f"{path}:14: rules.0.actoin: unknown key 'actoin' "
                           "(did you mean 'action'?)")


def test_a_misspelt_optional_key_is_unknown_with_did_you_mean(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        rules:
          - name: no-drop
            action: block
            match: {statements: [DROP TABLE]}
            mesage: not here
        """)
    assert error(path).endswith("rules.0.mesage: unknown key 'mesage' (did you mean "
                                "'message'?)")


def test_a_key_like_no_other_still_lists_what_is_expected(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        rules:
          - name: no-drop
            action: block
            match: {statements: [DROP TABLE]}
            zzz: 1
        """)
    assert "rules.0.zzz: unknown key (expected one of: action, connections," in error(path)


def test_a_wrong_statement_kind_shows_the_closest_few(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        rules:
          - name: no-delete
            action: block
            match: {statements: [DELTE]}
        """)
    message = error(path)
    assert "unknown statement kind 'DELTE' (did you mean: DELETE" in message
    assert message.count(",") <= 6, message  # a few names, not ~180
    assert len(message) < 300


def test_a_statement_kind_near_none_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        rules:
          - name: odd
            action: block
            match: {statements: [QQQQQQQ]}
        """)
    assert "unknown statement kind 'QQQQQQQ' (none of the" in error(path)


def test_a_wrong_command_kind_shows_the_closest_few(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        rules:
          - name: no-rm
            action: block
            match: {commands: [RM RECURSIV]}
        """)
    message = error(path)
    assert "unknown command kind 'RM RECURSIV' (did you mean: RM RECURSIVE" in message
    assert len(message) < 300


def test_an_approver_group_nobody_is_in_warns(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        guardrails:
          approvers:
            groups: [operators, secops]
        """)
    _, warnings = check_config(path)
    assert warnings == [f"{path}:14: guardrails.approvers.groups: no identity is in the "
                        "approver group 'secops': nobody in it can approve, deny or kill"]


def test_policy_check_prints_the_warning_and_exits_0(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, """\
        guardrails:
          approvers:
            groups: [secops]
        """)
    assert main(["policy", "check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: ok (2 identities, 0 connections, 1 warning)\n"
    assert err == (f"gatewatch: warning: {path}:14: guardrails.approvers.groups: no identity "
                   "is in the approver group 'secops': nobody in it can approve, deny or kill\n")


def test_the_example_policies_file_has_no_warnings() -> None:
    _, warnings = check_config(Path(__file__).resolve().parents[3] / "policies.yaml")
    assert warnings == []
