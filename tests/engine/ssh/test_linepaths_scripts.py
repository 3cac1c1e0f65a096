"""Found by the outside attack on the SSH written-files memory (issue 14): files written by
programs that name them in a script of their own (awk's ``print > "f"``, sed's ``w``, an ed or
ex script), by a command ``xargs`` or ``find -exec`` runs on names only known at run time, or by
an archive unpacked at the end of a tar pipe, were not remembered; a new connection's ``cat``
printed the transformed secret in clear."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.guardrail.scriptwrites import RUNTIME, awk_files, sed_files
from engine.ssh.linepaths import Place, Written, reads, same, transforms, writes
from engine.ssh.written import Journal, Memory

HOME = frozenset({"/home/alice"})


def written(line: str, cwd: frozenset[str] | None = HOME) -> list[Written]:
    return writes(line, cwd)


def paths(line: str, cwd: frozenset[str] | None = HOME) -> list[tuple[str, bool]]:
    """Each written path named (absolute with its slash), and whether all under it is."""
    return [(("/" if w.place.anchored else "") + "/".join(w.place.parts), w.tree)
            for w in written(line, cwd) if w.place is not None]


def anywhere(line: str, cwd: frozenset[str] | None = HOME) -> bool:
    return any(w.place is None for w in written(line, cwd))


def marked(path: str) -> Place:
    return Place(tuple(path.strip("/").split("/")), True, False)


# --- awk -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "path"), [
    ("""awk '{print > "/tmp/x"}' .env""", "/tmp/x"),
    ("""gawk '{ print $0 >> "/tmp/x" }' .env""", "/tmp/x"),
    ("""mawk '{printf "%s\\n", $2 > "/tmp/x"}' .env""", "/tmp/x"),
    ("""busybox awk '{print > "/tmp/x"}' .env""", "/tmp/x"),
    ("""sudo nawk -F= '{print $2 > ("/tmp/" "x")}' .env""", "/tmp/x"),
    ("""awk -v n=1 -- 'NR > n { print | "cat > /tmp/x" }' .env""", "/tmp/x"),
    ("""awk 'BEGIN { system("rev .env > /tmp/x") }'""", "/tmp/x"),
    ("""gawk -e '{print > "/tmp/x"}' -e 'END {}' .env""", "/tmp/x"),
    ("""gawk --source='{print > "/tmp/x"}' .env""", "/tmp/x"),
    ("""awk '{ if ($1 > 3) print $2 > "/tmp/x"; else print }' .env""", "/tmp/x"),
    ("""awk '{print > "x"}' .env""", "/home/alice/x"),
    ("""gawk -d/tmp/x 'BEGIN { while ((getline l < ".env") > 0) s = s l }'""", "/tmp/x"),
    ("""awk '{print > "\\057tmp\\057x"}' .env""", "/tmp/x"),  # octal escapes
    ("""awk '{print > "\\x2ftmp/x"}' .env""", "/tmp/x"),
])
def test_a_file_awk_prints_into_is_written(line: str, path: str) -> None:
    assert transforms(line)
    assert (path, False) in paths(line), paths(line)


@pytest.mark.parametrize(("line", "directory"), [
    ("""awk '{print > "/tmp/" $1}' .env""", "/tmp"),
    ("""awk '{print > "/tmp/out." NR}' .env""", "/tmp"),
])
def test_an_awk_file_named_in_part_marks_its_directory(line: str, directory: str) -> None:
    assert (directory, True) in paths(line), paths(line)


@pytest.mark.parametrize("line", [
    """awk '{print > $2}' .env""",
    """awk -v f=/tmp/x '{print > f}' .env""",
    """awk '{printf "%s", $0 | $3}' .env""",
    """awk '{system("cp .env " $1)}' x""",
    """awk -f prog.awk .env""",
    """gawk --file=prog.awk .env""",
    """gawk -i lib.awk '{print}' .env""",
    """gawk -l ext '{print}' .env""",
    """awk '{print | "sh"}' cmds""",  # the shell's code comes from awk: not on the line
    'awk "$prog" .env', "awk \"$(cat prog.awk)\" .env",  # a program only known at run time
])
def test_awk_writing_where_only_the_run_knows_fails_closed(line: str) -> None:
    assert anywhere(line), written(line)


@pytest.mark.parametrize("line", [
    "awk '$1 > 5 { print $2 }' data",  # a comparison
    "awk '$0 ~ />/ { print }' data",  # a regular expression
    "awk '{ print ($1 > $2) }' data",  # a comparison in parentheses
    "awk '{ n = n / 2 > 1 }' data",
    """awk '{ print > "/dev/stderr" }' data""",
])
def test_awk_without_an_output_file_writes_nothing(line: str) -> None:
    assert written(line) == []


def test_awk_getline_and_argv_are_reads() -> None:
    found = reads("""awk 'BEGIN { while ((getline l < "/tmp/r") > 0) print l }'""", HOME)
    assert any(same(p, marked("/tmp/r")) for p in found.files), found
    assert reads("awk 'BEGIN { getline l < ENVIRON[\"F\"]; print l }'", HOME).unknown
    assert reads("awk 'BEGIN { ARGV[ARGC++] = \"/tmp/r\" } { print }'", HOME).unknown
    assert reads("awk -f prog.awk", HOME).unknown
    assert not reads("awk '{ print $1 }' data", HOME).unknown


def test_awk_options_and_operands() -> None:
    assert awk_files(("-F", ":", '{print > "/a"}', "f")).writes == ["/a"]
    assert awk_files(("-F:", '{print > "/a"}')).writes == ["/a"]
    assert awk_files(("--", '{print > "/a"}', "-v")).writes == ["/a"]
    assert awk_files(()).unknown  # no program: nothing is known
    assert awk_files(('{print > "/a" ; print >> "/b"}',)).writes == ["/a", "/b"]
    assert awk_files(('{print > $1}',)).writes == [RUNTIME]


# --- sed -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "path"), [
    ("sed -n 'w /tmp/y' .env", "/tmp/y"),
    ("sed 's/a/b/w /tmp/z' .env", "/tmp/z"),
    ("sed 's|a|b|gw /tmp/z' .env", "/tmp/z"),
    ("sed -n '/KEY/W /tmp/z' .env", "/tmp/z"),
    ("sed -n '1,$w /tmp/z' .env", "/tmp/z"),
    ("sed -e p -e 'w /tmp/z' .env", "/tmp/z"),
    ("sed -ne 'w /tmp/z' .env", "/tmp/z"),
    ("sed --expression='w /tmp/z' .env", "/tmp/z"),
    ("sed -n '/a/!{w /tmp/z\n}' .env", "/tmp/z"),
    ("sed -n 'y/abc/xyz/;w /tmp/z' .env", "/tmp/z"),
    ("sed -n ':a;N;$!ba;w /tmp/z' .env", "/tmp/z"),
    ("sed '1e cp .env /tmp/z' .env", "/tmp/z"),
    ("sed 'w rel' .env", "/home/alice/rel"),
    ("sed .env -n -e 'w /tmp/z'", "/tmp/z"),
])
def test_a_file_sed_writes_with_w_is_written(line: str, path: str) -> None:
    assert transforms(line)
    assert (path, False) in paths(line), paths(line)


@pytest.mark.parametrize("line", [
    "sed -f script.sed .env", "sed --file=script.sed .env", "sed 's/.*/cat &/e' .env",
    "sed 'e' cmds", "sed 'Z' .env",  # a command sed does not have: not read, fail closed
    "sed 's/a/b' .env",
    'sed -n "$script" .env', "sed -e p -e \"$w\" .env",
])
def test_sed_that_cannot_be_read_fails_closed(line: str) -> None:
    assert anywhere(line), written(line)


def test_sed_without_w_writes_nothing() -> None:
    for line in ("sed 's/a/b/g' f", "sed -n '/w x/p' f", "sed 'a w /tmp/no' f",
                 "sed 's/w/W/' f", "sed '$!N;P;D' f"):
        assert written(line) == [], line


def test_sed_r_reads_a_file() -> None:
    found = reads("sed '1r /tmp/r' /dev/null", HOME)
    assert any(same(p, marked("/tmp/r")) for p in found.files), found
    assert sed_files(("-n", "R /tmp/r", "f")).reads == ["/tmp/r"]


# --- editors, shells fed code --------------------------------------------------------------------


@pytest.mark.parametrize("line", [
    "printf 'w /tmp/e\\nq\\n' | ed .env",
    "ed -s .env < script",
    "ed .env",
    "ex -c 'w! /tmp/u' -c q .env",
    "vim -es -c 'w /tmp/u' -c q .env",
    "vim -s keys .env",
    "vim +'w /tmp/u' +q .env",
    "nvim --headless -c 'w /tmp/u' .env",
    "emacs --batch .env --eval '(write-file \"/tmp/u\")'",
    "echo 'rev .env > /tmp/x' | sh",
    "sh < cmds",
    "cat cmds | bash -s",
    "cat cmds | parallel",
])
def test_a_program_running_commands_not_on_the_line_may_write_anything(line: str) -> None:
    assert transforms(line)
    assert anywhere(line), written(line)


def test_the_files_an_editor_script_edits_are_written() -> None:
    assert ("/home/alice/.env", False) in paths("printf ',s/a/b/\\nw\\n' | ed .env")
    assert paths("vim -es -c '%s/a/b/' -c wq /srv/f") == [("/srv/f", False)]


def test_an_editor_script_may_read_anything() -> None:
    assert reads("printf 'r /tmp/r\\n,p\\nq\\n' | ed", HOME).unknown
    assert reads("vim -es -c 'r /tmp/r' -c '%p' -c 'q!'", HOME).unknown


@pytest.mark.parametrize("line", ["vim /etc/app.conf", "bash", "sh -c 'rev s'", "nano f"])
def test_an_editor_at_the_screen_or_a_shell_at_the_terminal_is_not_a_script(line: str) -> None:
    assert not anywhere(line)


# --- xargs, find -exec, parallel -----------------------------------------------------------------


@pytest.mark.parametrize("line", [
    "ls .env | xargs cat",
    "ls .env | sudo xargs -0 head -n 5",
    "ls .env | xargs -I{} cat {}",
    "ls .env | xargs -I % sh -c 'cat %'",
    "ls .env | xargs --replace=Q grep -h . Q",
    "ls .env | parallel cat",
    "parallel cat {} ::: .env",
    "find . -name .env -exec cat {} \\;",
])
def test_a_file_a_runner_names_at_run_time_is_read_unknown(line: str) -> None:
    assert reads(line, HOME).unknown, reads(line, HOME)


def test_a_runner_s_name_among_a_command_s_words_is_no_runner() -> None:
    assert not reads("grep parallel notes.txt", HOME).unknown
    assert not reads("grep xargs -I x notes.txt", HOME).unknown


def test_a_runner_printing_names_only_reads_nothing_unknown() -> None:
    assert not reads("find . -name '*.py' | xargs ls -l", HOME).unknown
    assert not reads("find . -name '*.py' | xargs rm", HOME).unknown


@pytest.mark.parametrize(("line", "path", "tree"), [
    ("ls .env | xargs cat > /tmp/q", "/tmp/q", False),
    ("ls .env | xargs cp -t /tmp/d", "/tmp/d", True),
    ("ls .env | xargs -I{} cp {} /tmp/{}.bak", "/tmp", True),
    ("ls .env | xargs -n1 -I X mv X /srv/out/X", "/srv/out", True),
    ("find . -name .env -exec cp {} /tmp/x.{} \\;", "/tmp", True),
    ("find /srv -name .env -exec sudo install -D {} /tmp/d/{} \\;", "/tmp/d", True),
    ("ls .env | xargs rev > /tmp/r", "/tmp/r", False),
])
def test_what_a_runner_s_command_writes_is_marked(line: str, path: str, tree: bool) -> None:
    assert transforms(line)
    assert (path, tree) in paths(line), paths(line)


def test_find_execdir_runs_where_the_gateway_does_not_know() -> None:
    found = paths("find /srv -name .env -execdir cp {} copy \\;")
    assert ("copy", False) in found and all(not p.startswith("/") for p, _ in found), found


@pytest.mark.parametrize("line", [
    "ls | xargs tee", "ls | xargs sed -i s/a/b/", "ls | xargs gzip",
    "find . -exec cp {} \\;", "ls | xargs -I{} sh -c 'rev .env > {}'",
])
def test_a_runner_s_command_writing_named_files_writes_any(line: str) -> None:
    assert anywhere(line), written(line)


# --- archives unpacked ---------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "directory"), [
    ("tar cf - /srv/app | tar xf - -C /tmp/dst", "/tmp/dst"),
    ("tar cf - /srv/app | tar -x -f - --directory=/tmp/dst", "/tmp/dst"),
    ("tar -C /srv -cf - app | tar -C /tmp/dst -xpf -", "/tmp/dst"),
    ("tar czf - .env | ssh other tar xzf - -C /tmp/dst", None),  # runs elsewhere: nothing
    ("tar cf - .env | tar xf -", "/home/alice"),
    ("unzip -o /tmp/a.zip -d /tmp/dst", "/tmp/dst"),
    ("unzip /tmp/a.zip", "/home/alice"),
    ("7z x /tmp/a.7z -o/tmp/dst", "/tmp/dst"),
    ("find . -name .env | cpio -pdm /tmp/dst", "/tmp/dst"),
    ("cpio -idv -D /tmp/dst < /tmp/a.cpio", "/tmp/dst"),
])
def test_an_archive_unpacked_marks_where_it_lands(line: str, directory: str | None) -> None:
    if directory is None:
        assert not any(w.tree for w in written(line))
        return
    assert (directory, True) in paths(line), paths(line)


@pytest.mark.parametrize(("line", "path"), [
    ("tar xf /tmp/a.tar --to-command='cat > /tmp/x'", "/tmp/x"),
    ("tar xf /tmp/a.tar --checkpoint-action=exec='rev .env > /tmp/x'", "/tmp/x"),
    ("tar -x -f /tmp/a.tar -I 'gzip -d > /tmp/x'", "/tmp/x"),
])
def test_what_a_command_given_in_an_option_writes_is_written(line: str, path: str) -> None:
    assert (path, False) in paths(line), paths(line)


def test_unpacking_where_the_directory_is_not_known_writes_any() -> None:
    assert anywhere("tar cf - .env | (cd /tmp/dst && tar xf -)")
    assert anywhere("tar xf /tmp/a.tar", None)


def test_a_listing_or_an_unpacking_to_the_output_writes_nothing() -> None:
    assert not any(w.tree for w in written("tar tf /tmp/a.tar"))
    assert not any(w.tree for w in written("tar xOf /tmp/a.tar"))
    assert not any(w.tree for w in written("unzip -p /tmp/a.zip"))


@pytest.mark.parametrize(("line", "glob"), [
    ("gunzip /tmp/r.gz", "/tmp/r*"), ("gzip -d /tmp/a.tar.gz", "/tmp/a.tar*"),
    ("xz --decompress /tmp/r.xz", "/tmp/r*"), ("unzstd r.zst", "/home/alice/r*"),
])
def test_a_file_decompressed_is_written_without_its_suffix(line: str, glob: str) -> None:
    found = [w.place for w in written(line) if w.place is not None]
    assert any(p.pattern and "/" + "/".join(p.parts) == glob for p in found), found


@pytest.mark.parametrize("line", [
    "zstd -d /tmp/r.zst -o /tmp/out", "lz4 -d /tmp/r.lz4 --output=/tmp/out",
    "openssl enc -base64 -in .env -out /tmp/out", "gpg --output /tmp/out -c .env",
    "openssl base64 -in .env -outfile /tmp/out", "wget -O /tmp/out file:///x",
    "curl --output /tmp/out file:///home/alice/.env",
])
def test_a_program_s_output_option_is_written(line: str) -> None:
    assert ("/tmp/out", False) in paths(line), paths(line)


# --- names only known at run time ----------------------------------------------------------------


def test_a_name_starting_with_an_expansion_may_be_any_path() -> None:
    assert anywhere('rev s > "$f"')  # $f may be /tmp/x: not the working directory
    assert paths("rev s > out_$n") == [("/home/alice", True)]


# --- end to end: one connection writes, a new one reads ------------------------------------------


@pytest.mark.parametrize(("write", "read"), [
    ("""awk '{print > "/tmp/x"}' .env""", "cat /tmp/x"),
    ("sed -n 'w /tmp/y' .env", "cat /tmp/y"),
    ("sed 's/a/b/w /tmp/z' .env", "head /tmp/z"),
    ("printf 'w /tmp/e\\nq\\n' | ed .env", "cat /tmp/e"),
    ("ls .env | xargs rev > /tmp/q", "cat /tmp/q"),
    ("ls .env | xargs -I{} sh -c 'rev {} > /tmp/{}.r'", "cat /tmp/.env.r"),
    ("tar cf - .env | tar xf - -C /tmp/dst", "cat /tmp/dst/home/alice/.env"),
    ("""awk '{print > "/tmp/out." NR}' .env""", "cat /tmp/out.1"),
    ("""awk '{print > $1}' .env""", "cat /etc/hostname"),
])
def test_a_new_connection_reading_what_a_script_wrote_is_masked(
        write: str, read: str, tmp_path: Path) -> None:
    journal = tmp_path / "j"
    first = Memory(Journal(journal), "db1:22", "alice", "s1")
    assert first.wrote((write,), HOME), write
    later = Memory(Journal(journal), "db1:22", "alice", "s2")
    assert later.read((read,), HOME) is not None


def test_a_marked_file_read_through_xargs_masks_the_connection(tmp_path: Path) -> None:
    memory = Memory(Journal(tmp_path / "j"), "db1:22", "alice", "s1")
    assert memory.wrote(("rev .env > /tmp/r",), HOME)
    for line in ("ls /tmp/r | xargs cat", "echo /tmp/r | xargs -I{} cat {}",
                 "find /tmp -name r -exec cat {} +"):
        assert memory.read((line,), HOME) is not None, line
    # the copy it makes is marked (the line reads a marked file: everything it writes is)
    [copy] = memory.wrote(("ls /tmp/r | xargs cat > /tmp/q",), HOME, unseen=True)
    assert copy.path == "/tmp/q"
    assert Memory(Journal(tmp_path / "j"), "db1:22", "bob", "s2").read(
        ("cat /tmp/q",), HOME) is not None


def test_a_marked_file_copied_through_xargs_is_marked_where_it_lands(tmp_path: Path) -> None:
    memory = Memory(Journal(tmp_path / "j"), "db1:22", "alice", "s1")
    assert memory.wrote(("rev .env > /tmp/r",), HOME)
    memory.wrote(("ls /tmp/r | xargs cp -t /srv/d",), HOME)
    assert memory.read(("cat /srv/d/r",), HOME) is not None
