"""A process left running after its line (``engine.ssh.lingering``) and what later transforms
then mark (``engine.ssh.written.Memory.wrote``): a plain reader started earlier (``tail -f x >
t &``, a ``cat`` on a named pipe) copies what a later transform writes into a file no line
named, so such a line marks what it writes, and a later transform that writes a file marks
every path of its identity and of every identity that left one. (Outside attack round 11, G2.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.ssh.lingering import lingers
from engine.ssh.written import Journal, Memory


@pytest.mark.parametrize("line", [
    "timeout 30 tail -f lg.log > t.txt 2>/dev/null &", "cat ff > o.txt &", "(cat ff > o) &",
    "{ cat ff > o; } &", "nohup cat ff > o", "setsid cat ff > o", "mkfifo ff",
    "mknod ff p", "tail -F x > t", "tail --follow=name x > t", "tail -fn 5 x > t",
    "while true; do cat x > t; sleep 1; done", "until false; do :; done &",
    "sh -c 'cat ff > o &'", "sleep 4; cat x > t", "coproc cat ff", "disown -a",
    "watch -n1 'cat x >> t'", "echo 'unclosed",
])
def test_lines_that_leave_a_process_running(line: str) -> None:
    assert lingers(line)


@pytest.mark.parametrize("line", [
    "cat x > t", "tail -n 5 x > t", "echo a && echo b", "cat x 2>&1 >/dev/null",
    "echo 'a & b; while'", "ls &>/dev/null", "rev s2.txt >> lg.log", "grep -c x f",
])
def test_lines_that_leave_none(line: str) -> None:
    assert not lingers(line)


def memory(tmp: Path, identity: str = "alice", session: str = "s1") -> Memory:
    return Memory(Journal(tmp / "j"), "db1:22", identity, session)


def test_a_reader_left_running_marks_what_it_writes_and_later_transforms_mark_everything(
        tmp_path: Path) -> None:
    first = memory(tmp_path).wrote(("timeout 30 tail -f /w/lg.log > /w/t.txt 2>/dev/null &",))
    assert {m.path for m in first if not m.lingers} == {"/w/t.txt"}
    assert any(m.lingers for m in first)
    later = memory(tmp_path, session="s2").wrote(("rev /w/s2.txt >> /w/lg.log",))
    assert any(m.anywhere and m.identity == "alice" for m in later)
    reader = memory(tmp_path, session="s3")
    assert reader.read(("cat /w/t.txt",)) is not None
    assert reader.read(("cat /w/other.txt",)) is not None  # any path of alice
    assert reader.read(("echo hi",)) is None


def test_a_named_pipe_makes_a_later_transform_mark_everything(tmp_path: Path) -> None:
    made = memory(tmp_path).wrote(("mkfifo /w/ff",))
    assert [m.lingers for m in made] == [True]
    assert memory(tmp_path).wrote(("cat /w/ff > /w/o.txt",)) == []  # plain, in the foreground
    memory(tmp_path).wrote(("rev /w/s2.txt > /w/ff",))
    assert memory(tmp_path, session="s4").read(("cat /w/o.txt",)) is not None


def test_another_identity_left_the_process(tmp_path: Path) -> None:
    memory(tmp_path, "bob").wrote(("cat /tmp/ff > /tmp/o &",))
    made = memory(tmp_path, "alice").wrote(("rev /w/s2.txt > /tmp/ff",))
    assert {m.identity for m in made if m.anywhere} == {"alice", "bob"}
    assert memory(tmp_path, "bob").read(("cat /tmp/other",)) is not None


def test_without_a_process_left_running_a_transform_marks_only_its_file(tmp_path: Path) -> None:
    assert memory(tmp_path).wrote(("sleep 9 &",)) == []  # it writes nothing, runs nothing
    made = memory(tmp_path).wrote(("rev /w/s2.txt > /w/x",))
    assert [(m.path, m.anywhere) for m in made] == [("/w/x", False)]
    assert memory(tmp_path).read(("cat /w/y",)) is None
    assert memory(tmp_path).wrote(("tail -f /w/log",)) == []  # to the channel, no file
