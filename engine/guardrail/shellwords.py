"""Shell command lines → a tree of simple commands, without running anything (sans-io).

``parse`` reads a POSIX shell command line, with the bash extensions people type, the way the
shell itself would split it, so that the classifier in ``commands`` judges what will run rather
than what the text looks like: ``r""m``, ``'r'm``, ``\\rm`` and ``$'\\x72m'`` are all the word
``rm``; ``FOO=1 rm`` is an assignment and the command ``rm``; a ``#`` that starts a word begins a
comment. The result is a ``Script``: the pipelines of a list (joined by ``;``, ``&``, ``&&``,
``||`` or newlines, which all run or may run), each a tuple of stages that feed one another's
standard input (``Pipeline.stages[i]`` writes into ``stages[i + 1]``). A stage is a
``SimpleCommand`` or a ``Compound`` (``( … )`` subshell, ``{ …; }`` group, ``case``, or a
function definition) whose body is again a ``Script``.

Commands hidden inside words are parsed too and returned where they occur: ``$( … )``,
backquotes and ``<( … )``/``>( … )`` become ``Substitution``s of the command (with the argv
index or redirection they sit in), as do the expansions in an unquoted here-document's body.
``if``/``while``/``until``/``for`` are flattened: their keywords are dropped and every command
of their conditions and bodies is a command of the list, since any of them may run.

What is not resolved stays in the word as written, and the word is marked ``unresolved``:
``$VAR``, ``${VAR:-x}``, ``$((1+1))``, substitutions, globs (``*``, ``?``, ``[…]``), brace
expansion (``{a,b}``) and a leading ``~``. A here-document's body (after expansion, as far as
that can be known) is the target of its ``<<`` redirection.

Not understood, and reported as a ``ShellParseError`` rather than guessed at: unbalanced
quotes, parentheses, braces and ``case``; ``(`` in the middle of a command (bash extglob);
nesting deeper than ``max_depth`` (each substitution, subshell, group, case, ``${…}`` and
``$((…))`` is a level); lines longer than ``max_length`` or with more than ``max_commands``
simple commands, so that hostile input costs bounded time and never recurses without bound.
A shell would reject most of these too; callers apply their fallback. ``((…))`` arithmetic
commands are read as nested subshells (harmless words, their substitutions seen), ``for ((…))``
as a command holding its substitutions, and ``fi``/``done``/``then`` are accepted without
checking that they balance.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

MAX_LENGTH = 64 * 1024
MAX_DEPTH = 8  # nesting levels in one line; ``commands`` counts shells within shells too
MAX_COMMANDS = 2000  # simple commands in one line: bounds the work hostile input can cause


class ShellParseError(ValueError):
    """The line cannot be read as shell words; the message says why in one sentence."""


class ShellIncomplete(ShellParseError):
    """The line ends inside a construct (a quote, ``$(``, ``{``, ``if``, a here-document whose
    delimiter has not come): a shell would wait for more lines rather than run it."""


@dataclass(frozen=True)
class Redirect:
    """``op`` as written with its file descriptor (``>``, ``2>``, ``2>&``, ``&>>``, ``<<``,
    ``<<<``) and its target after quote removal; for ``<<``/``<<-`` the document's body."""

    op: str
    target: str
    unresolved: bool = False


@dataclass(frozen=True)
class Substitution:
    """Commands whose output becomes part of a word: ``kind`` is ``$(``, a backquote,
    ``<(`` or ``>(``. ``word`` is the argv index it sits in, ``redirect`` the index into
    ``redirects``; both None for assignments, ``case`` words and patterns."""

    kind: str
    script: Script
    word: int | None = None
    redirect: int | None = None


@dataclass(frozen=True)
class SimpleCommand:
    argv: tuple[str, ...]
    unresolved: frozenset[int] = frozenset()  # argv indexes holding something left as written
    assignments: tuple[str, ...] = ()  # NAME=value words before the program
    redirects: tuple[Redirect, ...] = ()
    substitutions: tuple[Substitution, ...] = ()
    # argv indexes holding a value only known at run time ($VAR, $( … ), `…`): a subset of
    # ``unresolved``, which also counts globs, braces and ``~``
    dynamic: frozenset[int] = frozenset()
    # each word as a pattern: quoted or escaped ``* ? [ ] { } , ~ \`` carry a backslash, so
    # that what is left unescaped is what the shell expands (``brace_expand``, ``glob_regex``)
    patterns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Compound:
    kind: str  # subshell | group | case | function
    body: Script
    name: str = ""  # the function's name, or the word a case matches
    redirects: tuple[Redirect, ...] = ()
    substitutions: tuple[Substitution, ...] = ()


@dataclass(frozen=True)
class Pipeline:
    stages: tuple[SimpleCommand | Compound, ...]
    background: bool = False  # ended by "&"
    after: str = ""  # the operator before it: "&&" (runs if the one before succeeded), "||"
    # (if it failed), else "" (runs either way)


Script = tuple[Pipeline, ...]


def parse(line: str, *, max_depth: int = MAX_DEPTH, max_length: int = MAX_LENGTH,
          max_commands: int = MAX_COMMANDS, complete: bool = False) -> Script:
    """The pipelines of ``line``, in order; raises ``ShellParseError`` (``ShellIncomplete``
    when a shell would wait for more lines; with ``complete``, also for a here-document
    whose delimiter has not come)."""
    if len(line) > max_length:
        raise ShellParseError(f"the command line is longer than {max_length} characters")
    try:
        parser = _Parser(line, 0, _Limits(max_depth, max_commands, complete))
        script = parser.script()
        if complete and parser.heredocs:
            raise ShellIncomplete("a here-document's body has not come yet")
        return _freeze(script)
    except RecursionError:  # only with a max_depth far above the default
        raise ShellParseError("the command line is nested too deeply") from None


def simple_commands(script: Script) -> Iterator[SimpleCommand]:
    """Every simple command of ``script``, substitutions (which run first) before their
    command, the bodies of groups, subshells, case and functions included."""
    for pipeline in script:
        for stage in pipeline.stages:
            for sub in stage.substitutions:
                yield from simple_commands(sub.script)
            if isinstance(stage, Compound):
                yield from simple_commands(stage.body)
            else:
                yield stage


def pipelines(script: Script) -> Iterator[Pipeline]:
    """Every pipeline of ``script``: in substitutions, groups, subshells and functions too."""
    for pipeline in script:
        yield pipeline
        for stage in pipeline.stages:
            for sub in stage.substitutions:
                yield from pipelines(sub.script)
            if isinstance(stage, Compound):
                yield from pipelines(stage.body)


# --- while parsing: mutable nodes (a here-document's body arrives after its command ended) --

@dataclass
class _Sub:
    kind: str
    body: list[_Pipe]


@dataclass
class _Word:
    text: str
    raw: str  # as written: keywords and assignments are only recognised unquoted
    unresolved: bool = False
    subs: list[_Sub] = field(default_factory=list)
    dynamic: bool = False  # holds a value only known at run time
    pattern: str = ""  # see SimpleCommand.patterns


@dataclass
class _Redir:
    op: str
    target: str
    unresolved: bool
    subs: list[_Sub]


@dataclass
class _Cmd:
    words: list[_Word] = field(default_factory=list)
    assigns: list[_Word] = field(default_factory=list)
    redirs: list[_Redir] = field(default_factory=list)


@dataclass
class _Group:
    kind: str
    body: list[_Pipe]
    name: str = ""
    redirs: list[_Redir] = field(default_factory=list)
    subs: list[_Sub] = field(default_factory=list)


@dataclass
class _Pipe:
    stages: list[_Cmd | _Group]
    background: bool = False
    after: str = ""


@dataclass
class _Token:
    kind: str  # word | op | newline | end
    raw: str
    word: _Word | None = None


# Longest first; an IO number (the 2 of 2>&1) belongs to the operator.
_OPERATOR = re.compile(r"[0-9]*(?:<<<|<<-|&>>|<<|>>|<&|>&|<>|>\||&>|<|>)"
                       r"|;;&|;;|;&|&&|\|\||\|&|[;&|()]")
_PLAIN = re.compile(r"[^\s;&|()<>\\'\"$`*?~{}\[\]]+")  # word characters with no meaning
_REDIRECTS = frozenset({"<", ">", ">>", ">|", "<>", "<&", ">&", "&>", "&>>", "<<", "<<-",
                        "<<<"})
_CASE_ENDS = frozenset({";;", ";&", ";;&"})
# Dropped where a command starts: the command after them runs (if/while conditions too).
_PREFIX_KEYWORDS = frozenset({"if", "then", "else", "elif", "do", "while", "until", "!",
                              "time", "coproc"})
_DIGITS = "0123456789"
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")
_PARAMETER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-]")
_OCTAL = re.compile(r"[0-7]{1,3}")
_HEX = {2: re.compile(r"[0-9a-fA-F]{1,2}"), 4: re.compile(r"[0-9a-fA-F]{1,4}"),
        8: re.compile(r"[0-9a-fA-F]{1,8}")}
_ACTIVE = "*?[]{},~"  # what globbing, brace and tilde expansion act on, when unquoted
_ANSI_ESCAPES = {"a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n",
                 "r": "\r", "t": "\t", "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?"}


@dataclass
class _Limits:
    """Shared by a parser and the parsers of its backquotes and here-documents."""

    max_depth: int
    commands_left: int
    complete: bool = False  # a here-document without its delimiter is ShellIncomplete


class _Parser:
    """Recursive descent over tokens lexed on demand: the lexer itself recurses into the
    parser for ``$(``, so that a ``)`` inside it (a ``case`` pattern) is read as the shell
    reads it. ``depth`` counts every nested construct; past ``max_depth`` the line is refused.
    """

    def __init__(self, text: str, depth: int, limits: _Limits) -> None:
        if depth > limits.max_depth:
            raise ShellParseError(_too_deep(limits.max_depth))
        self.text = text
        self.pos = 0
        self.depth = depth
        self.limits = limits
        self.peeked: _Token | None = None
        # here-documents whose body starts after the next newline: (redirect, delimiter,
        # strip leading tabs, delimiter quoted)
        self.heredocs: list[tuple[_Redir, str, bool, bool]] = []

    def script(self) -> list[_Pipe]:
        pipes = self._list(frozenset(), frozenset())
        tok = self._peek()
        if tok.kind != "end":
            raise _unexpected(tok)
        return pipes

    @contextmanager
    def _nested(self) -> Iterator[None]:
        self.depth += 1
        if self.depth > self.limits.max_depth:
            raise ShellParseError(_too_deep(self.limits.max_depth))
        try:
            yield
        finally:
            self.depth -= 1

    # --- grammar ------------------------------------------------------------------------

    def _list(self, stop_words: frozenset[str], stop_ops: frozenset[str]) -> list[_Pipe]:
        """Pipelines up to the end, or (not consumed) a stop operator or a stop keyword where
        a command would start."""
        pipes: list[_Pipe] = []
        need_more = ""
        connector = ""
        while True:
            tok = self._peek()
            if tok.kind == "newline":
                self.peeked = None
                continue
            if (tok.kind == "end" or (tok.kind == "op" and tok.raw in stop_ops)
                    or (tok.kind == "word" and tok.raw in stop_words)):
                if need_more:
                    raise _incomplete(tok, f"a command is missing after {need_more!r}")
                return pipes
            pipe = self._pipeline(stop_words)
            pipe.after, connector = connector, ""
            pipes.append(pipe)
            need_more = ""
            tok = self._peek()
            if tok.kind == "op" and tok.raw in (";", "&"):
                pipe.background = tok.raw == "&"
                self.peeked = None
            elif tok.kind == "op" and tok.raw in ("&&", "||"):
                self.peeked = None
                need_more = connector = tok.raw
            elif tok.kind == "newline":
                self.peeked = None
            elif not (tok.kind == "end" or (tok.kind == "op" and tok.raw in stop_ops)
                      or (tok.kind == "word" and tok.raw in stop_words)):
                raise _unexpected(tok)

    def _pipeline(self, stop_words: frozenset[str]) -> _Pipe:
        pipe = _Pipe([self._command(stop_words)])
        while True:
            tok = self._peek()
            if tok.kind != "op" or tok.raw not in ("|", "|&"):
                return pipe
            self.peeked = None
            self._skip_newlines()
            pipe.stages.append(self._command(stop_words))

    def _command(self, stop_words: frozenset[str]) -> _Cmd | _Group:
        skipped = False
        tok = self._peek()
        while tok.kind == "word" and tok.raw in _PREFIX_KEYWORDS:
            self.peeked = None
            skipped = True
            if tok.raw == "time" and self._peek().raw == "-p":
                self.peeked = None
            self._skip_newlines()
            tok = self._peek()
        if tok.kind == "word" and tok.raw in stop_words and skipped:
            return _Cmd()
        if tok.kind == "word" and tok.raw == "for" and \
                self.text[self.pos:].lstrip(" \t").startswith("(("):
            return self._arithmetic_for()
        if tok.kind == "op" and tok.raw == "(":
            self.peeked = None
            with self._nested():
                body = self._list(frozenset(), frozenset({")"}))
                self._expect(")", "unterminated ( subshell")
            return self._redirected(_Group("subshell", body))
        if tok.kind == "word":
            if tok.raw == "{":
                self.peeked = None
                with self._nested():
                    body = self._list(frozenset({"}"}), frozenset())
                    self._expect("}", "unterminated { group (a '}' must start a command)")
                return self._redirected(_Group("group", body))
            if tok.raw == "case":
                return self._redirected(self._case())
            if tok.raw == "function":
                self.peeked = None
                name = self._take()
                if name.kind != "word":
                    raise ShellParseError("'function' must be followed by a name")
                if self._peek().raw == "(":
                    self.peeked = None
                    self._expect(")", "a function name must be followed by '()'")
                return self._function(name.word.text if name.word else name.raw)
            if tok.raw in ("}", "esac"):
                raise _unexpected(tok)
            if tok.raw in ("fi", "done"):
                self.peeked = None
                skipped = True
        if not skipped and not (tok.kind == "word" or (
                tok.kind == "op" and tok.raw.lstrip(_DIGITS) in _REDIRECTS)):
            raise _unexpected(tok)
        return self._simple()

    def _simple(self) -> _Cmd | _Group:
        self.limits.commands_left -= 1
        if self.limits.commands_left < 0:
            raise ShellParseError("the command line has too many commands to check")
        cmd = _Cmd()
        while True:
            tok = self._peek()
            if tok.kind == "word" and tok.word is not None:
                self.peeked = None
                if not cmd.words and _ASSIGNMENT.match(tok.raw):
                    cmd.assigns.append(tok.word)
                    continue
                cmd.words.append(tok.word)
                if len(cmd.words) == 1 and tok.raw == "[[":
                    self._test_words(cmd)
            elif tok.kind == "op" and tok.raw.lstrip(_DIGITS) in _REDIRECTS:
                self.peeked = None
                self._redirect(tok.raw, cmd.redirs)
            elif tok.kind == "op" and tok.raw == "(":
                if len(cmd.words) != 1 or cmd.assigns or cmd.redirs:
                    raise ShellParseError("unexpected '(' in the middle of a command")
                self.peeked = None
                self._expect(")", "a function name must be followed by '()'")
                return self._function(cmd.words[0].text)
            else:
                return cmd

    def _arithmetic_for(self) -> _Cmd:
        """``for (( init; test; step ))``: arithmetic, whose command substitutions run; the
        body follows as ``do … done`` (or a ``{ …; }`` group), read as commands of the list."""
        self.peeked = None
        self.pos = self.text.index("((", self.pos) + 2
        subs: list[_Sub] = []
        with self._nested():
            self._balanced(")", subs, "arithmetic for (( … ))")
            if not self.text.startswith(")", self.pos):
                raise ShellParseError("an arithmetic for must end with '))'")
            self.pos += 1
        cmd = _Cmd()
        cmd.words.append(_Word(":", ":", bool(subs), subs, bool(subs), ":"))
        rest = self.text[self.pos:].lstrip(" \t")
        if rest.startswith("{"):  # for ((…)) { …; }: the group is the next command
            self.text = self.text[:self.pos] + ";" + self.text[self.pos:]
        return cmd

    def _test_words(self, cmd: _Cmd) -> None:
        """``[[ … ]]``: operators inside are words of the test, not of the shell."""
        while True:
            tok = self._take()
            if tok.kind == "word" and tok.word is not None:
                cmd.words.append(tok.word)
                if tok.raw == "]]":
                    return
            elif tok.kind == "op" and tok.raw in ("&&", "||", "(", ")", "<", ">", "|"):
                cmd.words.append(_Word(tok.raw, tok.raw))
            elif tok.kind != "newline":
                raise _incomplete(tok, "unterminated [[ test (no ']]')")

    def _function(self, name: str) -> _Group:
        self._skip_newlines()
        body = self._command(frozenset())
        if not isinstance(body, _Group) or body.kind not in ("group", "subshell"):
            raise ShellParseError(f"the body of function {name!r} must be a {{ …; }} group")
        return _Group("function", [_Pipe([body])], name=name)

    def _case(self) -> _Group:
        self.peeked = None
        tok = self._take()
        if tok.kind != "word" or tok.word is None:
            raise ShellParseError("'case' must be followed by a word")
        group = _Group("case", [], name=tok.word.text, subs=list(tok.word.subs))
        self._skip_newlines()
        if self._take().raw != "in":
            raise ShellParseError("'case WORD' must be followed by 'in'")
        with self._nested():
            while True:
                self._skip_newlines()
                tok = self._peek()
                if tok.kind == "word" and tok.raw == "esac":
                    self.peeked = None
                    return group
                if tok.kind == "op" and tok.raw == "(":
                    self.peeked = None
                while True:
                    tok = self._take()
                    if tok.kind != "word" or tok.word is None:
                        raise _incomplete(tok, "unterminated case (a pattern or 'esac' is "
                                          "missing)")
                    group.subs.extend(tok.word.subs)
                    tok = self._take()
                    if tok.raw == ")":
                        break
                    if tok.raw != "|":
                        raise ShellParseError("a case pattern must end with ')'")
                group.body.extend(self._list(frozenset({"esac"}), _CASE_ENDS))
                tok = self._peek()
                if tok.kind == "op" and tok.raw in _CASE_ENDS:
                    self.peeked = None
                elif tok.raw != "esac":
                    raise _incomplete(tok, "unterminated case (no 'esac')")

    def _redirected(self, group: _Group) -> _Group:
        while True:
            tok = self._peek()
            if tok.kind != "op" or tok.raw.lstrip(_DIGITS) not in _REDIRECTS:
                return group
            self.peeked = None
            self._redirect(tok.raw, group.redirs)

    def _redirect(self, op: str, redirs: list[_Redir]) -> None:
        tok = self._take()
        if tok.kind != "word" or tok.word is None:
            raise ShellParseError(f"the redirection {op!r} has no target")
        word = tok.word
        redir = _Redir(op, word.text, word.unresolved, list(word.subs))
        if op.lstrip(_DIGITS) in ("<<", "<<-"):
            quoted = any(q in word.raw for q in "'\"\\")
            redir.target, redir.unresolved = "", False
            self.heredocs.append((redir, word.text, op.endswith("-"), quoted))
        redirs.append(redir)

    def _expect(self, raw: str, message: str) -> None:
        tok = self._take()
        if tok.raw != raw:
            raise _incomplete(tok, message)

    def _skip_newlines(self) -> None:
        while self._peek().kind == "newline":
            self.peeked = None

    def _peek(self) -> _Token:
        if self.peeked is None:
            self.peeked = self._lex()
        return self.peeked

    def _take(self) -> _Token:
        tok = self._peek()
        self.peeked = None
        return tok

    # --- lexer --------------------------------------------------------------------------

    def _lex(self) -> _Token:
        text = self.text
        while True:
            while self.pos < len(text) and text[self.pos] in " \t":
                self.pos += 1
            if text.startswith("\\\n", self.pos):
                self.pos += 2
            elif text.startswith("#", self.pos):
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            else:
                break
        if self.pos >= len(text):
            return _Token("end", "")
        if text[self.pos] == "\n":
            self.pos += 1
            self._read_heredocs()
            return _Token("newline", "\n")
        if text.startswith(("<(", ">("), self.pos):
            return self._word_token()
        op = _OPERATOR.match(text, self.pos)
        if op:
            self.pos = op.end()
            return _Token("op", op.group())
        return self._word_token()

    def _word_token(self) -> _Token:
        word = self._word()
        return _Token("word", word.raw, word)

    def _word(self) -> _Word:
        text = self.text
        start = self.pos
        buf: list[str] = []
        pat: list[str] = []  # the word as a pattern (SimpleCommand.patterns)
        subs: list[_Sub] = []
        unresolved = dynamic = False
        brace = bracket = -1  # where an unquoted { or [ opened, for brace expansion and globs
        while self.pos < len(text):
            plain = _PLAIN.match(text, self.pos)
            if plain:
                buf.append(plain.group())
                pat.append(plain.group())  # nothing active in it but commas, which are
                self.pos = plain.end()
                continue
            c = text[self.pos]
            if c in " \t\n;&|)":
                break
            if c in "<>":
                if not text.startswith("(", self.pos + 1):
                    break
                opened = self.pos
                self.pos += 2
                subs.append(_Sub(c + "(", self._substitution(f"{c}( process substitution")))
                buf.append(text[opened:self.pos])
                pat.append(_escape(text[opened:self.pos]))
                unresolved = dynamic = True
            elif c == "(" and self.pos > start and text[self.pos - 1] in "?*+@!" \
                    and pat and pat[-1][-1:] == text[self.pos - 1]:
                opened = self.pos - 1  # bash's extglob: @(a|b), !(x), *(…), +(…), ?(…)
                self.pos += 1
                with self._nested():
                    self._balanced(")", subs, "extended glob")
                buf.append(text[opened + 1:self.pos])
                pat[-1] = pat[-1][:-1]  # the operator is part of the pattern, not a letter
                pat.append("*")  # whatever it matches: any text, as far as judging goes
                unresolved = True
            elif c == "(":
                if not _ASSIGNMENT.fullmatch(text, start, self.pos):
                    break
                opened = self.pos
                self.pos += 1  # NAME=( … ): an array assignment
                with self._nested():
                    self._balanced(")", subs, "array assignment")
                buf.append(text[opened:self.pos])
                pat.append(_escape(text[opened:self.pos]))
                unresolved = dynamic = True
            elif c == "\\":
                if text.startswith("\n", self.pos + 1):
                    self.pos += 2
                else:
                    buf.append(text[self.pos + 1:self.pos + 2] or "\\")
                    pat.append(_escape(buf[-1]))
                    self.pos = min(self.pos + 2, len(text))
            elif c == "'":
                end = text.find("'", self.pos + 1)
                if end < 0:
                    raise ShellIncomplete("unterminated single quote")
                buf.append(text[self.pos + 1:end])
                pat.append(_escape(buf[-1]))
                self.pos = end + 1
            elif c == '"' or text.startswith('$"', self.pos):
                self.pos += 1 if c == '"' else 2
                before = len(buf)
                expanded = self._expanding(buf, subs, '"')
                unresolved |= expanded
                dynamic |= expanded
                pat.append(_escape("".join(buf[before:])))
            elif text.startswith("$'", self.pos):
                self.pos += 2
                buf.append(self._ansi_c())
                pat.append(_escape(buf[-1]))
            elif c == "$":
                before = len(buf)
                expanded = self._dollar(buf, subs)
                unresolved |= expanded
                dynamic |= expanded
                pat.append(_escape("".join(buf[before:])))
            elif c == "`":
                before = len(buf)
                self._backquote(buf, subs)
                pat.append(_escape("".join(buf[before:])))
                unresolved = dynamic = True
            else:
                if c in "*?" or (c == "~" and self.pos == start):
                    unresolved = True
                elif c == "{":
                    brace = len(buf)
                elif c == "}" and brace >= 0:
                    inside = "".join(buf[brace:])
                    unresolved |= "," in inside or ".." in inside
                elif c == "[":
                    bracket = len(buf)
                elif c == "]" and bracket >= 0:
                    unresolved = True
                buf.append(c)
                pat.append(c if c in _ACTIVE else _escape(c))
                self.pos += 1
        return _Word("".join(buf), text[start:self.pos], unresolved, subs, dynamic,
                     "".join(pat))

    def _expanding(self, buf: list[str], subs: list[_Sub], terminator: str | None) -> bool:
        """Double-quoted text up to ``terminator`` (or a here-document's whole body, None):
        backslash escapes only ``$ ` \\`` (and ``"`` in quotes); expansions stay as written.
        True if any expansion was left unresolved."""
        text = self.text
        escapable = '$`\\"' if terminator else "$`\\"
        unresolved = False
        while True:
            if self.pos >= len(text):
                if terminator is None:
                    return unresolved
                raise ShellIncomplete("unterminated double quote")
            c = text[self.pos]
            if c == terminator:
                self.pos += 1
                return unresolved
            if c == "\\":
                following = text[self.pos + 1:self.pos + 2]
                if following == "\n":
                    self.pos += 2
                elif following and following in escapable:
                    buf.append(following)
                    self.pos += 2
                else:
                    buf.append("\\")
                    self.pos += 1
            elif c == "$":
                unresolved |= self._dollar(buf, subs)
            elif c == "`":
                self._backquote(buf, subs)
                unresolved = True
            else:
                buf.append(c)
                self.pos += 1

    def _dollar(self, buf: list[str], subs: list[_Sub]) -> bool:
        """An expansion at ``$``, kept as written; False if the ``$`` is a literal one."""
        text = self.text
        start = self.pos
        if text.startswith("$((", start):
            self.pos += 3
            with self._nested():
                self._balanced(")", subs, "$(( arithmetic expansion")
            if not text.startswith(")", self.pos):
                raise ShellParseError("unterminated $(( arithmetic expansion")
            self.pos += 1
        elif text.startswith("$(", start):
            self.pos += 2
            subs.append(_Sub("$(", self._substitution("$( command substitution")))
        elif text.startswith("${", start):
            self.pos += 2
            with self._nested():
                self._balanced("}", subs, "${ parameter expansion")
        else:
            name = _PARAMETER.match(text, start + 1)
            if name is None:
                buf.append("$")
                self.pos += 1
                return False
            self.pos = name.end()
        buf.append(text[start:self.pos])
        return True

    def _substitution(self, what: str) -> list[_Pipe]:
        """The commands of ``$( … )``, ``<( … )`` or ``>( … )``, up to the closing ``)``."""
        with self._nested():
            body = self._list(frozenset(), frozenset({")"}))
            tok = self._peek()
            if tok.raw != ")":
                raise ShellIncomplete(f"unterminated {what}")
            self.peeked = None
        return body

    def _balanced(self, closer: str, subs: list[_Sub], what: str) -> None:
        """Skip to the ``closer`` that balances (``${ … }``, ``$(( … ))``, ``a=( … )``),
        collecting the command substitutions inside."""
        opener = "(" if closer == ")" else "{"
        text = self.text
        scratch: list[str] = []
        level = 0
        while True:
            if self.pos >= len(text):
                raise ShellIncomplete(f"unterminated {what}")
            c = text[self.pos]
            if c == closer:
                self.pos += 1
                if level == 0:
                    return
                level -= 1
            elif c == opener:
                level += 1
                self.pos += 1
            elif c == "\\":
                self.pos += 2
            elif c == "'":
                end = text.find("'", self.pos + 1)
                if end < 0:
                    raise ShellIncomplete("unterminated single quote")
                self.pos = end + 1
            elif c == '"':
                self.pos += 1
                self._expanding(scratch, subs, '"')
            elif c == "$":
                self._dollar(scratch, subs)
            elif c == "`":
                self._backquote(scratch, subs)
            else:
                self.pos += 1

    def _backquote(self, buf: list[str], subs: list[_Sub]) -> None:
        """`` `…` ``: the text up to the next unescaped backquote, with ``\\` \\\\ \\$``
        unescaped, parsed as a script of its own."""
        text = self.text
        start = self.pos
        inner: list[str] = []
        i = start + 1
        while True:
            if i >= len(text):
                raise ShellIncomplete("unterminated backquote")
            c = text[i]
            if c == "`":
                break
            if c == "\\" and text[i + 1:i + 2] in ("`", "\\", "$"):
                inner.append(text[i + 1])
                i += 2
            else:
                inner.append(c)
                i += 1
        self.pos = i + 1
        body = _Parser("".join(inner), self.depth + 1, self.limits).script()
        subs.append(_Sub("`", body))
        buf.append(text[start:self.pos])

    def _ansi_c(self) -> str:
        """``$'…'``: C escapes decoded, as bash does (``$'\\x72m'`` is ``rm``)."""
        text = self.text
        out: list[str] = []
        while True:
            if self.pos >= len(text):
                raise ShellIncomplete("unterminated $'…' quote")
            c = text[self.pos]
            if c == "'":
                self.pos += 1
                return "".join(out)
            following = text[self.pos + 1:self.pos + 2]
            if c != "\\" or not following:
                out.append(c)
                self.pos += 1
            elif following in _ANSI_ESCAPES:
                out.append(_ANSI_ESCAPES[following])
                self.pos += 2
            elif following in "01234567":
                digits = _OCTAL.match(text, self.pos + 1)
                assert digits is not None
                out.append(chr(int(digits.group(), 8) & 0xFF))
                self.pos = digits.end()
            elif following in "xuU":
                digits = _HEX[{"x": 2, "u": 4, "U": 8}[following]].match(text, self.pos + 2)
                if digits is None:
                    out.append("\\" + following)
                    self.pos += 2
                else:
                    value = int(digits.group(), 16)
                    out.append(chr(value) if value <= 0x10FFFF else "\ufffd")
                    self.pos = digits.end()
            elif following == "c" and self.pos + 2 < len(text):
                out.append(chr(ord(text[self.pos + 2]) & 0x1F))
                self.pos += 3
            else:
                out.append("\\" + following)
                self.pos += 2

    def _read_heredocs(self) -> None:
        """After a newline: the bodies of the here-documents opened on the line before."""
        pending, self.heredocs = self.heredocs, []
        text = self.text
        for redir, delimiter, strip_tabs, quoted in pending:
            lines: list[str] = []
            while self.pos < len(text):
                end = text.find("\n", self.pos)
                end = len(text) if end < 0 else end
                line = text[self.pos:end]
                self.pos = min(end + 1, len(text))
                if strip_tabs:
                    line = line.lstrip("\t")
                if line == delimiter:
                    break
                lines.append(line)
            else:
                if self.limits.complete:
                    raise ShellIncomplete(f"the here-document has no {delimiter!r} line yet")
            body = "".join(line + "\n" for line in lines)
            if quoted:
                redir.target = body
                continue
            buf: list[str] = []
            expander = _Parser(body, self.depth + 1, self.limits)
            redir.unresolved = expander._expanding(buf, redir.subs, None)
            redir.target = "".join(buf)


def _escape(text: str) -> str:
    """Literal text in a pattern: what globbing or brace expansion would act on, escaped."""
    return "".join("\\" + c if c in _ACTIVE or c == "\\" else c for c in text)


def _too_deep(max_depth: int) -> str:
    return f"the command line nests more than {max_depth} levels deep"


def _incomplete(tok: _Token, message: str) -> ShellParseError:
    """``message`` as the error of a line that ended too soon (``tok`` is its end), or of one
    that is wrong."""
    return (ShellIncomplete if tok.kind == "end" else ShellParseError)(message)


def _unexpected(tok: _Token) -> ShellParseError:
    if tok.kind == "end":
        return ShellIncomplete("the command line ends where a command should follow")
    if tok.kind == "newline":
        return ShellParseError("a command is missing before the end of a line")
    if tok.raw == ")":
        return ShellParseError("unbalanced ')' without a matching '('")
    return ShellParseError(f"unexpected {tok.raw!r} where a command should start")


# --- freezing -------------------------------------------------------------------------------

def _freeze(pipes: list[_Pipe]) -> Script:
    out: list[Pipeline] = []
    for pipe in pipes:
        stages = tuple(_freeze_stage(stage) for stage in pipe.stages
                       if not (isinstance(stage, _Cmd) and not stage.words
                               and not stage.assigns and not stage.redirs))
        if stages:
            out.append(Pipeline(stages, pipe.background, pipe.after))
    return tuple(out)


def _freeze_subs(subs: list[_Sub], word: int | None = None,
                 redirect: int | None = None) -> list[Substitution]:
    return [Substitution(s.kind, _freeze(s.body), word, redirect) for s in subs]


def _freeze_redirects(redirs: list[_Redir]) -> tuple[tuple[Redirect, ...], list[Substitution]]:
    subs: list[Substitution] = []
    for i, redir in enumerate(redirs):
        subs += _freeze_subs(redir.subs, redirect=i)
    return tuple(Redirect(r.op, r.target, r.unresolved) for r in redirs), subs


def _freeze_stage(stage: _Cmd | _Group) -> SimpleCommand | Compound:
    redirects, redirect_subs = _freeze_redirects(stage.redirs)
    if isinstance(stage, _Group):
        return Compound(stage.kind, _freeze(stage.body), stage.name, redirects,
                        tuple(_freeze_subs(stage.subs) + redirect_subs))
    subs: list[Substitution] = []
    for word in stage.assigns:
        subs += _freeze_subs(word.subs)
    for i, word in enumerate(stage.words):
        subs += _freeze_subs(word.subs, word=i)
    return SimpleCommand(
        argv=tuple(w.text for w in stage.words),
        unresolved=frozenset(i for i, w in enumerate(stage.words) if w.unresolved),
        assignments=tuple(w.text for w in stage.assigns),
        redirects=redirects,
        substitutions=tuple(subs + redirect_subs),
        dynamic=frozenset(i for i, w in enumerate(stage.words) if w.dynamic),
        patterns=tuple(w.pattern or _escape(w.text) for w in stage.words),
    )


# --- what the shell expands before it runs a word -------------------------------------------

MAX_EXPANSIONS = 256  # words one brace expansion may produce before it counts as unreadable
_BRACE_SEQUENCE = re.compile(r"(-?[0-9]+)\.\.(-?[0-9]+)(?:\.\.(-?[0-9]+))?"
                             r"|([A-Za-z])\.\.([A-Za-z])(?:\.\.(-?[0-9]+))?")


def unescape(pattern: str) -> str:
    """A pattern's text, its escapes removed."""
    return re.sub(r"\\(.)", r"\1", pattern)


def has_glob(pattern: str) -> bool:
    """Whether a pattern holds an unescaped ``*``, ``?`` or ``[…]``."""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c in "*?" or (c == "[" and "]" in pattern[i + 2:]):
            return True
        i += 1
    return False


def glob_regex(pattern: str) -> re.Pattern[str]:
    """What a glob pattern matches (escapes honoured; ``*`` may not cross ``/``)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                out.append(re.escape(c))
                i += 1
                continue
            body = unescape(pattern[i + 1:end])
            negate = body[:1] in ("!", "^")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\")
                       .replace("[", "\\[") + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error:
        return re.compile(".*", re.DOTALL)  # a class the gateway cannot read: anything


def brace_expand(pattern: str) -> list[str] | None:
    """The words bash's brace expansion makes of one word (as a pattern: escaped parts are
    literal), in order; None when they would be more than ``MAX_EXPANSIONS``."""
    words = [pattern]
    done: list[str] = []
    while words:
        word = words.pop(0)
        found = _brace(word)
        if found is None:
            done.append(word)
        else:
            prefix, alternatives, suffix = found
            words[:0] = [prefix + a + suffix for a in alternatives]
        if len(done) + len(words) > MAX_EXPANSIONS:
            return None
    return done


def _brace(word: str) -> tuple[str, list[str], str] | None:
    """The first ``{…}`` of ``word`` that expands: (before, alternatives, after)."""
    i = 0
    while i < len(word):
        c = word[i]
        if c == "\\":
            i += 2
            continue
        if c == "{" and not word[i - 1:i] == "$":
            level, j, commas = 0, i + 1, []
            while j < len(word):
                d = word[j]
                if d == "\\":
                    j += 2
                    continue
                if d == "{":
                    level += 1
                elif d == "}":
                    if level == 0:
                        break
                    level -= 1
                elif d == "," and level == 0:
                    commas.append(j)
                j += 1
            if j < len(word):
                body = word[i + 1:j]
                if commas:
                    cuts = [i, *commas, j]
                    parts = [word[a + 1:b] for a, b in itertools.pairwise(cuts)]
                    return word[:i], parts, word[j + 1:]
                sequence = _sequence(body)
                if sequence is not None:
                    return word[:i], sequence, word[j + 1:]
        i += 1
    return None


def _sequence(body: str) -> list[str] | None:
    match = _BRACE_SEQUENCE.fullmatch(body)
    if match is None:
        return None
    if match.group(1) is not None:
        first, last = int(match.group(1)), int(match.group(2))
        step = abs(int(match.group(3) or 1)) or 1
        if abs(last - first) // step >= MAX_EXPANSIONS:
            return [str(first)] * (MAX_EXPANSIONS + 1)
        direction = step if last >= first else -step
        return [str(n) for n in range(first, last + (1 if direction > 0 else -1), direction)]
    first, last = ord(match.group(4)), ord(match.group(5))
    step = abs(int(match.group(6) or 1)) or 1
    direction = step if last >= first else -step
    return [_escape(chr(n)) for n in range(first, last + (1 if direction > 0 else -1),
                                            direction)]


def history_expansion(line: str) -> str | None:
    """Where an interactive bash would expand ``line`` from its history (``!!``, ``!$``,
    ``!-2``, ``!rm``, ``^old^new``), or None: what runs is then another line, unseen.
    ``!`` is not expanded in single quotes, after a backslash, before a blank, ``=`` or
    ``(``, at the end of the line or of a double-quoted string, nor as ``${!`` or ``$!``.
    Bash expands each line it reads on its own, so each physical line is also read afresh
    (a quote the gateway thinks open, in a comment, does not hide ``!!`` on the next)."""
    if "\n" in line:
        for physical in line.split("\n"):
            found = _history_expansion(physical)
            if found is not None:
                return found
    return _history_expansion(line)


def _history_expansion(line: str) -> str | None:
    stripped = line.lstrip(" \t")
    if stripped.startswith("^"):
        return stripped.split("\n", 1)[0]
    quote = ""
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\" and quote != "'":
            i += 2
            continue
        if quote == "'":
            if c == "'":
                quote = ""
        elif c == "'" and not quote:
            quote = "'"
        elif c == '"':
            quote = "" if quote else '"'
        elif c == "!":
            following = line[i + 1:i + 2]
            if following and following not in " \t\n=(" \
                    and not (quote and following == '"') and line[i - 1:i] not in ("$", "{"):
                end = i + 1
                while end < len(line) and line[end] not in " \t\n;&|<>()'\"":
                    end += 1
                return line[i:max(end, i + 2)]
        i += 1
    return None


def needs_more(text: str) -> bool:
    """Whether an interactive shell, given ``text``, would wait for more lines before it runs
    anything: an open quote, ``$(``, ``{``, ``if``, a trailing ``&&`` or ``|``, a
    here-document without its delimiter, a backslash at the end."""
    if text.endswith("\\") and (len(text) - len(text.rstrip("\\"))) % 2:
        return True
    try:
        parse(text, complete=True)
    except ShellIncomplete:
        return True
    except ShellParseError:
        return False
    return False
