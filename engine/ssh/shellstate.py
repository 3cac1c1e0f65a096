"""What a command line leaves behind that changes what later lines print (issue 14).

Output masking trusts a plain reader (``cat``, ``grep`` …: ``engine.ssh.output``) to print a
file as it stands, so that the masker finds its values there. That trust holds only while the
gateway can follow what the shell and its files hold. A line may leave behind state that makes a
later plain reader print transformed values: a file written by a transform (``rev s > g``,
``sed -i``, ``tee``, a program writing files itself), a variable holding a computed value
(``x=$(rev s); export x; printenv x``), an alias, a function, ``PATH``, ``hash``, ``enable``,
``shopt``, ``trap`` or ``PROMPT_COMMAND``, a library preloaded into every program
(``LD_PRELOAD``), the terminal's own output processing (``stty olcuc``). ``leaves_state`` says
whether a line may; the bridge then masks every channel of the SSH connection whole for the rest
of it (fail closed: ARCHITECTURE.md invariant 9, rather than follow what it cannot read).

A line leaves no state only when each program it runs is a plain reader (``PLAIN_PROGRAMS``) or
a filter that writes nothing but its standard output (``PURE_FILTERS``, with the options that
would write a file refused: ``sed -i``, ``dd of=``, ``awk`` code that redirects or runs
commands), it defines no function, it sets no variable but harmless ones to literal values
(lower-case names, and ``PS1``, ``TERM``, ``LANG`` … without expansions), and, when it
transforms, it writes no file (a redirection, ``tee``, ``sort -o``). Anything the gateway cannot
read (a line that does not parse, code given to an interpreter, a script, ``source``, a program
only known at run time) leaves state.

``startup_write`` answers the other half (state the gateway never saw): a shell reads start-up
files (``~/.bashrc``, ``~/.profile``, ``~/.inputrc`` …) before the first prompt, so an alias
written there in one session hides a transform behind ``cat`` in the next. Under masking the
session refuses a line that names one of them (or ``~/bin``, ``~/.local/bin``: directories a
login puts on ``PATH``) unless the line only reads it, a line that copies or redirects into a
directory on every ``PATH`` (``sudo cp rev /usr/local/bin/cat``), and a line that writes to a
file only known at run time (``echo x >> "$f"``, ``> .b*``). Code that writes such a file
without naming it (an interpreter building the name, an archive unpacked in the home directory,
an upload) is not seen: see the README.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from fnmatch import fnmatchcase

from engine.guardrail.commands import READS_INPUT, SHELLS, classify_command, long_options
from engine.guardrail.shellwords import (
    Compound,
    Redirect,
    Script,
    ShellParseError,
    SimpleCommand,
    has_glob,
    parse,
    pipelines,
)
from engine.ssh.output import transforms_output
from engine.ssh.writeropts import copied, outputs

# Filters that write their standard output and nothing else, whatever their operands (options
# that would write a file or run code are refused in ``_pure``).
PURE_FILTERS = frozenset({
    "rev", "tr", "fold", "od", "tac", "cut", "base64", "base32", "basenc", "nl", "paste",
    "expand", "unexpand", "fmt", "pr", "comm", "join", "strings", "column", "numfmt", "look",
    "md5sum", "sha1sum", "sha224sum", "sha256sum", "sha384sum", "sha512sum", "b2sum",
    "cksum", "sum", "sed", "awk", "gawk", "mawk", "nawk", "dd", "xxd", "hexdump",
    # … and programs that print without reading a file of their own
    "seq", "yes", "factor", "expr", "basename", "dirname", "realpath", "readlink", "which",
    "nproc", "arch", "tty", "locale", "getconf", "jobs", "dirs", "type", "tput", "clear",
})
# Plain readers that write nothing: their output is the only thing they change.
_PLAIN = frozenset({
    "cat", "head", "tail", "grep", "egrep", "fgrep", "wc", "ls", "pwd", "cd", "ps", "df",
    "du", "free", "uptime", "id", "whoami", "groups", "hostname", "uname", "date", "env",
    "printenv", "stat", "echo", "true", "false", ":", "exit", "sleep", "test", "[",
    "unset", "umask",
})
# … and those that may: only harmless when what they write is what the line printed plainly.
_PLAIN_WRITERS = frozenset({"tee", "sort", "uniq"})
# Variables whose value changes nothing a plain reader prints (set to a literal value):
# lower-case names (except bash's own), and these.
_HARMLESS_VARIABLES = frozenset({
    "PS1", "PS2", "TERM", "LANG", "LANGUAGE", "TZ", "COLUMNS", "LINES", "HISTSIZE",
    "HISTFILESIZE", "HISTCONTROL", "HISTTIMEFORMAT", "EDITOR", "VISUAL", "OLDPWD", "TMOUT",
})
_BASH_LOWER = frozenset({"histchars", "auto_resume"})
_NAME_VALUE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(\+?=)(.*)$", re.DOTALL)
# An expansion in a value: ``$x``, ``${…}``, ``$(…)``, ``$((…))``, a backquote (``$ `` and a
# trailing ``$`` are literal, as in ``PS1='gw$ '``).
_EXPANSION = re.compile(r"`|\$[^\s'\"\\]")
# ``stty`` settings that change how the terminal shows output (``olcuc`` upper-cases it), and
# a saved state (``stty $(cat saved)``, with colons): those leave state behind.
_STTY_OUTPUT = re.compile(r"^-?(?:o[a-z]+|xcase|lcase|LCASE|raw|cooked|sane|nl|tabs|iuclc|"
                          r"(?:nl|cr|tab|bs|vt|ff)[0-9])$|:")
_SHELL_ONLY_OPTIONS = frozenset({"-i", "-l", "-s", "-il", "-li", "--login", "--noprofile",
                                 "--norc", "-"})
_SHELL_CODE_OPTIONS = frozenset("ceu")  # sh -c CODE, with -e/-u at most
_RUNS_CODE = frozenset({"INTERPRETER CODE", "SCRIPT FILE", "EVAL", "COMMAND IN OPTION"})
_QUIET_TARGETS = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty"})
_MAX_NESTED = 4

# Files a shell reads when it starts (login or interactive, bash and its kin), and the
# directories a login puts on PATH: a line that writes one changes what later sessions run.
_STARTUP = re.compile(
    r"\.(?:bashrc|bash_profile|bash_login|bash_logout|profile|inputrc|bash_aliases|"
    r"bash_functions|zshrc|zshenv|zprofile|zlogin|kshrc|mkshrc|shrc|pam_environment)"
    r"(?![A-Za-z0-9_])"
    r"|\.ssh/(?:rc|environment)(?![A-Za-z0-9_])|environment\.d"
    r"|/etc/(?:profile|bash\.bashrc|bashrc|environment|inputrc|skel)"
    r"|(?:~|HOME\}?)/(?:\.local/)?bin(?![A-Za-z0-9_.-])|\.local/bin(?![A-Za-z0-9_.-])")
# … their names, for a glob that starts with a dot (a shell's ``*`` skips dot-files)
_STARTUP_NAMES = (".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".profile",
                  ".inputrc", ".bash_aliases", ".bash_functions", ".zshrc", ".zshenv",
                  ".zprofile", ".zlogin", ".kshrc", ".mkshrc", ".shrc", ".pam_environment",
                  ".ssh", ".local")
# Directories on every PATH: a program written there stands in for a plain reader later (a
# ``cat`` in /usr/local/bin is found before /usr/bin/cat), for every session.
_PATH_DIRECTORIES = ("/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/", "/usr/local/bin/",
                     "/usr/local/sbin/", "/usr/games/", "/usr/local/games/", "/snap/bin/",
                     "/etc/alternatives/")
_COPIERS = frozenset({"cp", "mv", "install", "ln", "tee", "rsync", "dd", "link", "ginstall"})
STARTUP_REFUSED = ("a line that writes a shell start-up file (~/.bashrc, ~/.profile, "
                   "~/.inputrc …), a directory on PATH (~/bin, ~/.local/bin), or a file only "
                   "known at run time is refused while this session's output is masked: the "
                   "gateway could not follow what later shells would run")


def leaves_state(line: str) -> bool:
    """Whether a line may leave behind, in the shell or in files, something that changes what a
    later line prints and the gateway cannot follow (fail closed: a line it cannot read may)."""
    return _leaves(line, 0)


def _leaves(line: str, depth: int) -> bool:
    try:
        facts = classify_command(line)
        script = parse(line)
    except ShellParseError:
        return True
    opaque = set(facts.opaque)
    if all(argv and argv[0] in SHELLS for argv in facts.commands):
        opaque.discard(READS_INPUT)  # ``bash -i``: the lines it reads are judged one by one
    if (depth > _MAX_NESTED or opaque or facts.unknown_program or facts.program_patterns
            or facts.kinds & _RUNS_CODE):
        return True
    transforms = transforms_output(line)
    for command in _commands(script):
        if isinstance(command, Compound):
            if command.kind == "function":
                return True
            if transforms and any(writes_file(r) for r in command.redirects):
                return True
            continue
        if any(not _harmless(word) for word in (*command.assignments, *command.argv[1:])):
            return True  # ``PATH=… cat``, ``env LD_PRELOAD=… cat``, ``sudo VAR=… cat``
        if transforms and any(writes_file(r) for r in command.redirects):
            return True
    return not all(argv and _leaves_nothing(argv, transforms, depth) for argv in facts.commands)


def bare_shell(command: str) -> bool:
    """An interactive shell and nothing else (``bash``, ``bash -il``): its lines are judged one
    by one, like a shell channel's."""
    try:
        facts = classify_command(command)
    except ShellParseError:
        return False
    return (len(facts.commands) == 1 and facts.commands[0][0] in SHELLS
            and all(w in _SHELL_ONLY_OPTIONS for w in facts.commands[0][1:])
            and not leaves_state(command))


def _commands(script: Script) -> Iterator[SimpleCommand | Compound]:
    """Every simple command and compound of ``script``, in substitutions and bodies too."""
    for pipeline in pipelines(script):
        yield from pipeline.stages



def writes_file(redirect: Redirect) -> bool:
    """Whether a redirection writes a file (``2>&1``, ``>/dev/null`` do not)."""
    op = redirect.op.lstrip("0123456789")
    if op.startswith("<") and op != "<>":
        return False
    if op in (">&", "<&") and (redirect.target.isdigit() or redirect.target == "-"):
        return False
    return redirect.unresolved or redirect.target not in _QUIET_TARGETS


def _harmless(word: str) -> bool:
    """A ``NAME=value`` word that changes nothing a plain reader prints."""
    match = _NAME_VALUE.match(word)
    if match is None:
        return True  # not an assignment: an operand
    name, value = match.group(1), match.group(3)
    if _EXPANSION.search(value):
        return False  # a computed value may be a sliced one, printed later by ``env``
    if name in _HARMLESS_VARIABLES or name.startswith("LC_"):
        return True
    return name == name.lower() and name not in _BASH_LOWER


def _name(word: str) -> str:
    return word.rsplit("/", 1)[-1]


def _leaves_nothing(argv: tuple[str, ...], transforms: bool, depth: int) -> bool:
    name = _name(argv[0])
    words = argv[1:]
    if name in SHELLS:
        options = words[:-1]
        flags = set("".join(o[1:] for o in options))
        if (options and "c" in flags and flags <= _SHELL_CODE_OPTIONS
                and all(o.startswith("-") and len(o) > 1 for o in options)):
            return not _leaves(words[-1], depth + 1)
        # an interactive shell whose lines the gate judges one by one
        return all(w in _SHELL_ONLY_OPTIONS for w in words)
    if any(not _harmless(w) for w in words):
        return False  # ``export PATH=…``
    if name == "read" or (name == "printf" and any(w.startswith("-v") for w in words)):
        return False  # a variable set from data the gateway does not see, sliced perhaps
    if name == "export":
        return all(_NAME_VALUE.match(w) or (w.startswith("-") and "f" not in w)
                   or w.isidentifier() for w in words)
    if name == "stty":
        return not any(_STTY_OUTPUT.search(w) for w in words)
    if name in _PLAIN or name == "printf":
        return True
    if name in _PLAIN_WRITERS:
        return not transforms or not _plain_writer_writes(name, words)
    if name in PURE_FILTERS:
        return _pure(name, words)
    return False  # any other program may write what the gateway cannot read


def _plain_writer_writes(name: str, words: tuple[str, ...]) -> bool:
    """Whether ``tee``, ``sort`` or ``uniq`` writes a file, read with its own option grammar
    (``sort -uo F``, ``uniq -f 0 - F``, ``tee -- -x``; one it cannot read writes)."""
    return bool(outputs(name, words))


def _pure(name: str, words: tuple[str, ...]) -> bool:
    """A filter with no option that makes it write a file or run code."""
    if name == "sed":
        if any(w.startswith(("-i", "-f", "-s")) or long_options(w, (
                "--in-place", "--file", "--separate", "--sandbox")) or
               (w.startswith("-") and not w.startswith("--") and "i" in w) for w in words):
            return False
        if any(long_options(w, ("--expression",)) and "=" in w for w in words):
            return False  # --expr=SCRIPT: judged below only as a word of its own
        scripts = [w for w in words if not w.startswith("-")][:1] + [
            words[i + 1] for i, w in enumerate(words[:-1])
            if w == "-e" or long_options(w, ("--expression",))]
        return not any(re.search(r"[wWe]", s) for s in scripts)  # write, execute
    if name in ("awk", "gawk", "mawk", "nawk"):
        if any(w.startswith(("-f", "-i", "-l", "-E")) or long_options(
                w, ("--file", "--include", "--load", "--exec", "--source", "--assign"))
               for w in words):
            return False
        programs = [w for w in words if not w.startswith("-")][:1]
        return not any(re.search(r"[>|]|system|getline|@", p) for p in programs)
    if name == "dd":
        return not any(w.startswith("of=") for w in words)
    if name == "xxd":
        return len([w for w in words if not w.startswith("-")]) <= 1
    return True


def startup_write(line: str, *, unreadable: bool = True) -> bool:
    """Whether a line may write a shell start-up file or a directory a login puts on PATH
    (named, or matched by a glob), or writes a file only known at run time; a plain reader
    that only reads one does not. A line the gateway cannot read may (``unreadable``: what to
    answer for it; a guessed reading of a line that does not parse is no line at all)."""
    try:
        script = parse(line)
        facts = classify_command(line)
    except ShellParseError:
        return unreadable
    if any(_in_path_directory(target) for argv in facts.commands
           for target in destinations(argv)):
        return True  # ``sudo cp … /usr/local/bin/cat``
    plain = not transforms_output(line)
    named = bool(_STARTUP.search(_unquoted(line)))
    reads_only = plain and not any(
        (isinstance(c, SimpleCommand) and c.argv and _name(c.argv[0]) in _PLAIN_WRITERS)
        or any(writes_file(r) for r in c.redirects) for c in _commands(script))
    for command in _commands(script):
        redirects = command.redirects
        if any(writes_file(r) and r.unresolved and r.target not in _QUIET_TARGETS
               and not _home_file(r.target) for r in redirects):
            return True  # ``> "$f"``, ``> .b*``: which file is only known at run time
        if any(writes_file(r) and _in_path_directory(r.target) for r in redirects):
            return True
        words = command.argv if isinstance(command, SimpleCommand) else ()
        for word in (*words, *(r.target for r in redirects)):
            base = word.rstrip("/").rsplit("/", 1)[-1]
            if base.startswith((".", "[.]")) and has_glob(base) and _glob_startup(base):
                named = True
    return named and not reads_only


def destinations(argv: tuple[str, ...]) -> list[str]:
    """Where a program that copies files writes: the last operand (or ``-t DIR``) of ``cp``,
    ``mv``, ``install``, ``ln``, ``rsync``; every operand of ``tee``; ``dd``'s ``of=``."""
    name, words = _name(argv[0]) if argv else "", argv[1:]
    if name not in _COPIERS:
        return []
    if name == "dd":
        return [w.removeprefix("of=") for w in words if w.startswith("of=")]
    if (moved := copied(name, words)) is not None:  # read with its own grammar
        return list(moved.destinations)
    targets = [w.split("=", 1)[1] for w in words
               if "=" in w and long_options(w, ("--target-directory",))]
    targets += [words[i + 1] for i, w in enumerate(words[:-1]) if w == "-t"]
    operands = [w for w in words if not w.startswith("-")]
    if name == "tee":
        given = outputs(name, words)
        return list(given.files) if given is not None else operands
    return targets + operands[-1:]


def _in_path_directory(word: str) -> bool:
    path = word.rstrip("/") + ("/" if word.endswith("/") or "." not in word else "")
    return (path + "/").startswith(_PATH_DIRECTORIES) or word.startswith(_PATH_DIRECTORIES)


def _home_file(target: str) -> bool:
    """``~/name``: resolved by the shell to a literal path (named or not, it is checked)."""
    return target.startswith("~/") and not has_glob(target) and "$" not in target


def _glob_startup(pattern: str) -> bool:
    return any(fnmatchcase(name, pattern) for name in _STARTUP_NAMES)


def _unquoted(line: str) -> str:
    """The line with quotes and backslashes taken out (``.bash''rc``, ``.bash\\rc``)."""
    return re.sub(r"['\"\\]", "", line)
