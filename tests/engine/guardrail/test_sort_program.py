"""``sort --compress-program=PROG`` runs PROG on sort's temporary files, and what PROG prints
becomes sort's output (outside attack on issue 14: ``xxd`` there turned a plain reader into a
hex dump, and the program itself was never judged)."""

from __future__ import annotations

import pytest

from engine.guardrail.commands import classify_command
from engine.ssh.output import transforms_output


@pytest.mark.parametrize("line", [
    "sort --compress-program=xxd -S 1 .env",
    "sort --compress-program sh -S 1 .env",
    "sort -S 1 --compress-prog=od .env",
    "sort --compress=base64 .env",
    "sudo sort --compress-program=rev .env",
    "sort $OPTS .env",  # a run-time word may be that option
])
def test_a_program_in_sorts_option_is_code_and_its_output_a_transform(line: str) -> None:
    assert "COMMAND IN OPTION" in classify_command(line).kinds or classify_command(line).unseen
    assert transforms_output(line)


@pytest.mark.parametrize("line", ["sort .env", "sort -k2 -n -t, data.csv", "sort -o out.txt f",
                                  "sort -- --compress-program=xxd"])
def test_plain_sorts_run_no_program(line: str) -> None:
    assert "COMMAND IN OPTION" not in classify_command(line).kinds
    # (its output is masked whole all the same: the order it gives among lines the user
    # chose spells a masked line, outside attack round 11)
    assert transforms_output(line)


def test_the_program_is_judged_as_shell_code() -> None:
    facts = classify_command("sort --compress-program='rm -rf /' f")
    assert "RM RECURSIVE" in facts.kinds
