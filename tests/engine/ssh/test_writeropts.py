"""Where a writer (``sort``, ``uniq``, ``tee``, ``split`` …) writes, read with its own option
grammar (``engine.ssh.writeropts``), and the marks a transform piped into one leaves
(``engine.ssh.linepaths.writes``, ``engine.ssh.shellstate``): clusters, a long option's value
as the next word, values that shift the operands, options after the operands, ``--``; what
the grammar cannot read counts every word as written. (Outside attack round 11, G1.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.ssh.linepaths import writes
from engine.ssh.shellstate import destinations, leaves_state
from engine.ssh.writeropts import Outputs, outputs
from engine.ssh.written import Journal, Memory

HOME = frozenset({"/home/alice"})


@pytest.mark.parametrize(("name", "words", "files", "prefixes"), [
    ("sort", "-uo F", ["F"], []),
    ("sort", "-o F in", ["F"], []),
    ("sort", "-oF", ["F"], []),
    ("sort", "--output F", ["F"], []),
    ("sort", "--out=F x", ["F"], []),  # an abbreviation
    ("sort", "in -ro F", ["F"], []),  # after the operand: getopt moves it ahead
    ("sort", "-k 2 -t , in", [], []),  # values, not outputs
    ("sort", "-- -o F", [], []),  # operands after --
    ("shuf", "--output F", ["F"], []),
    ("shuf", "-n 3 -o F in", ["F"], []),
    ("iconv", "-f utf-8 -t utf-8 --output F", ["F"], []),
    ("iconv", "-cf utf-8 -t latin1 -oF", ["F"], []),
    ("uniq", "-f 0 - F", ["F"], []),
    ("uniq", "-w 6 in F", ["F"], []),
    ("uniq", "in", [], []),
    ("uniq", "-c - -", [], []),
    ("tee", "-- -x.txt", ["-x.txt"], []),
    ("tee", "-a a b", ["a", "b"], []),
    ("tee", "-", ["-"], []),  # GNU tee writes a file named -
    ("split", "- P -l 1", [], ["P"]),
    ("split", "-l 1 - P", [], ["P"]),
    ("split", "-l 1", [], ["x"]),
    ("split", "--additional-suffix .t -b 10 in P", [], ["P"]),
    ("csplit", "-s -f P - 2", [], ["P"]),
    ("csplit", "--prefix P - 2", [], ["P"]),
    ("csplit", "-sfP - 2", [], ["P"]),
    ("csplit", "- 2", [], ["xx"]),
    ("sed", "-i s/a/b/ -- -x.txt", ["-x.txt", "--"], []),  # "--": read without permuting
    ("sed", "-ie s/a/b/ f", ["f"], []),  # -i's suffix is "e"
    ("sed", "-i.bak -e s/a/b/ f g", ["f", "g"], []),
    ("sed", "--in-place -n -f script f", ["f"], []),
    ("sed", "s/a/b/ f", [], []),
    ("xxd", "-c 8 in out", ["out"], []),
    ("xxd", "-cols 8 in out", ["out"], []),
    ("xxd", "-ps in", [], []),
])
def test_a_writer_writes_what_its_grammar_says(name: str, words: str, files: list[str],
                                               prefixes: list[str]) -> None:
    found = outputs(name, tuple(words.split()))
    assert found is not None
    assert sorted(found.files) == sorted(files)
    assert sorted(found.prefixes) == sorted(prefixes)
    assert not found.anywhere


@pytest.mark.parametrize(("name", "words", "expected"), [
    ("sort", "-Q x F", {"x", "F"}),  # an option sort does not have: every word
    ("uniq", "--bogus - F", {"F"}),
    ("sort", "--s F", {"F"}),  # ambiguous (--sort, --stable): every word
    ("xxd", "-pss in", {"in"}),
    ("tee", "--output-error=warn F", {"F"}),
])
def test_what_the_grammar_cannot_read_counts_every_word(name: str, words: str,
                                                        expected: set[str]) -> None:
    found = outputs(name, tuple(words.split()))
    assert found is not None and expected <= set(found.files)


def test_a_command_that_writes_the_pieces_writes_anywhere() -> None:
    assert outputs("split", ("--filter=cat > o", "-")) == Outputs(anywhere=True)
    assert outputs("sort", ("--compress-program=gz", "-o", "F")) is not None
    assert outputs("cat", ("x",)) is None  # not a writer read here


@pytest.mark.parametrize(("line", "parts"), [
    ("rev s2.txt | sort -uo rv.txt", [("home", "alice", "rv.txt")]),
    ("rev s2.txt | sort --output rv.txt", [("home", "alice", "rv.txt")]),
    ("rev s2.txt | uniq -f 0 - rv.txt", [("home", "alice", "rv.txt")]),
    ("rev s2.txt | csplit -s -f cs - 2", [("home", "alice", "cs*")]),
    ("rev s2.txt | split - sp -l 1", [("home", "alice", "sp*")]),
    ("rev s2.txt | iconv -f utf-8 -t utf-8 --output ic.txt", [("home", "alice", "ic.txt")]),
    ("rev s2.txt | shuf --output sh.txt", [("home", "alice", "sh.txt")]),
    ("rev s2.txt | tee -- -te.txt", [("home", "alice", "-te.txt")]),
])
def test_a_transform_into_a_writer_marks_the_file(line: str, parts: list[tuple[str, ...]],
                                                  tmp_path: Path) -> None:
    assert leaves_state(line)
    assert sorted({w.place.parts for w in writes(line, HOME) if w.place}) == parts
    memory = Memory(Journal(tmp_path / "j"), "db1:22", "alice", "s1")
    made = memory.wrote((line,), HOME)
    assert {m.path for m in made if not m.metadata} == {"/" + "/".join(p) for p in parts}


def test_a_split_filter_marks_any_path(tmp_path: Path) -> None:
    memory = Memory(Journal(tmp_path / "j"), "db1:22", "alice", "s1")
    made = memory.wrote(("rev s | split --filter='cat >> $FILE.x' -",), HOME)
    assert any(m.anywhere for m in made)


def test_tee_destinations_follow_its_grammar() -> None:
    assert destinations(("tee", "--", "-x")) == ["-x"]
    assert destinations(("tee", "-a", "/usr/local/bin/cat")) == ["/usr/local/bin/cat"]


@pytest.mark.parametrize(("line", "landed"), [
    ("cp -vt /d /w/x", "/d/x"), ("cp --target-directory /d /w/x", "/d/x"),
    ("cp -t/d /w/x", "/d/x"), ("cp /w/x -t /d", "/d/x"), ("mv -ft /d /w/x", "/d/x"),
    ("install -t /d /w/x", "/d/x"), ("ln -vt /d /w/x", "/d/x"), ("cp -S .b /w/x /d/y", "/d/y"),
    ("cp -- /w/x /d/z", "/d/z"), ("cp -Q /w/x /d/q", "/d/q"),  # not read: every word
])
def test_a_copy_of_a_marked_file_lands_where_the_copiers_grammar_says(
        line: str, landed: str, tmp_path: Path) -> None:
    memory = Memory(Journal(tmp_path / "j"), "db1:22", "alice", "s1")
    memory.wrote(("rev /w/s > /w/x",))
    assert landed in {m.path for m in memory.wrote((line,))}
    assert memory.read((f"cat {landed}",)) is not None
