"""Outside attack round 13, finding 6, through the SSH gateway (real OpenSSH client and sshd):
``cat`` of a file with a card whose groups an en dash, a middle dot, a fraction slash or an
ideographic comma separates, or an e-mail address with a fullwidth at sign, showed them in
clear. None reaches the client (with and without a terminal) or the record; a line of prose
with en dashes between numbers passes as it is."""

from __future__ import annotations

import subprocess
import time
import unicodedata

import pytest

from tests.sshgw import SshGateway

pytestmark = pytest.mark.integration

CARD = "4012888888881881"
EMAIL = "JANEROECORPEXAMPLEORG"
LINES = ["4012\u20138888\u20138888\u20131881", "4012\u00b78888\u00b78888\u00b71881",
         "4012\u20448888\u20448888\u20441881", "4012\u30018888\u30018888\u30011881",
         "4012\u2063\u20138888\u2212\u20608888\u2022\ufe0f1881",
         "jane.roe\uff20corp.example.org", "jane.roe\ufe6bcorp.example.org"]
PROSE = "from 2019\u20132020 to 2021\u20132022, pp. 120\u2013135"


def run(gw: SshGateway, command: str, *options: str) -> bytes:
    argv = gw.ssh_argv(command)
    if options:
        argv[1:1] = list(options)
    result = subprocess.run(argv, env=gw.env(), capture_output=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    return result.stdout


def recorded(gw: SshGateway, marker: str) -> bytes:
    """The recorded output of the last session that ran ``marker``, once it has ended."""
    deadline = time.monotonic() + 15
    while True:
        rows = gw.query("SELECT s.id FROM statements t JOIN sessions s ON s.id = t.session_id"
                        " WHERE t.text LIKE ? AND s.ended_at IS NOT NULL", f"%{marker}%")
        if rows:
            return b"".join(bytes(r["data"]) for r in gw.query(
                "SELECT data FROM ssh_output WHERE session_id = ?", rows[-1]["id"]))
        assert time.monotonic() < deadline, f"the session of {marker} was never recorded"
        time.sleep(0.02)


def plain(line: str) -> str:
    """What a reader reads: letters and digits, fullwidth read as ASCII, in capitals."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", line).upper()
                   if ch.isalnum() and ch.isascii())


@pytest.mark.parametrize("terminal", [False, True], ids=["exec", "tty"])
def test_cat_of_values_with_unicode_separators_is_masked(gw: SshGateway,
                                                         terminal: bool) -> None:
    home = gw.sshd.home
    name = f"seps13{'t' if terminal else 'e'}.txt"
    (home / name).write_text("\n".join([*LINES, PROSE]) + "\n", encoding="utf-8")
    shown = run(gw, f"cat {home}/{name}", *(("-tt",) if terminal else ()))
    text = shown.decode("utf-8").replace("\r\n", "\n")
    lines = text.splitlines()
    assert len(lines) == len(LINES) + 1, text
    for line in lines[:-1]:
        assert CARD not in plain(line) and EMAIL not in plain(line), line
        assert "*" in line, line
    assert lines[-1] == PROSE, lines[-1]
    record = recorded(gw, name).decode("utf-8", "replace")
    assert all(CARD not in plain(line) and EMAIL not in plain(line)
               for line in record.splitlines()), record
