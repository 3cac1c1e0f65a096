"""``engine.ssh.shellstate``: which lines leave state behind that changes what later lines print
(issue 14), and which write a shell's start-up state."""

from __future__ import annotations

import pytest

from engine.ssh.shellstate import bare_shell, leaves_state, startup_write

LEAVES_STATE = [
    # files written by a transform, or by a program the gateway cannot read
    "rev secrets > g", "sed -i 's/./&-/g' f", "rev f | tee g", "{ rev f; } > g",
    "rev f | cat > g", "rev f | sort -o g", "sort -o g f", "sort -uo g f", "uniq f g",
    "sort f > g", "dd if=f of=g conv=swab", "awk '{print > \"g\"}' f",
    "sed 's/x/y/w g' f", "xxd f g", "cp g h", "mv g h", "ln -s /usr/bin/rev cat", "chmod +x g",
    "python3 -c 'open(\"g\",\"w\").write(\"x\")'", "perl -e 1", "vim f", "systemctl status",
    "./x", "bash x.sh", "exec > g",
    # the shell's own state
    "alias cat=rev", "f(){ rev \"$@\"; }", "source f", ". f", "enable -n cat",
    "hash -p /usr/bin/rev cat", "shopt -s expand_aliases", "trap 'rev f' DEBUG",
    "bind -x x", "declare -n x=PATH", "export -f f",
    # variables: computed values, and the ones programs or the shell act on
    "x=$(rev f)", "x=$y", "read x < f", "printf -v x %.3s abcdef", "mapfile a < f",
    "PATH=/tmp:$PATH", "export PATH=/tmp", "export X=1", "PROMPT_COMMAND='rev f'",
    "export PROMPT_COMMAND='cat f'", "PS1='$(rev f)'", "env LD_PRELOAD=/tmp/x.so cat f",
    "sudo LD_PRELOAD=/tmp/x cat f", "PATH=/tmp cat f",
    # the terminal's output processing
    "stty olcuc", "stty -opost", "stty raw",
    # what the gateway cannot read
    "echo 'unclosed", "bash -c 'alias cat=rev'",
]
LEAVES_NOTHING = [
    "cat f", "ls -l", "cd /tmp", "export PS1='g''w$ '", "x=1", "cat f > g", "cat f | tee g",
    "uniq f", "rev f", "sed 's/./& /g' f", "awk '{print substr($0,1,12)}' f",
    "od -c f", "xxd f", "tr a-z A-Z < f", "grep -o x f", "head -c 20 f; echo; tail -c +21 f",
    "dd conv=swab if=f status=none", "sh -c 'cat f'", "bash -i", "echo hi >&2",
    "rev f 2>&1 >/dev/null", "stty -a", "stty -echoctl 2>/dev/null", "stty cols 80",
    "printf 'end-%s\\n' 3", "LANG=C sort f", "seq 40", "true",
]


@pytest.mark.parametrize("line", LEAVES_STATE)
def test_lines_that_leave_state_behind(line: str) -> None:
    assert leaves_state(line)


@pytest.mark.parametrize("line", LEAVES_NOTHING)
def test_lines_that_leave_nothing_behind(line: str) -> None:
    assert not leaves_state(line)


@pytest.mark.parametrize("line", [
    "echo 'alias cat=rev' >> ~/.bashrc", "cp x ~/.bashrc", "tee -a ~/.profile",
    "vim ~/.bash''rc", "sed -i s/a/b/ .bashrc", "python3 -c 'open(\"/home/u/.bashrc\",\"a\")'",
    "echo x > .b*", "echo x > .[b]ashrc", "echo x >> \"$f\"", "cp rev ~/bin/cat",
    "cp rev ~/.local/bin/cat", "cat x > $HOME/.inputrc", "ln -s x ~/.ssh/rc",
    "sudo cp /usr/bin/rev /usr/local/bin/cat", "sudo tee /usr/bin/cat < x",
    "echo x > /usr/local/bin/cat", "dd if=x of=/usr/bin/cat", "cp -t /usr/bin x",
    "sudo install -m755 x /usr/local/bin/", "scp -t ~/.bashrc", "echo 'unclosed",
])
def test_lines_that_write_a_shells_start_up_state(line: str) -> None:
    assert startup_write(line)


@pytest.mark.parametrize("line", [
    "cat ~/.bashrc", "grep alias ~/.bashrc ~/.profile", "echo hi > ~/notes", "cat f > g",
    "ls ~/bin", "rev f", "cp *.txt /tmp", "ls /usr/bin", "/usr/bin/python3 x.py",
    "cp /usr/bin/rev /tmp/x", "cat /usr/bin/x > /dev/null", "ls -a ~",
])
def test_lines_that_do_not(line: str) -> None:
    assert not startup_write(line)


def test_a_guessed_reading_that_does_not_parse_is_no_line() -> None:
    assert startup_write("ls '") and not startup_write("ls '", unreadable=False)


@pytest.mark.parametrize(("command", "expected"), [
    ("bash", True), ("bash -il", True), ("sh", True), ("bash x.sh", False),
    ("bash --rcfile x", False), ("perl -e 'exec \"bash\"'", False), ("rev f; bash -i", False),
])
def test_bare_shells(command: str, expected: bool) -> None:
    assert bare_shell(command) is expected
