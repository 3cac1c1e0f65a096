"""Issue 14, files written by a program's own script or at the end of a pipe (real OpenSSH ssh and
sshd): awk's ``print > "f"``, sed's ``w``, and a tar pipe unpacking a transformed file elsewhere
each leave the secret transformed in a file the line does not name as shell words; a later
connection that reads it gets its output masked whole and is told why. The files are checked on
the target: the transformed values are there, so a test that saw them come back in clear would
fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_masking_ssh_written import (  # noqa: F401 (fixtures)
    exposed,
    run,
    secret,
    wgw,
    work,
)
from tests.sshgw import SshGateway

pytestmark = pytest.mark.integration

# awk reversing each line into a file of its own choosing (no shell redirection on the line)
_AWK_REVERSE = ("awk '{ s = \"\"; for (i = length($0); i > 0; i--) s = s substr($0, i, 1);"
                " print s > \"%s\" }' %s")


def assert_masked_whole(gw: SshGateway, path: Path, user: str = "alice") -> None:
    read = run(gw, f"cat {path}", user=user)
    assert read.returncode == 0 and read.stdout.strip(), read.stderr
    assert not exposed(read.stdout), read.stdout[:300]
    assert set(read.stdout) <= set(b"* \t\r\n"), read.stdout[:300]  # masked whole
    assert b"was written on this target by a command whose output" in read.stderr


def test_a_file_awk_prints_into_is_masked_whole_for_the_next_connection(
        wgw: SshGateway, work: Path) -> None:  # noqa: F811
    target = work / "awk-out"
    written = run(wgw, _AWK_REVERSE % (target, secret(wgw)))
    assert written.returncode == 0, written.stderr
    assert exposed(target.read_bytes())  # the values are there, reversed
    assert_masked_whole(wgw, target)
    assert_masked_whole(wgw, target, user="oncall")  # another identity: the same


def test_a_file_sed_writes_with_w_is_masked_whole_for_the_next_connection(
        wgw: SshGateway, work: Path) -> None:  # noqa: F811
    target = work / "sed-out"
    # named where cd went (the guardrail's reading of sed takes an "s" in a long absolute
    # name for an s command with the e flag)
    written = run(wgw, f"cd {work} && sed -n 's/./& /g; w sed-out' {secret(wgw)}")
    assert written.returncode == 0, written.stderr
    assert exposed(target.read_bytes())  # spaced out, on the target
    assert_masked_whole(wgw, target)


def test_a_transformed_file_carried_through_a_tar_pipe_stays_marked(
        wgw: SshGateway, work: Path) -> None:  # noqa: F811
    assert run(wgw, f"rev {secret(wgw)} > {work}/r").returncode == 0
    (work / "dst").mkdir()
    carried = run(wgw, f"tar cf - -C {work} r | tar xf - -C {work}/dst")
    assert carried.returncode == 0, carried.stderr
    assert exposed((work / "dst" / "r").read_bytes())
    assert_masked_whole(wgw, work / "dst" / "r", user="oncall")
