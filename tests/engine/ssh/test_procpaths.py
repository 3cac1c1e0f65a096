"""Another process's memory, descriptors and arguments (``engine.ssh.procpaths``): a line that
may read them is masked whole, an SFTP request on one is refused, and a transform's output left
in a pipe to a process that outlives its line is marked as a file whose name is not known
(outside attack, round 10: ``rev s | setsid sleep 120 &``, then ``cat /proc/PID/fd/0``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.ssh.procpaths import parks, process_memory, sensitive_path
from engine.ssh.written import Journal, Memory

HOME = frozenset({"/home/alice"})


@pytest.mark.parametrize("line", [
    "cat /proc/1234/fd/0",
    "timeout 1 cat /proc/1234/fd/0",
    "cat /proc/[0-9]*/fd/0",
    "for f in /proc/[0-9]*/fd/0; do echo; done; cat /proc/*/fd/0",
    "cat /pro?/1/f?/0",
    "cat /*/*/*/0",
    "cat /proc/1/{fd,x}/0",
    "cat /proc//1/./fd/0",
    "cat ../../proc/1/fd/0",
    "cat fd/0",  # the working directory is not known: it may be /proc/PID
    "cat 1/environ",
    "cat task/1/fd/0",
    "cd /proc/1/fd && cat 0",
    "cd /proc/$p; cat status",
    "cd /pro?/1 && cat status",
    "for d in /proc/[0-9]*; do cat $d/fd/0; done",
    "f=/proc/1/fd/0",  # an assignment: a later line reads it as $f
    "while read p; do cat /proc/$p/fd/0; done < pids",
    "xargs -I{} cat /proc/{}/fd/0 < pids",
    "cd /dev/fd; cat 3",
    "echo /proc/1/fd/0 | xargs cat",
    "f=/proc/1/environ; cat $f",
    "grep -r x /proc/1",
    "cat /dev/fd/3",
    "cat /proc/self/cmdline",
    "head -c 100 /proc/1/mem",
    "od -c /proc/1/map_files/7f00-7f01",
    "cat /proc/1/fdinfo/0",
    "cat /proc/1/task/1/fd/0",
    "cat /proc/1/root/etc/hostname",
    "dd if=/proc/1/fd/0",
    "tail -f /proc/1/fd/1",
    "sh -c 'cat /proc/1/fd/0'",
    "cat < /proc/1/fd/0",
    "python3 -c 'print(open(\"/proc/1/fd/0\").read())'",
])
def test_a_read_of_another_process_is_named(line: str) -> None:
    """Where the working directory is not known (an exec starts where the gateway cannot see):
    a relative name may be under /proc."""
    assert process_memory(line, None) is not None


@pytest.mark.parametrize("line", [
    "cat s2.txt", "ls -l /proc/[0-9]*/fd/0", "ls /proc", "cat /proc/cpuinfo",
    "cat /proc/1/status", "grep x notes.txt", "echo hello", "cat /home/alice/fd.txt",
    "cd ~/processing && cat x", "cd /proc && ls", "echo /proc/1/fd/0", "cat $f",
    "cat /process/$x",
])
def test_other_lines_are_not(line: str) -> None:
    assert process_memory(line, HOME) is None


def test_a_working_directory_under_proc_makes_every_read_one() -> None:
    assert process_memory("cat 0", frozenset({"/proc/1/fd"})) is not None
    assert process_memory("cat status", frozenset({"/proc"})) is not None
    assert process_memory("cat 0", HOME) is None
    assert process_memory("cat fd/0", HOME) is None  # /home/alice/fd/0


def test_a_connection_that_reads_one_is_masked_whole_without_any_mark(tmp_path: Path) -> None:
    memory = Memory(Journal(tmp_path / "j"), "db1:22", "alice", "s1")
    why = memory.read(("ls -l /proc/[0-9]*/fd/0",), HOME)
    assert why is None
    why = memory.read(("cat /proc/4242/fd/0",), HOME)
    assert why is not None and "/proc/4242/fd/0" in why
    assert memory.read(("cat /proc/[0-9]*/fd/0",), None) is not None
    assert memory.download("/proc/4242/fd/0") is not None
    assert memory.download("/proc/self/environ") is not None
    assert memory.download("notes.txt") is None
    assert sensitive_path("/dev/fd/0") and not sensitive_path("/etc/hostname")


@pytest.mark.parametrize(("line", "parked"), [
    ("rev s2.txt | setsid timeout 120 sleep 120 >/dev/null 2>&1 &", True),
    ("rev s2.txt | sleep 120 &", True),
    ("rev s2.txt | setsid sleep 120", True),
    ("rev s2.txt | sudo nohup sleep 120", True),
    ("{ rev s2.txt | sleep 9; } &", True),
    ("rev s2.txt > >(sleep 9) &", True),
    ("rev s2.txt | sort", False),
    ("rev s2.txt | grep at", False),
    ("sleep 5 &", False),
])
def test_output_left_in_a_pipe_to_a_detached_process(line: str, parked: bool) -> None:
    assert parks(line) == parked


def test_a_transform_parked_in_a_pipe_marks_any_file_of_its_identity(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    made = Memory(journal, "db1:22", "alice", "s1").wrote(
        ("rev s2.txt | setsid timeout 120 sleep 120 >/dev/null 2>&1 &",), HOME)
    assert [m.anywhere for m in made] == [True] and not any(m.metadata for m in made)
    later = Memory(journal, "db1:22", "alice", "s2")
    assert later.read(("cat notes.txt",), HOME) is not None
    assert later.metadata() is None  # names are not masked whole for it
    assert Memory(journal, "db1:22", "bob", "s3").read(("cat notes.txt",), HOME) is None
    # a plain pipe in the background is no transform: nothing marked
    assert Memory(journal, "db1:22", "carol", "s4").wrote(("cat s | sleep 9 &",), HOME) == []


def test_what_a_reader_of_one_writes_is_marked(tmp_path: Path) -> None:
    """``cp /proc/PID/fd/0 /tmp/x``: the session reads it as unseen (``read`` says why) and
    marks what the line writes, so that a later ``cat /tmp/x`` is masked whole."""
    journal = Journal(tmp_path / "j")
    memory = Memory(journal, "db1:22", "alice", "s1")
    line = "cp /proc/4242/fd/0 /tmp/x"
    assert memory.read((line,), HOME) is not None
    made = memory.wrote((line,), HOME, unseen=True)
    assert "/tmp/x" in {m.path for m in made}
    assert Memory(journal, "db1:22", "bob", "s2").read(("cat /tmp/x",), HOME) is not None
