"""Lines that leave a process running after the line was judged (issue 14).

Marks (``engine.ssh.written``) are made per line, for the files that line names, when it is
judged. A process still running later is not judged again: a plain reader started earlier
(``tail -f x.log > t.txt &``, a ``cat`` waiting on a named pipe) copies what a later
transform writes where it reads (``rev .env >> x.log``, ``rev .env > fifo``) into a file no
mark names, and a later ``cat t.txt`` prints it in clear. ``lingers`` says whether a line may
leave such a process behind or wait before it reads: a pipeline run in the background (``&``,
``( … ) &``, a loop run so), a program that detaches one (``nohup``, ``setsid``, ``disown``,
``screen`` …), a named pipe made (``mkfifo``, ``mknod … p``: its reader waits for a writer,
on any connection), a follower (``tail -f``, ``less +F``, ``watch``, ``inotifywait``), a
loop, or a ``sleep`` (what it reads afterwards is read after the line was judged). A line the
gateway cannot read may. ``written.Memory.wrote`` then fails closed (the rule is documented
there).
"""

from __future__ import annotations

import re

from engine.guardrail.commands import SHELLS, classify_command
from engine.guardrail.shellwords import ShellParseError, parse, pipelines

# Programs whose command, or which themselves, keep running once the line has ended or wait
# before they read.
_LINGERING = frozenset({
    "setsid", "nohup", "disown", "bg", "daemon", "daemonize", "systemd-run", "at", "batch",
    "screen", "tmux", "start-stop-daemon", "coproc", "mkfifo", "mknod", "watch", "sleep",
    "inotifywait", "inotifywatch", "entr", "socat", "nc", "ncat", "netcat", "crontab",
})
# Followers: they keep reading what later lines append.
_FOLLOW = {"tail": ("fF", ("--follow", "--retry")), "less": ("", ("+F",)),
           "journalctl": ("f", ("--follow",))}
# ``&`` that runs a pipeline in the background (not ``&&``, ``>&``, ``&>``, ``|&``), and the
# loop keywords, outside quotes; the parser flattens loops and forgets their ``&``.
_QUOTED = re.compile(r"'[^']*'|\"(?:\\.|[^\"\\])*\"|\\.", re.DOTALL)
_BACKGROUND = re.compile(r"(?<![&>|<])&(?![&>])")
_LOOP = re.compile(r"(?:^|[\s;&|(){}])(?:while|until|coproc)(?=[\s;&|(){}]|$)")
_MAX_NESTED = 4


def lingers(line: str, depth: int = 0, *, unreadable: bool = True) -> bool:
    """Whether ``line`` may leave a process running, or reading, after it was judged (a line
    the gateway cannot read may, when it is ``unreadable``: a guessed reading of a line that
    does not parse, or a line typed into a program, is no line at all)."""
    if depth > _MAX_NESTED:
        return True
    try:
        script = parse(line)
        facts = classify_command(line)
    except ShellParseError:
        return unreadable
    bare = _QUOTED.sub("x", line)
    if _BACKGROUND.search(bare) or _LOOP.search(bare):
        return True
    if facts.programs & _LINGERING:
        return True
    if any(pipeline.background for pipeline in pipelines(script)):
        return True
    for argv in facts.commands:
        if not argv:
            continue
        name = argv[0].rsplit("/", 1)[-1]
        if name in _LINGERING:
            return True
        if name in SHELLS and "-c" in argv[1:-1] and lingers(argv[-1], depth + 1):
            return True
        letters, long_names = _FOLLOW.get(name, ("", ()))
        for word in argv[1:]:
            if word == "--":
                break
            if any(word.split("=", 1)[0] == o or (
                    o.startswith("--") and len(word) > 2 and o.startswith(word.split("=", 1)[0]))
                   for o in long_names):
                return True
            if (letters and word.startswith("-") and not word.startswith("--")
                    and set(word[1:]) & set(letters)):
                return True
    return False
