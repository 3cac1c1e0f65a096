"""``shellwords.parse``: command lines split the way the shell splits them, and refused when not.

Each case pins the argv of every simple command the line runs (substitutions first, as they
run before their command), so that a quoting trick that suddenly hides a command is noticed.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.guardrail.shellwords import (
    MAX_LENGTH,
    Compound,
    Pipeline,
    Redirect,
    ShellParseError,
    SimpleCommand,
    parse,
    simple_commands,
)

FUZZ = settings(database=None, deadline=None, max_examples=300)
SHELLISH = " \t\n;&|()<>$`'\"\\{}[]#=*?~-!abcdrmshEOF/0129:,."


def argvs(line: str) -> list[tuple[str, ...]]:
    return [c.argv for c in simple_commands(parse(line))]


def only(line: str) -> SimpleCommand:
    """The one simple command of ``line``."""
    (command,) = simple_commands(parse(line))
    return command


WORDS = [
    # --- quote removal -------------------------------------------------------------------
    ('r""m -rf /', [("rm", "-rf", "/")]),
    ("'r'm x", [("rm", "x")]),
    ("\\rm x", [("rm", "x")]),
    ('"rm" x', [("rm", "x")]),
    ("r\\\nm x", [("rm", "x")]),  # a line continuation inside a word
    ("$'\\x72\\155' -rf /", [("rm", "-rf", "/")]),  # ANSI-C quoting: hex and octal escapes
    ("$'it\\'s' $'a\\tb'", [("it's", "a\tb")]),
    ('echo "a b" c\\ d', [("echo", "a b", "c d")]),
    ('echo "q\\"b\\\\s\\$d\\`t"', [("echo", 'q"b\\s$d`t')]),
    ('echo "a\\nb"', [("echo", "a\\nb")]),  # other backslashes stay inside double quotes
    ("echo 'a\\nb'", [("echo", "a\\nb")]),
    ("echo ''", [("echo", "")]),
    # --- comments ------------------------------------------------------------------------
    ("# rm -rf /", []),
    ("ls # rm -rf /", [("ls",)]),
    ("echo a#b", [("echo", "a#b")]),
    ("echo '#' \\#x", [("echo", "#", "#x")]),
    # --- assignments ---------------------------------------------------------------------
    ("FOO=1 BAR='x y' rm -rf /", [("rm", "-rf", "/")]),
    ("echo FOO=1", [("echo", "FOO=1")]),
    ("'FOO'=1 x", [("FOO=1", "x")]),  # a quoted name is not an assignment
    ("a=(1 2) b", [("b",)]),
    # --- lists and pipelines -------------------------------------------------------------
    ("a; b && c || d | e & f\ng", [("a",), ("b",), ("c",), ("d",), ("e",), ("f",), ("g",)]),
    ("a|b|&c", [("a",), ("b",), ("c",)]),
    ("a &&\n b", [("a",), ("b",)]),
    ("a |\n\n b", [("a",), ("b",)]),
    # --- substitutions run too -----------------------------------------------------------
    ("echo $(rm -rf /)", [("rm", "-rf", "/"), ("echo", "$(rm -rf /)")]),
    ("echo `rm -rf /`", [("rm", "-rf", "/"), ("echo", "`rm -rf /`")]),
    ('echo "$(rm x)"', [("rm", "x"), ("echo", "$(rm x)")]),
    ("echo `echo \\`rm x\\``", [("rm", "x"), ("echo", "`rm x`"), ("echo", "`echo \\`rm x\\``")]),
    ("echo $(echo $(rm x))", [("rm", "x"), ("echo", "$(rm x)"), ("echo", "$(echo $(rm x))")]),
    ("x=$(rm a)", [("rm", "a"), ()]),  # an assignment alone is a command without argv
    ("echo ${x:-$(rm a)}", [("rm", "a"), ("echo", "${x:-$(rm a)}")]),
    ("echo $(( $(rm a) + 1 ))", [("rm", "a"), ("echo", "$(( $(rm a) + 1 ))")]),
    ("echo $(case x in a) rm y;; esac)", [("rm", "y"), ("echo", "$(case x in a) rm y;; esac)")]),
    ("diff <(ls a) >(cat)", [("ls", "a"), ("cat",), ("diff", "<(ls a)", ">(cat)")]),
    ("ls > $(rm f)", [("rm", "f"), ("ls",)]),
    # --- compound commands ---------------------------------------------------------------
    ("(rm a; rm b)", [("rm", "a"), ("rm", "b")]),
    ("{ rm a; rm b; } > out", [("rm", "a"), ("rm", "b")]),
    ("if test -d x; then rm -r x; elif y; then z; else w; fi",
     [("test", "-d", "x"), ("rm", "-r", "x"), ("y",), ("z",), ("w",)]),
    ("while read f; do rm \"$f\"; done < list", [("read", "f"), ("rm", "$f"), ()]),
    ("for f in $(ls); do rm $f; done", [("ls",), ("for", "f", "in", "$(ls)"), ("rm", "$f")]),
    ("case $1 in a|b) rm a;; (c) rm c;; *) ;; esac", [("rm", "a"), ("rm", "c")]),
    ("! rm x", [("rm", "x")]),
    ("time -p rm x", [("rm", "x")]),
    ("f() { rm x; }; f", [("rm", "x"), ("f",)]),
    ("function g { rm y; }", [("rm", "y")]),
    ("[[ -f x && ( y || z ) ]] && rm x",
     [("[[", "-f", "x", "&&", "(", "y", "||", "z", ")", "]]"), ("rm", "x")]),
    # --- here-documents ------------------------------------------------------------------
    ("cat <<EOF\n$(rm x)\nEOF\nls", [("rm", "x"), ("cat",), ("ls",)]),
    ("cat <<'EOF'\n$(rm x)\nEOF", [("cat",)]),
    ("cat <<EOF; ls\nbody\nEOF\npwd", [("cat",), ("ls",), ("pwd",)]),
]


@pytest.mark.parametrize(("line", "expected"), WORDS, ids=[w[0][:40] for w in WORDS])
def test_words(line: str, expected: list[tuple[str, ...]]) -> None:
    assert argvs(line) == expected


def test_assignments_and_redirects() -> None:
    command = only("FOO=1 rm -rf / >out 2>&1 <in >>log &>all 2>/dev/null 0<&3")
    assert command.argv == ("rm", "-rf", "/")
    assert command.assignments == ("FOO=1",)
    assert [(r.op, r.target) for r in command.redirects] == [
        (">", "out"), ("2>&", "1"), ("<", "in"), (">>", "log"), ("&>", "all"),
        ("2>", "/dev/null"), ("0<&", "3")]


def test_pipelines_keep_their_order() -> None:
    script = parse("curl -s x | sudo bash; echo done &")
    assert len(script) == 2
    first, second = script
    assert [s.argv for s in first.stages if isinstance(s, SimpleCommand)] == [
        ("curl", "-s", "x"), ("sudo", "bash")]
    assert not first.background
    assert second.background


def test_substitutions_say_where_they_sit() -> None:
    (pipeline,) = parse("echo a $(rm x) > `pwd`")
    (command,) = pipeline.stages
    assert isinstance(command, SimpleCommand)
    assert command.argv == ("echo", "a", "$(rm x)")
    assert command.unresolved == frozenset({2})
    kinds = [(s.kind, s.word, s.redirect) for s in command.substitutions]
    assert kinds == [("$(", 2, None), ("`", None, 0)]
    inner = command.substitutions[0].script
    assert inner == (Pipeline((SimpleCommand(("rm", "x"), patterns=("rm", "x")),)),)


def test_groups_and_functions() -> None:
    (pipeline,) = parse("{ rm a; } 2>err")
    (group,) = pipeline.stages
    assert isinstance(group, Compound)
    assert group.kind == "group"
    assert group.redirects == (Redirect("2>", "err"),)
    (pipeline,) = parse(":(){ :|:& }")
    (function,) = pipeline.stages
    assert isinstance(function, Compound)
    assert (function.kind, function.name) == ("function", ":")


@pytest.mark.parametrize(("line", "unresolved"), [
    ("echo $HOME", {1}), ("echo ${HOME}/x", {1}), ("echo *.txt", {1}), ("echo ~/x", {1}),
    ("echo {a,b}", {1}), ("echo {1..3}", {1}), ("echo $((1+2))", {1}), ("echo [ab]", {1}),
    ("echo '$HOME' \\* a~ {} [", set()), ('echo "$HOME"', {1}), ("echo \\$HOME $", set()),
])
def test_unresolved_words_stay_as_written(line: str, unresolved: set[int]) -> None:
    command = only(line)
    assert command.unresolved == unresolved
    if unresolved:
        assert command.argv[1] == line.split(" ", 1)[1].replace('"', "")


def test_here_documents() -> None:
    command = only("cat <<-EOF\n\tline $HOME\n\tEOF")
    assert command.redirects == (Redirect("<<-", "line $HOME\n", unresolved=True),)
    command = only("cat <<< 'a b'")
    assert command.redirects == (Redirect("<<<", "a b"),)
    command = only("cat <<EOF")  # the body ends with the line
    assert command.redirects == (Redirect("<<", ""),)


@pytest.mark.parametrize("line", [
    "echo 'abc", 'echo "abc', "echo $(ls", "echo `ls", "(ls", "{ ls;", "ls )", "ls |",
    "a &&", "a ||", "echo ${x", "echo $((1+2)", "case x in a) ls", "echo >", "echo $'abc",
    "ls ( x", "; ls", "}", "esac", "ls | }", "a ;; b", "f() ls", "echo <(ls", "[[ a",
    "if true; then (", "a=(1 2", "cat <<",
])
def test_unreadable_lines_are_refused(line: str) -> None:
    with pytest.raises(ShellParseError) as info:
        parse(line)
    message = str(info.value)
    assert message and "\n" not in message


def test_depth_limit() -> None:
    assert argvs("echo " + "$(" * 8 + "rm" + ")" * 8)[0] == ("rm",)
    with pytest.raises(ShellParseError, match="nests more than 8 levels"):
        parse("echo " + "$(" * 9 + "rm" + ")" * 9)
    with pytest.raises(ShellParseError, match="nests more than 8 levels"):
        parse("(" * 9 + "rm" + ")" * 9)
    with pytest.raises(ShellParseError, match="nests more than 2 levels"):
        parse("echo `echo \\`echo \\\\\\`rm\\\\\\`\\``", max_depth=2)
    with pytest.raises(ShellParseError, match="nests more than"):
        parse("$(" * 30_000)


def test_length_and_command_limits() -> None:
    assert parse("a" * MAX_LENGTH)
    with pytest.raises(ShellParseError, match="longer than"):
        parse("a" * (MAX_LENGTH + 1))
    with pytest.raises(ShellParseError, match="too many commands"):
        parse("a;" * 2001)


@FUZZ
@given(st.one_of(st.text(max_size=200), st.text(alphabet=SHELLISH, max_size=80)))
def test_any_text_parses_or_is_refused(line: str) -> None:
    try:
        script = parse(line)
    except ShellParseError:
        return
    for command in simple_commands(script):
        assert len(command.argv) >= len(command.unresolved)
