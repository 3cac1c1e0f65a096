"""getopt_long's abbreviations: a long option given as any prefix of its name (``--only`` for
``--only-matching``, ``--split`` for ``--split-string``) is judged as every known option it
may be, by the guardrail (what a wrapper runs) and by the SSH output's reading of plain readers."""

from __future__ import annotations

import pytest

from engine.guardrail.commands import classify_command, long_options
from engine.guardrail.rules import Match, Rule, judge_command
from engine.ssh.output import prints_no_escapes, transforms_output
from engine.ssh.shellstate import leaves_state

RM_ETC = (Rule("no-rm-system", "block",
               Match(commands=frozenset({"RM RECURSIVE"}), paths=("/etc", "/etc/*"))),)


def test_long_options_names_every_option_a_prefix_may_be() -> None:
    known = ("--only-matching", "--output", "--bytes")
    assert long_options("--only", known) == ["--only-matching"]
    assert long_options("--o", known) == ["--only-matching", "--output"]
    assert long_options("--by=120", known) == ["--bytes"]
    assert long_options("--output", ("--output", "--output-limit")) == ["--output"]
    assert long_options("--colour", known) == []
    assert long_options("-o", known) == []
    assert long_options("--", known) == []


@pytest.mark.parametrize("line", [
    "grep --only '.\\{6\\}' .env", "grep --only-m x .env", "grep --o x .env",
    "egrep --only-matching=x .env", "fgrep -r --onl x .", "head --by=120 .env",
    "head --b 120 .env", "tail --by=+145 .env", "tail --byte=+1 .env", "cat --show .env",
    "cat --show-n .env", "cat --show-t .env", "date --fi=.env", "sudo grep --only x .env",
    "env grep --only x .env", "sh -c 'head --by=3 .env'", "timeout 5 tail --by=2 .env",
])
def test_abbreviated_cutting_options_transform(line: str) -> None:
    assert transforms_output(line)


@pytest.mark.parametrize("line", [
    "grep x .env", "grep --count x .env", "head -n 3 .env", "tail --lines=3 .env",
    "cat .env", "grep --color=never x .env",
])
def test_plain_readers_stay_plain(line: str) -> None:
    assert not transforms_output(line)


@pytest.mark.parametrize("line", [
    "base64 --dec x", "base64 --d x", "base32 --decode=x", "od --str x", "seq --form %c 1",
    "seq --sep=x 1 2",
])
def test_abbreviated_raw_options_may_print_escapes(line: str) -> None:
    assert not prints_no_escapes(line)


@pytest.mark.parametrize("line", [
    "env --split='rm -rf /etc'", "env --split-s 'rm -rf /etc'", "env --s='rm -rf /etc'",
    "env -i --split='rm -rf /etc'", "sudo env --spl='rm -rf /etc'",
    "su --comm='rm -rf /etc'", "su - root --com 'rm -rf /etc'", "runuser --c 'rm -rf /etc'",
    "flock /tmp/l --comm 'rm -rf /etc'", "flock --comm='rm -rf /etc' /tmp/l",
    "script --c 'rm -rf /etc'", "script -q --comm='rm -rf /etc' /dev/null",
    "watch --ex rm -rf /etc", "nice --adj 5 rm -rf /etc", "nice --adj=5 rm -rf /etc",
    "timeout --sig KILL 5 rm -rf /etc", "timeout --kill=1 5 rm -rf /etc",
    "stdbuf --out 0 rm -rf /etc", "xargs --max-a 1 rm -rf /etc",
    "chroot --user=x / rm -rf /etc", "sudo --us root rm -rf /etc", "sudo --sh rm -rf /etc",
    "awk --so 'BEGIN{system(\"rm -rf /etc\")}'", "awk --source='BEGIN{system(\"rm -rf /etc\")}'",
    "awk --as x=1 'BEGIN{system(\"rm -rf /etc\")}'",
    "somebinary --comm 'rm -rf /etc'", "somebinary --exe='rm -rf /etc'",
])
def test_abbreviated_wrapper_options_are_judged_as_the_command_they_run(line: str) -> None:
    assert judge_command(RM_ETC, classify_command(line)).action == "block", line


@pytest.mark.parametrize("line", [
    "env --split-string='rm -rf /etc'", "env -S'rm -rf /etc'", "su --command='rm -rf /etc'",
])
def test_full_names_still_judged(line: str) -> None:
    assert judge_command(RM_ETC, classify_command(line)).action == "block"


def test_abbreviated_script_options_are_seen() -> None:
    assert "SCRIPT FILE" in classify_command("awk --fi=prog.awk x").kinds
    assert "SCRIPT FILE" in classify_command("awk --ex prog.awk x").kinds
    assert "SCRIPT FILE" in classify_command("sed --fi=s.sed x").kinds
    assert "SCRIPT FILE" in classify_command("sed --fi s.sed x").kinds


@pytest.mark.parametrize("line", [
    "sed --in-pl s/a/b/ f", "sed --fi=s.sed f", "sed --expr='w out' f",
    "sed --expr 'w out' f", "awk --fi p.awk", "awk --so='BEGIN{}'", "rev f | sort --out=x",
    "cp --target=/tmp/d .env",
])
def test_abbreviated_writing_options_leave_state(line: str) -> None:
    assert leaves_state(line)


def test_rsync_abbreviations_delete_and_run_their_shell() -> None:
    assert "RSYNC DELETE" in classify_command("rsync -a --remove-so a/ b/").kinds
    assert "RSYNC DELETE" in classify_command("rsync -a --dele a/ /etc/").kinds
    assert judge_command(RM_ETC, classify_command("rsync --rs='rm -rf /etc' a h:b")).action \
        == "block"
    assert "RSYNC DELETE" not in classify_command("rsync -a --dry-run a/ b/").kinds
