"""The files a program's own script reads and writes: awk's and sed's (issue 14).

``engine.ssh.linepaths`` reads a shell line's words (and the guardrail, ``commands``, whether a
sed script runs commands); some programs take a second language in
one of them, which names files of its own: awk's ``print > "f"``, ``printf … >> "f"``,
``getline < "f"``, ``print | "cmd"``, ``"cmd" | getline``, ``system("cmd")``; sed's ``w f``,
``W f``, ``s/a/b/w f``, ``r f``, ``R f``, ``e cmd``. A file named by a constant is a path; one
built at run time (a variable, a concatenation) is a word holding ``RUNTIME`` where its value
starts, which linepaths marks as it marks ``> "$f"`` (the directory it is known to be in, or any
path); linepaths gives a word of the line only known at run time as ``RUNTIME`` too. What
cannot be read — a script in a file (``awk -f``, ``sed -f``) or only known at run time, code
loaded from a library, a sed command this reader does not know, a command built at run time —
is ``unknown``: it may read and write any file. No I/O here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

RUNTIME = "${gatewatch-runtime}"  # where a name only known at run time starts in a word


@dataclass
class ScriptFiles:
    """What a script names: files written and read (words: a constant path, or one holding
    ``RUNTIME``), shell commands it runs (constant), and whether any of it is not known."""

    writes: list[str] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    unknown: bool = False


# --- awk -----------------------------------------------------------------------------------------

_AWK_VALUE = "vFfeiElW"  # short options taking a value (attached or the next word)
_AWK_OPTIONAL = "dDoLp"  # short options whose value, if any, is attached
_AWK_LONG_VALUE = ("--assign", "--field-separator", "--file", "--source", "--include",
                   "--load", "--exec")
_AWK_LONG_OUTPUT = {"--dump-variables": "awkvars.out", "--pretty-print": "awkprof.out",
                    "--profile": "awkprof.out"}
_MAWK_W_HARMLESS = ("version", "interactive", "usage", "posix_space", "sprintf", "random",
                    "traditional", "posix", "lint", "dump", "help", "copyright")


def awk_files(words: tuple[str, ...]) -> ScriptFiles:
    """What an awk command (``words``: its arguments) names in its program and options."""
    out = ScriptFiles()
    programs: list[str] = []
    program_given = False
    i = 0
    operand: str | None = None
    while i < len(words):
        word = words[i]
        i += 1
        if word == "--":
            operand = words[i] if i < len(words) else None
            break
        if word.startswith("--") and len(word) > 2:
            name, eq, value = word.partition("=")
            known = [o for o in (*_AWK_LONG_VALUE, *_AWK_LONG_OUTPUT)
                     if o == name or o.startswith(name)]
            if not known:
                continue  # a flag
            if any(o in _AWK_LONG_OUTPUT for o in known):
                out.writes += [value] if eq else [_AWK_LONG_OUTPUT[o] for o in known
                                                  if o in _AWK_LONG_OUTPUT]
                if all(o in _AWK_LONG_OUTPUT for o in known):
                    continue
            if not eq and i < len(words):
                value = words[i]
                i += 1
            if known == ["--source"]:
                programs.append(value)
                program_given = True
            elif known not in (["--assign"], ["--field-separator"]) and not (
                    known == ["--include"] and value in ("inplace", "inplace.awk")):
                out.unknown = True  # a program file, a library, an extension
                program_given = program_given or "--file" in known or "--exec" in known
            continue
        if word.startswith("-") and len(word) > 1:
            for k, letter in enumerate(word[1:], start=2):
                if letter in _AWK_VALUE:
                    value = word[k:]
                    if not value and i < len(words):
                        value = words[i]
                        i += 1
                    if letter == "e":
                        programs.append(value)
                        program_given = True
                    elif letter in "fE":
                        out.unknown = True
                        program_given = True
                    elif letter == "i" and value not in ("inplace", "inplace.awk"):
                        out.unknown = True
                    elif letter == "l":
                        out.unknown = True
                    elif letter == "W" and not value.startswith(_MAWK_W_HARMLESS):
                        out.unknown = True  # mawk's -W exec FILE, or a long option
                    break
                if letter in _AWK_OPTIONAL:
                    value = word[k:]
                    if letter == "d":
                        out.writes.append(value or "awkvars.out")
                    elif letter in "op":
                        out.writes.append(value or "awkprof.out")
                    elif letter == "D":
                        out.unknown = out.unknown or bool(value)  # debugger commands file
                    break
            continue
        operand = word  # the first operand
        break
    if not program_given:
        if operand is None:
            out.unknown = True  # no program on the line at all
        else:
            programs.append(operand)
    for program in programs:
        if RUNTIME in program:
            out.unknown = True  # a program only known at run time (awk "$p")
        else:
            _awk_program(program, out)
    return out


_AWK_TOKEN = re.compile(r"""
    (?P<space>[ \t\r]+|\\\n|\#[^\n]*)
  | (?P<newline>\n)
  | (?P<string>"(?:[^"\\]|\\.)*"?)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>@?[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\|&|>>|&&|\|\||[<>!=]=|\+\+|--|[-+*/%^]=|[<>|(){}\[\];,~!?:$=+\-*/%^])
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)
_AWK_REGEX = re.compile(r"/(?:[^/\\\n\[]|\\.|\[(?:\\.|[^\]\\])*\])*/")
# after these a "/" divides; elsewhere it starts a regular expression
_OPERAND_END = frozenset({")", "]", "$", "++", "--"})
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "/": "/", "a": "\a",
            "b": "\b", "f": "\f", "v": "\v"}
_ESCAPE = re.compile(r"\\([0-7]{1,3}|x[0-9A-Fa-f]{1,2}|.)", re.DOTALL)


def _unescape(m: re.Match[str]) -> str:
    """An escape in an awk string as awk reads it (``\\057`` and ``\\x2f`` are ``/``)."""
    code = m.group(1)
    if code[0] in "01234567":
        return chr(int(code, 8) & 0xFF)
    if code[0] == "x" and len(code) > 1:
        return chr(int(code[1:], 16))
    return _ESCAPES.get(code, code)


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str


def _awk_tokens(program: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    i = 0
    while i < len(program):
        prev = tokens[-1] if tokens else None
        if program[i] == "/" and not (prev and (prev.kind in ("name", "number", "string")
                                                 or prev.text in _OPERAND_END)):
            regex = _AWK_REGEX.match(program, i)
            if regex is not None:
                tokens.append(_Tok("regex", regex.group()))
                i = regex.end()
                continue
        m = _AWK_TOKEN.match(program, i)
        assert m is not None and m.lastgroup is not None  # "other" takes any character
        i = m.end()
        if m.lastgroup == "space":
            continue
        if m.lastgroup == "string":
            body = m.group()[1:-1] if m.group().endswith('"') and len(m.group()) > 1 else (
                m.group()[1:])
            text = _ESCAPE.sub(_unescape, body)
            tokens.append(_Tok("string", text))
        else:
            tokens.append(_Tok(m.lastgroup, m.group()))
    return tokens


_STATEMENT_END = frozenset({";", "\n", "}"})
_OPENERS = {"(": ")", "[": "]", "{": "}"}


def _expression(tokens: list[_Tok], start: int) -> tuple[list[_Tok], int]:
    """The tokens from ``start`` to the end of the statement (or an enclosing bracket)."""
    depth = 0
    j = start
    while j < len(tokens):
        text = tokens[j].text if tokens[j].kind != "newline" else "\n"
        if depth == 0 and (text in _STATEMENT_END or text in (")", "]")):
            break
        if tokens[j].kind == "op" and text in _OPENERS:
            depth += 1
        elif tokens[j].kind == "op" and text in (")", "]", "}"):
            depth -= 1
        j += 1
    return tokens[start:j], j


def _constant(tokens: list[_Tok]) -> str | None:
    """The value of an expression made of string constants alone (``"a" "b"``, ``("a")``)."""
    inner = [t for t in tokens if not (t.kind == "op" and t.text in "()")]
    if inner and all(t.kind == "string" for t in inner):
        return "".join(t.text for t in inner)
    return None


def _runtime_word(tokens: list[_Tok]) -> str:
    """A name built at run time: the constant it starts with, then ``RUNTIME``."""
    known = ""
    for t in tokens:
        if t.kind == "op" and t.text == "(":
            continue
        if t.kind != "string":
            break
        known += t.text
    return known + RUNTIME


def _awk_program(program: str, out: ScriptFiles) -> None:
    tokens = _awk_tokens(program)
    for j, tok in enumerate(tokens):
        if tok.kind == "name" and tok.text in ("@include", "@load", "@namespace"):
            out.unknown = out.unknown or tok.text != "@namespace"
        elif tok.kind == "name" and tok.text == "ARGV":
            out.reads.append(RUNTIME)  # files to read, set by the program
        elif tok.kind == "name" and tok.text in ("print", "printf"):
            _awk_print(tokens, j + 1, out)
        elif tok.kind == "name" and tok.text == "getline":
            _awk_getline(tokens, j, out)
        elif tok.kind == "name" and tok.text == "system":
            args, _ = _expression(tokens, j + 2) if (
                j + 1 < len(tokens) and tokens[j + 1].text == "(") else ([], j)
            _awk_command(args, out)


def _awk_print(tokens: list[_Tok], start: int, out: ScriptFiles) -> None:
    """``print … > target``: the first ``>``, ``>>``, ``|`` or ``|&`` outside brackets."""
    depth = 0
    j = start
    while j < len(tokens):
        tok = tokens[j]
        text = tok.text if tok.kind != "newline" else "\n"
        if depth == 0 and (text in _STATEMENT_END or text in (")", "]")):
            return
        if tok.kind == "op" and text in _OPENERS:
            depth += 1
        elif tok.kind == "op" and text in (")", "]", "}"):
            depth -= 1
        elif depth == 0 and tok.kind == "op" and text in (">", ">>", "|", "|&"):
            target, _ = _expression(tokens, j + 1)
            if text in ("|", "|&"):
                _awk_command(target, out)
            else:
                value = _constant(target)
                out.writes.append(value if value is not None else _runtime_word(target))
            return
        j += 1


def _awk_getline(tokens: list[_Tok], j: int, out: ScriptFiles) -> None:
    """``getline [var] < file`` reads a file; ``cmd | getline`` runs a command."""
    before = tokens[j - 1] if j else None
    if before is not None and before.kind == "op" and before.text in ("|", "|&"):
        k = j - 2
        command = [tokens[k]] if k >= 0 else []
        preceding = tokens[k - 1] if k >= 1 else None
        alone = command and command[0].kind == "string" and not (
            preceding is not None and (preceding.kind in ("name", "number", "string")
                                       or preceding.text in _OPERAND_END))
        _awk_command(command if alone else [], out)
        return
    k = j + 1
    if k < len(tokens) and tokens[k].kind == "name":
        k += 1  # getline var
    elif k < len(tokens) and tokens[k].text == "$":
        k += 2  # getline $n
    if k < len(tokens) and tokens[k].kind == "op" and tokens[k].text == "<":
        source = tokens[k + 1] if k + 1 < len(tokens) else None
        after = tokens[k + 2] if k + 2 < len(tokens) else None
        if source is not None and source.kind == "string" and not (
                after is not None and after.kind in ("string", "name", "number")):
            out.reads.append(source.text)
        else:
            out.reads.append(RUNTIME)


def _awk_command(tokens: list[_Tok], out: ScriptFiles) -> None:
    value = _constant(tokens)
    if value is None:
        out.unknown = True  # a command built at run time: anything
    else:
        out.commands.append(value)


# --- sed -----------------------------------------------------------------------------------------

_SED_LONG_VALUE = ("--expression", "--file", "--line-length")
_SED_PLAIN = frozenset("=dDgGhHnNpPxzF")


def sed_files(words: tuple[str, ...]) -> ScriptFiles:
    """What a sed command (``words``: its arguments) names in its script."""
    out = ScriptFiles()
    scripts: list[str] = []
    operands: list[str] = []
    given = False
    i = 0
    ended = False
    while i < len(words):
        word = words[i]
        i += 1
        if ended or word == "-" or not word.startswith("-"):
            operands.append(word)
        elif word == "--":
            ended = True
        elif word.startswith("--"):
            name, eq, value = word.partition("=")
            known = [o for o in _SED_LONG_VALUE if o == name or o.startswith(name)]
            if not known:
                continue
            if not eq and i < len(words):
                value = words[i]
                i += 1
            if "--expression" in known:
                scripts.append(value)
                given = True
            if "--file" in known:
                out.unknown = True
                given = True
        else:
            for k, letter in enumerate(word[1:], start=2):
                if letter in "efl":
                    value = word[k:]
                    if not value and i < len(words):
                        value = words[i]
                        i += 1
                    if letter == "e":
                        scripts.append(value)
                        given = True
                    elif letter == "f":
                        out.unknown = True
                        given = True
                    break
                if letter == "i":
                    break  # -i[SUFFIX]: the rest is its suffix
    if not given:
        if not operands:
            out.unknown = True
        else:
            scripts.append(operands[0])
    if any(RUNTIME in script for script in scripts):
        out.unknown = True  # a script only known at run time (sed "$s")
    else:
        _sed_script("\n".join(scripts), out)
    return out


def sed_script(script: str) -> ScriptFiles:
    """What one sed script (its text) names and runs."""
    out = ScriptFiles()
    _sed_script(script, out)
    return out


def _sed_script(script: str, out: ScriptFiles) -> None:
    """sed's commands, each with its addresses; what cannot be read is ``unknown``."""
    n = len(script)
    i = 0

    def rest_of_line(j: int) -> tuple[str, int]:
        end = script.find("\n", j)
        end = n if end < 0 else end
        return script[j:end], end

    def skip_delimited(j: int, delimiter: str) -> int:
        """Past the next unescaped ``delimiter`` (a regular expression or replacement)."""
        while j < n and script[j] != delimiter:
            j += 2 if script[j] == "\\" else 1
        if j >= n:
            raise ValueError("unterminated")
        return j + 1

    def address(j: int) -> int:
        if j < n and script[j].isdigit():
            while j < n and (script[j].isdigit() or script[j] == "~"):
                j += 1
        elif j < n and script[j] == "$":
            j += 1
        elif j < n and (script[j] == "/" or script[j] == "\\"):
            if script[j] == "\\":
                j += 1
                if j >= n:
                    raise ValueError("address")
            j = skip_delimited(j + 1, script[j])
            while j < n and script[j] in "IM":
                j += 1
        return j

    try:
        while i < n:
            c = script[i]
            if c in " \t\n;{}":
                i += 1
                continue
            if c == "#":
                _, i = rest_of_line(i)
                continue
            i = address(i)
            while i < n and script[i] in " \t":
                i += 1
            if i < n and script[i] == ",":
                i += 1
                while i < n and script[i] in " \t":
                    i += 1
                if i < n and script[i] in "+~":
                    i += 1
                    while i < n and script[i].isdigit():
                        i += 1
                else:
                    i = address(i)
            while i < n and script[i] in " \t!":
                i += 1
            if i >= n:
                break
            c = script[i]
            i += 1
            if c in "{}" or c in _SED_PLAIN:
                continue
            if c in "aic":  # text to the end of the line (lines ending in \ go on)
                while i < n and script[i] != "\n":
                    i += 2 if script[i] == "\\" else 1
            elif c in ":btTv":  # a label (or version): to ; or the end of the line
                while i < n and script[i] not in ";\n":
                    i += 1
            elif c in "qQlL":
                while i < n and (script[i].isdigit() or script[i] in " \t"):
                    i += 1
            elif c in "rRwW":
                name, i = rest_of_line(i)
                name = name.lstrip(" \t")
                (out.reads if c in "rR" else out.writes).append(name)
            elif c == "e":
                command, i = rest_of_line(i)
                if command.strip():
                    out.commands.append(command.strip())
                else:
                    out.unknown = True  # runs the pattern space: any command
            elif c in "sy":
                if i >= n or script[i] in "\n\\":
                    raise ValueError("delimiter")
                delimiter = script[i]
                i = skip_delimited(skip_delimited(i + 1, delimiter), delimiter)
                while c == "s" and i < n and script[i] in "gpiImMe0123456789w":
                    if script[i] == "e":
                        out.unknown = True  # runs the pattern space as a command
                    if script[i] == "w":
                        name, i = rest_of_line(i + 1)
                        out.writes.append(name.lstrip(" \t"))
                        break
                    i += 1
            else:
                raise ValueError(f"command {c!r}")
    except ValueError:
        out.unknown = True  # sed refuses what it cannot read; still, fail closed
