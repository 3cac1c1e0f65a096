"""The memory of files written by transforms (``engine.ssh.written``, ``engine.ssh.linepaths``):
which paths a line writes and reads, how a path the gateway can only name in part matches, and
the journal shared by processes (appended, read again, failing closed when it cannot be read)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.ssh.linepaths import copies, reads, transforms, writes
from engine.ssh.procpaths import parks
from engine.ssh.written import (
    Journal,
    JournalUnreadable,
    Mark,
    Memory,
    carried,
    journal_for,
    names,
)

HOME = frozenset({"/home/alice"})


def marked(line: str, cwd: frozenset[str] | None = None, *, unseen: bool = False,
           tmp: Path) -> list[Mark]:
    memory = Memory(Journal(tmp / "j"), "db1:22", "alice", "s1")
    return memory.wrote((line,), cwd, unseen=unseen)


@pytest.mark.parametrize(("line", "paths"), [
    ("rev secret.env > /tmp/x", ["/tmp/x"]),
    ("fold -w5 secret.env | tee out >/dev/null", ["/home/alice/out"]),
    ("od -c s >> /tmp/a; base64 s >| /tmp/b", ["/tmp/a", "/tmp/b"]),
    ("tr a-z n-za-m < s | sort -o /tmp/sorted", ["/tmp/sorted"]),
    ("grep a s | sort > /tmp/sorted", ["/tmp/sorted"]),  # an order among lines (round 11)
    ("sort -uo /tmp/u s probes", ["/tmp/u"]),
    ("rev s | dd of=/tmp/d", ["/tmp/d"]),
    ("sed -i 's/./&-/g' /tmp/f", ["/tmp/f"]),
    ("rev s > '/tmp/with space'", ["/tmp/with space"]),
    ("rev s > ~/r.txt", ["r.txt"]),
    ("cd /srv && rev s > r.txt", ["r.txt"]),  # where cd leads is not followed in the line
    ("sudo sh -c 'rev s > /tmp/y'", ["/tmp/y"]),
    ("exec > /tmp/all", ["/tmp/all"]),  # whatever later lines print goes there
    ("rev s | tee /tmp/{a,b} '/tmp/c*'", ["/tmp/a", "/tmp/b", "/tmp/c*"]),
    ("script -q /tmp/typescript", ["/tmp/typescript"]),  # a recorder: what it records
    ("gawk -i inplace '{print $2}' /srv/f", ["/srv/f"]),
    ('cat > /tmp/h <<< "$x"', ["/tmp/h"]),  # a value computed earlier
    ('echo "$x" > /tmp/e', ["/tmp/e"]),
    ("{ rev s; } > /tmp/g", ["/tmp/g"]),
    ("cat s | tee >(rev > /tmp/p) > /dev/null", ["/tmp/p"]),
])
def test_a_transform_marks_what_it_writes(line: str, paths: list[str], tmp_path: Path) -> None:
    assert transforms(line)
    assert sorted(m.path for m in marked(line, HOME, tmp=tmp_path)) == sorted(paths)


@pytest.mark.parametrize("line", [
    "vim /etc/app.conf", "python3 convert.py secret.env",  # what they write is not named
    "echo hi > note.txt", "cat secret.env > copy", "grep a s | cat > found", "cp a b",
    "mv a b", "cat s | tee t", "ls > listing", "rev secret.env", "cat /tmp/x",
])
def test_plain_writes_and_reads_mark_nothing(line: str, tmp_path: Path) -> None:
    assert marked(line, HOME, tmp=tmp_path) == []


def test_a_connection_masked_whole_marks_everything_it_writes(tmp_path: Path) -> None:
    found = marked("cat a > b; cp c /srv/d; mv e /srv/f", HOME, unseen=True, tmp=tmp_path)
    assert {(m.path, m.tree) for m in found} == {
        ("/home/alice/b", False), ("/srv/d", False), ("/srv/d/c", False), ("/srv/f", False),
        ("/srv/f/e", False)}


def test_a_name_only_known_at_run_time_marks_its_directory_or_anything(tmp_path: Path) -> None:
    [directory] = marked("rev s > /srv/$d/x", tmp=tmp_path)
    assert directory.path == "/srv" and directory.tree
    # the name may be what was read (a variable set from it): its identity's names too
    anything, names = marked('rev s > "$f"', tmp=tmp_path)
    assert anything.anywhere and anything.identity == "alice"
    assert names.metadata and names.identity == "alice"
    [pieces] = marked("split -b5 s part_", HOME, tmp=tmp_path)
    assert pieces.path == "/home/alice/part_*" and pieces.pattern


def mark(path: str, *, tree: bool = False) -> Mark:
    return Mark("db1:22", path, "alice", "s1", 0.0, floating=not path.startswith("/"), tree=tree)


@pytest.mark.parametrize(("line", "cwd", "hit"), [
    ("cat /tmp/x", None, True),
    ("cat '/tmp/x'", None, True),
    ("cat /tmp/./x", None, True),
    ("head -n 3 /tmp/x", None, True),
    ("cat x", frozenset({"/tmp"}), True),
    ("cat x", frozenset({"/srv"}), False),
    ("cat x", None, True),  # the directory is not known: the name may be it
    ("cat y", None, False),
    ("cat /tmp/*", None, True),
    ("cat /tmp/[xy]", None, True),
    ("cat /srv/*", None, False),
    ("grep -r secret /tmp", None, True),
    ("grep -r secret /", None, True),
    ("grep -r secret /srv", None, False),
    ("grep secret /tmp", None, False),  # not recursive: a directory prints nothing
    ("tar cf - /tmp | base64", None, True),
    ("find / -name x", None, True),
    ("ls /tmp", None, False),
    ("echo /tmp/x", None, False),
    ("cat /tmp/x.old", None, False),
    ("cat < /tmp/x", None, True),
    ("cat $f", None, True),  # only known at run time, while a file is marked
    ("sudo cat /tmp/x", None, True),
    ("sh -c 'cat /tmp/x'", None, True),
    ("awk '{print $1}' /srv/y", None, False),  # a quoted program is no glob
    ("cat '/tmp/*'", None, False),  # … nor a quoted star
    ("cat /tmp/{x,y}", None, True),
    ("cat /tmp/{a,b}", None, False),
    ("dd if=/tmp/x", None, True),
    ("cat /srv/link/../x", None, True),  # link/.. may lead anywhere, to a directory with x
    ("echo hi | tee /tmp/x", None, False),  # written, not read
    ("head -n 2 /tmp/y", None, False),  # 2 is the value of -n, not a file
    ("grep -e x /tmp/y", None, False),
])
def test_a_read_of_a_marked_file(line: str, cwd: frozenset[str] | None, hit: bool) -> None:
    assert names(mark("/tmp/x"), reads(line, cwd)) is hit


@pytest.mark.parametrize(("line", "hit"), [
    ("cat /home/alice/r.txt", True), ("cat ~/r.txt", True), ("cat r.txt", True),
    ("cat /srv/d/r.txt", True), ("cat /srv/r.txt.bak", False), ("cat q.txt", False),
    ("cat /home/alice/*.txt", True),
])
def test_a_relative_mark_matches_by_its_last_components(line: str, hit: bool) -> None:
    assert names(mark("r.txt"), reads(line)) is hit


@pytest.mark.parametrize(("line", "paths"), [
    ("cp /tmp/x /srv/y", {"/srv/y", "/srv/y/x"}),
    ("sudo mv /tmp/x /srv/", {"/srv", "/srv/x"}),
    ("cp -r /tmp /backup", {"/backup/x", "/backup/tmp/x"}),
    ("rsync -a /tmp/ /backup/", {"/backup/x", "/backup/tmp/x"}),
    ("cp /etc/hosts /srv/y", set()),
    ("cp -r /etc /backup", set()),
])
def test_a_copy_of_a_marked_file_is_marked_where_it_lands(line: str, paths: set[str]) -> None:
    found = {"/" + "/".join(w.place.parts) for c in copies(line) for w in carried(c, [
        mark("/tmp/x")]) if w.place is not None}
    assert found == paths


def test_a_copy_of_a_file_only_known_at_run_time_marks_its_destination() -> None:
    [copy] = copies("cp $f /srv/y")
    assert {(w.place, w.tree) for w in carried(copy, [mark("/tmp/x")])} == {
        (copy.destination, True)}
    assert carried(copy, []) == []  # nothing marked on the target: nothing to carry


def test_a_directory_mark_covers_what_is_under_it() -> None:
    tree = mark("/srv/backup", tree=True)
    assert names(tree, reads("cat /srv/backup/tmp/x"))
    assert not names(tree, reads("cat /srv/other"))
    assert names(tree, reads("cat x"))  # the directory is not known: it may be there


def test_an_anywhere_mark_covers_every_read_but_not_lines_that_read_nothing() -> None:
    anything = Mark("db1:22", "", "alice", "s1", 0.0, anywhere=True)
    assert names(anything, reads("cat /etc/hostname"))
    assert not names(anything, reads("ls -l"))


def test_memory_keeps_to_its_target_and_scopes_anywhere_to_the_identity(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "store.db.ssh-written")
    Memory(journal, "db1:22", "alice", "s1").wrote(("rev s > /tmp/x", 'rev s > "$f"'))
    same_host = Memory(journal, "db1:22", "bob", "s2")
    assert same_host.read(("cat /tmp/x",)) is not None
    assert same_host.read(("cat /etc/hostname",)) is None  # alice's "anywhere" is not bob's
    assert Memory(journal, "db1:22", "alice", "s3").read(("cat /etc/hostname",)) is not None
    assert Memory(journal, "db2:22", "alice", "s4").read(("cat /tmp/x",)) is None
    assert same_host.download("/tmp/x") is not None
    assert same_host.download("notes.txt") is None


def test_processes_share_the_journal(tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    code = ("import sys; from pathlib import Path; from engine.ssh.written import Journal, Memory;"
            "Memory(Journal(Path(sys.argv[1])), 'db1:22', 'bob', 's9')"
            ".wrote(('fold -w5 s > /var/tmp/f',))")
    ours = journal_for(store)
    assert Memory(ours, "db1:22", "alice", "s1").read(("cat /var/tmp/f",)) is None
    subprocess.run([sys.executable, "-c", code, str(ours.path)], check=True,
                   cwd=Path(__file__).resolve().parents[3])
    assert Memory(ours, "db1:22", "alice", "s1").read(("cat /var/tmp/f",)) is not None
    assert json.loads(ours.path.read_text().splitlines()[0])["session"] == "s9"
    assert os.stat(ours.path).st_mode & 0o777 == 0o600


def test_a_damaged_journal_fails_closed_and_a_half_written_line_waits(tmp_path: Path) -> None:
    path = tmp_path / "j"
    journal = Journal(path)
    memory = Memory(journal, "db1:22", "alice", "s1")
    path.write_text('{"target": "db1:22", "path": "/tmp/x"')  # a writer is still at it
    assert journal.marks() == []
    with path.open("a") as f:
        f.write(', "identity": "bob", "session": "s2", "at": 1.0}\n')
    assert [m.path for m in journal.marks()] == ["/tmp/x"]
    with path.open("a") as f:
        f.write("not a mark\n")
    with pytest.raises(JournalUnreadable):
        journal.marks()
    assert memory.read(("cat /etc/hostname",)) is not None  # every path counts as marked
    assert memory.read(("ls",)) is None
    assert memory.download("/etc/hostname") is not None


def test_an_unreadable_journal_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "j"
    path.mkdir()  # cannot be read as a file
    memory = Memory(Journal(path), "db1:22", "alice", "s1")
    assert memory.read(("cat /etc/hostname",)) is not None


def test_a_mark_that_cannot_be_written_is_kept_in_memory(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-directory" / "j"
    memory = Memory(Journal(missing), "db1:22", "alice", "s1")
    assert memory.wrote(("rev s > /tmp/x",))
    assert not missing.exists()
    assert memory.read(("cat /tmp/x",)) is not None


@pytest.mark.parametrize("line", [
    "x=$(rev s)", "x=1", "> /tmp/g", "PATH=/x:$PATH", "cat() { rev \"$@\"; }", "alias cat=rev",
    "for f in *; do rev \"$f\" > \"$f.r\"; done", "(cd /tmp; rev s > r)", "echo 'unclosed",
    "trap 'rev s' DEBUG", "sh -c", "bash -c 'sh -c \"rev s > /tmp/z\"'", "", "   ", "!!",
    "tar xf a.tar -C /srv", "find . -name '*.env' -exec rev {} \\;", "exec 3> /tmp/fd",
])
def test_any_line_is_read_without_failing(line: str, tmp_path: Path) -> None:
    memory = Memory(Journal(tmp_path / "j"), "db1:22", "alice", "s1")
    memory.wrote((line, line + " '"), None, unseen=True)
    memory.read((line,), HOME)
    reads(line)
    writes(line, HOME)


def test_a_line_typed_into_a_program_is_no_shell_line(tmp_path: Path) -> None:
    memory = Memory(Journal(tmp_path / "j"), "db1:22", "alice", "s1")
    typed = "it's a line of text in an editor"  # does not parse as shell
    assert memory.wrote((typed,), unseen=True, shell=False) == []
    # the shell's: any name it may write, what it read may become names, and it may leave a
    # process running
    made = memory.wrote((typed,), unseen=True)
    assert {(m.anywhere, m.metadata, m.lingers) for m in made} == {
        (True, False, False), (False, True, False), (False, False, True)}
    assert memory.read((typed,), shell=False) is None
    assert memory.read((typed,)) is not None


def test_the_user_is_told_which_file_or_that_a_name_is_not_known(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    Memory(journal, "db1:22", "bob", "s1").wrote(("rev s > /tmp/x",))
    memory = Memory(journal, "db1:22", "alice", "s2")
    assert (memory.read(("cat /tmp/x",)) or "").startswith("/tmp/x was written on this target")
    assert "only known when it runs" in (memory.read(("cat $f",)) or "")
    assert memory.read(("cat /tmp/y",)) is None


def test_no_path_is_kept_of_a_line_typed_blind_or_holding_a_value(tmp_path: Path) -> None:
    memory = Memory(Journal(tmp_path / "j"), "db1:22", "alice", "s1")
    [blind] = memory.wrote(("rev s > /tmp/x",), blind=True)
    assert blind.anywhere and blind.path == ""
    [hidden] = memory.wrote(("rev s > /tmp/4111111111111111",), hide=lambda p: "4111" in p)
    assert hidden.anywhere and "4111" not in (tmp_path / "j").read_text()
    assert memory.wrote(("it's > not a line",), blind=True, shell=False) == []


@pytest.mark.parametrize(("line", "into_names"), [
    ("rev s | xargs mkdir", True),
    ("awk 'NR==1{print substr($2,1,8)}' s | xargs -I{} touch -d @{} z/a", True),
    ("sed 's/./& /g' s | xargs timeout 60 tail -F /dev/null &", True),
    ("touch -d @$(cut -c6-13 s) z", True),
    ("rev s | while read v; do mkdir \"$v\"; done", True),
    ("for w in $(rev s); do mkdir $w; done", True),
    ("rev s > /tmp/x", False),
    ("find . -name '*.txt' | xargs grep -l foo", False),  # names stay names
    ("cat s", False),
    ("ls -l", False),
])
def test_what_a_transform_puts_into_names_masks_its_identity_whole(
        tmp_path: Path, line: str, into_names: bool) -> None:
    journal = Journal(tmp_path / "j")
    made = Memory(journal, "db1:22", "alice", "s1").wrote((line,))
    assert any(m.metadata for m in made) == into_names
    alice = Memory(journal, "db1:22", "alice", "s2")
    assert (alice.metadata() is not None) == into_names
    # no file of it (but a pipe to a process run in the background may hold it: any file)
    assert (alice.read(("cat /tmp/y",)) is None) == (not parks(line))
    assert Memory(journal, "db1:22", "bob", "s3").metadata() is None  # its identity's


@pytest.mark.parametrize("line", ["xargs -a /tmp/x echo", "xargs -n 1 --arg-file=/tmp/x echo",
                                  "xargs -0 -a/tmp/x mkdir"])
def test_xargs_reads_its_arg_file(tmp_path: Path, line: str) -> None:
    """``xargs -a FILE`` prints (or makes names of) a marked file's content."""
    journal = Journal(tmp_path / "j")
    Memory(journal, "db1:22", "bob", "s1").wrote(("rev s > /tmp/x",))
    assert Memory(journal, "db1:22", "alice", "s2").read((line,)) is not None
    # on a connection masked whole, what it makes of them may be names
    assert any(m.metadata for m in Memory(journal, "db1:22", "alice", "s3").wrote(
        ("xargs -a /tmp/x mkdir",), unseen=True))
