"""A file written by a transform carries what it read in its size, times and name as well as
its content (one file per digit, sized by the digit): a line that may print a marked file's
metadata (``ls -l``, ``stat``, ``du``, ``wc -c``, ``find -printf``, ``test -s``:
``engine.ssh.linepaths.lists``) is masked whole like one that reads it, and an SFTP stat or
listing of it is refused (``Memory.download``). (Outside attack round 11, G6.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.ssh.linepaths import lists
from engine.ssh.written import Journal, Memory

DIGITS = "; ".join(
    f"awk 'NR==1{{printf \"%*s\", substr($2,{i},1)+0, \"\"}}' s2.txt > zs/d{i:02d}"
    for i in range(1, 4))


@pytest.mark.parametrize(("line", "shown"), [
    ("ls -l zs", True), ("ls -lS zs", True), ("ls -t", True), ("ls -s zs/d01", True),
    ("dir -l", True), ("stat -c %s zs/*", True), ("du -ab", True), ("wc -c zs/d01", True),
    ("find . -printf '%s\\n'", True), ("find zs -size 4c", True), ("test -s zs/d01", True),
    ("[ -s zs/d01 ] && echo y", True), ("date -r zs/d01", True), ("tree -s", True),
    ("sh -c 'ls -l zs'", True), ("ls -l $d", True),
    ("ls zs", False), ("ls -a", False), ("ls -1R", False), ("find zs -name 'd*'", False),
    ("echo hi", False), ("cat zs/d01", False),
])
def test_lines_that_show_metadata(line: str, shown: bool) -> None:
    assert lists(line).any is shown


def memory(tmp: Path, identity: str = "alice") -> Memory:
    return Memory(Journal(tmp / "j"), "db1:22", identity, "s1")


def test_a_listing_of_a_file_a_transform_wrote_is_masked_whole(tmp_path: Path) -> None:
    made = memory(tmp_path).wrote((f"mkdir -p zs; {DIGITS}",), frozenset({"/home/alice"}))
    assert {m.path for m in made} == {"/home/alice/zs/d01", "/home/alice/zs/d02",
                                      "/home/alice/zs/d03"}
    later = memory(tmp_path, "bob")  # any identity: the sizes are there for everyone
    for line in ("ls -l /home/alice/zs", "stat -c %s /home/alice/zs/*", "du -ab /home",
                 "wc -c /home/alice/zs/d01", "find /home -printf '%s'"):
        why = later.read((line,), frozenset({"/"}))
        assert why is not None, line  # (find walks what it finds: a reader already)
        assert "size" in why or line.startswith("find"), why
    for line in ("ls /home/alice/zs", "ls -l /srv", "stat /srv/x", "echo hi"):
        assert later.read((line,), frozenset({"/"})) is None, line


def test_sftp_may_not_stat_or_list_a_file_a_transform_wrote(tmp_path: Path) -> None:
    memory(tmp_path).wrote(("rev /w/s2.txt > /w/zs/d01",))
    sftp = memory(tmp_path, "bob")
    assert sftp.download("/w/zs/d01") is not None  # stat, lstat, open
    assert sftp.download("/w/zs/*") is not None  # opendir: its entries
    assert sftp.download("/w/*") is None  # the directory's own size says nothing
    assert sftp.download("/srv/*") is None
