"""Lines that read another process's memory, open files or arguments (issue 14).

A transform's output need not go to a file: ``rev .env | setsid sleep 600 &`` parks it in the
pipe that feeds a process which never reads it, and ``cat /proc/PID/fd/0`` prints it later, on
another connection, reversed, where no detector sees it. The same holds for what a process keeps
in its memory (``/proc/PID/mem``, ``map_files``), its environment and arguments (``environ``,
``cmdline``), its open files (``fd``, ``fdinfo``, ``/dev/fd``) and its views of the file system
(``root``, ``cwd``: another mount namespace). The gateway cannot know what such a path holds,
so it counts as content it has not seen: a line that may read one has its output masked whole,
as a line that reads a marked file (``written.Memory.read``), and an SFTP request on one is
refused. Globs are read component by component (``/proc/[0-9]*/fd/0``), a relative path where
the working directory is not known as it may be under ``/proc`` (``fd/0``, ``1/environ``), a
working directory under ``/proc`` (followed, or ``cd`` in the same line) as making every read
one, a line that names such a path in any word (``echo /proc/1/fd/0 | xargs cat``,
``f=/proc/1/environ``) as reading it, short of programs that only print names (``ls -l
/proc/*/fd``), and a line that names /proc and reads a name only known at run time (``for d
in /proc/[0-9]*; do cat $d/fd/0; done``) too.

Not seen: a path only known at run time whose text holds none of these names
(``cat "$(printf /pr%soc/1/fd/0)"``), and a link to one made before the gateway saw it.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

from engine.guardrail.commands import Cwd
from engine.guardrail.shellwords import ShellParseError, SimpleCommand, parse, pipelines
from engine.ssh.linepaths import Place, path_parts, place, reads

# What under /proc/PID may show another process's memory, descriptors, arguments or files.
_PROCESS = ("fd", "fdinfo", "mem", "environ", "cmdline", "map_files", "root", "cwd", "task")
# Those a relative name may reach when the directory it is in is not known (not ``root`` and
# ``cwd``, which are common names of directories of one's own).
_MEMORY = ("fd", "fdinfo", "mem", "environ", "cmdline", "map_files")
# Such a path written out anywhere in a line (a word of any command, an assignment, code).
_MENTION = re.compile(
    r"/proc/+[^/\s'\"]*/+(?:task/+[^/\s'\"]*/+)?(?:" + "|".join(_PROCESS) + r")(?![\w.-])"
    r"|/dev/+fd(?![\w.-])")
# Programs that print names, not what the files hold: a line of only these may name one.
_NAMES = frozenset({"ls", "stat", "readlink", "realpath", "basename", "dirname", "pwd", "du",
                    "df", "echo", "printf", "test", "[", "true", "false", "cd", "pushd", "popd"})
_CD = frozenset({"cd", "pushd"})


def _could(part: str, name: str, pattern: bool) -> bool:
    return fnmatchcase(name, part) if pattern else part == name


def _from_root(parts: tuple[str, ...], pattern: bool, tree: bool) -> bool:
    """Whether the absolute path ``parts`` (a directory walked: ``tree``) may be one."""
    if not parts:
        return tree  # a recursive reader of / walks /proc
    if _could(parts[0], "proc", pattern):
        if tree and len(parts) <= 2:
            return True  # /proc, /proc/PID walked
        return len(parts) >= 3 and any(_could(parts[2], n, pattern) for n in _PROCESS)
    if _could(parts[0], "dev", pattern):
        return (tree and len(parts) == 1) or (
            len(parts) >= 2 and _could(parts[1], "fd", pattern))
    return False


def _sensitive(where: Place, tree: bool) -> bool:
    parts, pattern = where.parts, where.pattern
    if where.anchored:
        return _from_root(parts, pattern, tree)
    # under a directory not known: the path may start anywhere, /proc or /proc/PID included
    if any(_from_root(parts[i:], pattern, False) for i in range(len(parts))):
        return True
    # fd/0, environ, 1/fd/0, task/1/fd/0: under /proc or /proc/PID
    return any(_could(part, n, pattern) for part in parts for n in _MEMORY)


def _under_proc(directory: str) -> bool:
    parts = path_parts(directory)
    return parts[:1] == ("proc",) or parts[:2] == ("dev", "fd")


def process_memory(line: str, cwd: Cwd = None, *, unreadable: bool = True) -> str | None:
    """The path through which ``line`` may read another process's memory, descriptors,
    arguments or files, said for the user, or None (``unreadable`` as in ``reads``)."""
    found = reads(line, cwd, unreadable=unreadable)
    for where in found.files:
        if _sensitive(where, False):
            return _said(where)
    for where in found.trees:
        if _sensitive(where, True):
            return _said(where)
    if found.any and cwd and any(_under_proc(d) for d in cwd):
        return f"a file under {sorted(d for d in cwd if _under_proc(d))[0]}"
    try:
        script = parse(line)
    except ShellParseError:
        return None  # what does not parse: ``reads`` said what it may read
    programs: set[str] = set()
    for pipeline in pipelines(script):
        for stage in pipeline.stages:
            if not isinstance(stage, SimpleCommand) or not stage.argv:
                continue
            name = stage.argv[0].rsplit("/", 1)[-1]
            programs.add(name)
            if name in _CD and found.any:
                for word in stage.argv[1:]:
                    if _cd_proc(word):
                        return f"a file under {word}"
    if (mention := _MENTION.search(line)) is not None and not (programs and programs <= _NAMES):
        return mention.group()
    if found.unknown and (mention := _PROC_NAMED.search(line)) is not None:
        # a name only known at run time, in a line that names /proc (``for d in /proc/[0-9]*;
        # do cat $d/fd/0; done``): it may be one
        return f"{mention.group()}/…"
    return None


_PROC_NAMED = re.compile(r"/proc(?![\w.-])|/dev/+fd(?![\w.-])")


def _cd_proc(word: str) -> bool:
    """Whether ``cd WORD`` may lead under /proc or /dev/fd (a relative name: a component)."""
    if _PROC_WORD.search(word):
        return True
    for where in place(word, None):
        parts, pattern = where.parts, where.pattern
        if where.anchored and parts and (_could(parts[0], "proc", pattern) or (
                _could(parts[0], "dev", pattern) and parts[1:2]
                and _could(parts[1], "fd", pattern))):
            return True
    return False


_PROC_WORD = re.compile(r"(?:^|/)proc(?:/|$)|(?:^|/)dev/+fd(?:/|$)")


def _said(where: Place) -> str:
    return ("/" if where.anchored else "…/") + "/".join(where.parts)


def why(path: str) -> str:
    return (f"{path} may show another process's memory, open files or arguments, which may "
            "hold what a command whose output the gateway could not read left there")


def sensitive_path(path: str) -> bool:
    """Whether an SFTP request's ``path`` (absolute, or relative to the home directory) may be
    one of another process's."""
    return any(_sensitive(where, False)
               for where in place(path if path.startswith("/") else "~/" + path, None))


# Programs that run a command apart from the line: it may outlive the line, holding its input.
_DETACHERS = frozenset({"setsid", "nohup", "disown", "daemon", "daemonize", "systemd-run",
                        "at", "batch", "screen", "tmux", "start-stop-daemon", "coproc"})
# Wrappers that may come before one (``sudo setsid …``, ``timeout 9 nohup …``).
_WRAPPERS = frozenset({"sudo", "doas", "env", "nice", "ionice", "timeout", "stdbuf", "exec",
                       "command", "builtin", "chrt", "taskset", "setpriv", "runuser", "su"})


def parks(line: str) -> bool:
    """Whether ``line`` may leave what one of its commands printed waiting in a pipe once it
    has ended (``rev f | setsid sleep 600 &``): a pipe or a process substitution, with a
    command run in the background or by a program that detaches it. Such output is kept
    where no file names it, so it is marked as a file whose name is not known
    (``written.Memory.wrote``)."""
    try:
        script = parse(line)
    except ShellParseError:
        return False  # a line not read: ``writes`` marks any path already
    piped = "<(" in line or ">(" in line
    detached = False
    for pipeline in pipelines(script):
        piped = piped or len(pipeline.stages) > 1
        detached = detached or pipeline.background
        for stage in pipeline.stages:
            if isinstance(stage, SimpleCommand) and _detaches(stage.argv):
                detached = True
    return piped and detached


def _detaches(argv: tuple[str, ...]) -> bool:
    for word in argv:
        name = word.rsplit("/", 1)[-1]
        if name in _DETACHERS:
            return True
        if not (name in _WRAPPERS or word.startswith("-") or word[:1].isdigit() or "=" in word):
            return False
    return False
