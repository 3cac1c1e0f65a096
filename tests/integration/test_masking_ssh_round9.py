"""Issue 14, outside attack round 9 through the SSH gateway (real OpenSSH client and sshd):
files at rest read with plain ``cat`` and ``ls`` whose values the detectors missed — a card
glued to letters or an underscore, in a file name, with dots, underscores or single blanks
between its digits (F8); passwords in URLs and ``db_pass:`` (F11); a card split by escapes
that draw nothing or drawn over a placeholder with cursor movement, shown whole by a terminal
(F15). None reaches the client, at a terminal or not, nor the recorded output."""

from __future__ import annotations

import subprocess
import time

import pytest

from recordings.emulator import Emulator
from tests.sshgw import SshGateway

pytestmark = pytest.mark.integration

CARD = "4012888888881881"
GLUED = [f"ref_{CARD}", f"cardA{CARD}", f"{CARD}x", "card 4012.8888.8888.1881",
         "card 4 0 1 2 8 8 8 8 8 8 8 8 1 8 8 1", "card 4012_8888_8888_1881"]
CREDENTIALS = {
    "Pa55w0rdX": "DATABASE_URL=postgres://shop:Pa55w0rdX@10.1.2.3:5432/shop",
    "R3disPassZ": "REDIS_URL=redis://:R3disPassZ@cache:6379/0",
    "Adm1nPassQ": "url https://admin:Adm1nPassQ@intranet/",
    "Yaml0Pass": "db_pass: Yaml0Pass",
}
DRAWN = (b"e 4012\x1b]0;t\x07888888881881\n" b"g 40128888\x1b[s88881881\n"
         b"i 4012\x1b(B888888881881\n" b"c 4012\xe2\x80\x8b888888881881\n"
         b"d 4012xxxxxxxxxxxx\x1b[12D888888881881\n"
         b"e 4012\x1b[1;31m\x1b[0m\x1b[s\x1b[u888888881881\n"
         b"f 40128888\x1b[2D\x1b[2C88881881\nround9-done\n")


def run(gw: SshGateway, command: str, *, tty: bool = False) -> bytes:
    result = subprocess.run(gw.ssh_argv(command, options=("-tt",) if tty else ()),
                            env=gw.env(), capture_output=True, timeout=60,
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


def digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit() or ch == "\n")


def test_cards_glued_to_words_or_separated_oddly_are_masked(gw: SshGateway) -> None:
    home = gw.sshd.home
    (home / "glued.txt").write_text("\n".join(GLUED) + "\n")
    (home / "exports9").mkdir(exist_ok=True)
    (home / "exports9" / f"stmt_{CARD}.pdf").write_text("")
    shown = run(gw, f"cat {home}/glued.txt; ls {home}/exports9").decode()
    assert shown.count("\n") == len(GLUED) + 1, shown
    assert CARD not in digits(shown), shown
    assert "stmt_" in shown and ".pdf" in shown  # the name around the card stays
    assert CARD not in digits(recorded(gw, "glued.txt").decode("utf-8", "replace"))


def test_credentials_in_urls_and_yaml_are_masked(gw: SshGateway) -> None:
    (gw.sshd.home / "cred9.txt").write_text("\n".join(CREDENTIALS.values()) + "\n")
    shown = run(gw, f"cat {gw.sshd.home}/cred9.txt").decode()
    stored = recorded(gw, "cred9.txt").decode("utf-8", "replace")
    for secret in CREDENTIALS:
        assert secret not in shown and secret not in stored, (secret, shown)
    assert "postgres://shop:" in shown and "@10.1.2.3:5432/shop" in shown


@pytest.mark.parametrize("tty", [False, True], ids=["exec", "exec-tty"])
def test_a_card_the_terminal_would_show_whole_is_masked(gw: SshGateway, tty: bool) -> None:
    (gw.sshd.home / "drawn9.log").write_bytes(DRAWN)
    out = run(gw, f"cat {gw.sshd.home}/drawn9.log", tty=tty)
    assert b"round9-done" in out
    emu = Emulator(80, 24)
    emu.feed(out.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    screen = "\n".join(emu.screen.display)
    assert CARD not in screen, screen
    stored = recorded(gw, "drawn9.log")
    emu = Emulator(80, 24)
    emu.feed(stored.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    assert CARD not in "\n".join(emu.screen.display)
