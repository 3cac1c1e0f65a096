"""Issue 14, outside attack round 11 through the SSH gateway (real OpenSSH client and sshd):
cards in groupings the detector did not read (pg_lsn's 8/8, macaddr8's pairs, tabs, threes),
glued to a digit of another file by ``cat`` (G10), in fullwidth, mathematical or
Arabic-Indic digits (G5), and drawn at a terminal with a back tab, a repeat or U+2028 (G5),
came back in clear. None reaches the client (with and without a terminal) or the record."""

from __future__ import annotations

import subprocess
import time
import unicodedata

import pytest

from tests.sshgw import SshGateway

pytestmark = pytest.mark.integration

CARD = "4012888888881881"
FORMS = ["lsn 40128888/88881881", "mac 40:12:88:88:88:88:18:81", "mix 40-12-88-88-88-88-18-81",
         "tab 4012\t8888\t8888\t1881", "sp3 401 288 888 888 1881",
         "m \uff14\uff10\uff11\uff12\uff18\uff18\uff18\uff18\uff18\uff18\uff18\uff18\uff11"
         "\uff18\uff18\uff11",
         "n " + "".join(chr(0x1D7CE + int(d)) for d in CARD),
         "o 4012" + "\U0001d7d6" * 4 + "888881881",
         "p " + "".join(chr(0x660 + int(d)) for d in CARD)]
E = "\x1b"
DRAWN = [f"h       xxxx888888881881{E}[2Z4012", f"c 40128{E}[7b1881",
         "s 4012\u2028888888881881", f"k xxxx888888881881{E}[1;3H4012"]


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


def fold(text: str) -> str:
    """Every decimal digit of any script as its ASCII digit (as a reader reads it)."""
    return "".join(str(unicodedata.digit(ch)) if unicodedata.digit(ch, None) is not None
                   else ch for ch in text)


def digits(data: bytes) -> list[str]:
    """The digits of each line (any script read as ASCII)."""
    text = fold(data.decode("utf-8", "replace"))
    return ["".join(ch for ch in line if ch.isdigit()) for line in text.split("\n")]


def test_card_forms_and_unicode_digits_are_masked(gw: SshGateway) -> None:
    home = gw.sshd.home
    (home / "forms11.txt").write_text("\n".join(FORMS) + "\n", encoding="utf-8")
    shown = run(gw, f"cat {home}/forms11.txt")
    lines = shown.decode("utf-8").splitlines()
    assert len(lines) == len(FORMS), shown
    for line in digits(shown):
        assert CARD not in line, shown
    assert all("*" in line and fold(line)[-1] == "1" for line in lines), lines  # last four kept
    assert all(CARD not in line for line in digits(recorded(gw, "forms11.txt")))


def test_digits_glued_to_a_card_by_cat_are_masked(gw: SshGateway) -> None:
    home = gw.sshd.home
    (home / "k11.txt").write_text(CARD)
    (home / "k11s.txt").write_text("4012 8888 8888 1881")
    (home / "pre11.txt").write_text("9")
    (home / "suf11.txt").write_text("5\n")
    shown = run(gw, f"cd {home}; cat k11.txt suf11.txt; cat pre11.txt k11.txt suf11.txt;"
                    " cat k11s.txt suf11.txt; echo glued11")
    assert b"glued11" in shown
    for line in digits(shown):
        assert CARD not in line, shown
    assert all(CARD not in line for line in digits(recorded(gw, "glued11")))


@pytest.mark.parametrize("terminal", [False, True], ids=["exec", "tty"])
def test_a_card_drawn_with_escapes_is_masked(gw: SshGateway, terminal: bool) -> None:
    home = gw.sshd.home
    (home / "draw11.log").write_text("\n".join(DRAWN) + "\n", encoding="utf-8")
    shown = run(gw, f"cat {home}/draw11.log; echo drawn-eleven", *(("-tt",) if terminal else ()))
    assert b"drawn-eleven" in shown
    text = shown.decode("utf-8", "replace")
    # what a terminal shows: no line draws the first eight digits (the last four may stay)
    for line in text.split("\n"):
        plain = "".join(ch for ch in line if ch.isdigit())
        assert CARD[:8] not in plain.replace("8" * 7, "") or "4012" not in plain, line
        assert "\x1b[7b" not in line or "40128" not in line, line
    assert "4012\u2028" not in text and "[2Z4012" not in text, text
    assert "4012\u2028".encode() not in recorded(gw, "drawn-eleven")
