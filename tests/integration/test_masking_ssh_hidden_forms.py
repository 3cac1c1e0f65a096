"""Issue 14, re-attack through the SSH gateway (real OpenSSH client and sshd): a file read with
``cat`` (a plain reader, masked the usual way) holding cards as signed and decorated numbers
and values behind JSON string escapes shows none of them, to the client nor in the recorded
output."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.integration.test_masking_hidden_forms import CARD, leaked
from tests.sshgw import SshGateway

pytestmark = pytest.mark.integration

EMAIL = "grace.hopper@example.com"
ESCAPED = "".join(f"\\u{ord(c):04x}" if i % 3 else c for i, c in enumerate(CARD))
LINES = [
    f"balance -{CARD}", f'{{"n": -{CARD}, "m": +{CARD}.0}}', f"padded 0000000{CARD}",
    "float -4.111111111111111e+15 and 41.11111111111111E14",
    f'{{"c": "{ESCAPED}"}}', '{"e": "grace.hopper\\u0040example\\u002ecom"}',
    f'{{"c": "paid\\n{CARD}", "u": "mailto:grace.hopper@example.com\\/x"}}',
    "hidden-forms-probe-done",
]


def recorded(gw: SshGateway, marker: str) -> bytes:
    """The recorded output of the session that ran ``marker``, once it has ended."""
    deadline = time.monotonic() + 15
    while True:
        rows = gw.query("SELECT s.id FROM statements t JOIN sessions s ON s.id = t.session_id"
                        " WHERE t.text LIKE ? AND s.ended_at IS NOT NULL", f"%{marker}%")
        if rows:
            data = b"".join(bytes(r["data"]) for r in gw.query(
                "SELECT data FROM ssh_output WHERE session_id = ? AND stream = 'o'",
                rows[-1]["id"]))
            if b"hidden-forms-probe-done" in data:
                return data
        assert time.monotonic() < deadline, f"the session of {marker} was never recorded"
        time.sleep(0.02)


def test_hidden_forms_in_ssh_output_are_masked(gw: SshGateway) -> None:
    path = gw.sshd.home / "hidden-forms.txt"
    path.write_text("\n".join(LINES) + "\n")
    direct = "\n".join(LINES)
    assert leaked([CARD], [EMAIL], direct)
    result = subprocess.run(gw.ssh_argv(f"cat {path}"), env=gw.env(),
                            capture_output=True, timeout=60)
    assert result.returncode == 0 and b"hidden-forms-probe-done" in result.stdout
    shown = result.stdout.decode("utf-8", "replace")
    assert not leaked([CARD], [EMAIL], shown), shown
    assert shown.count("1111") >= 5  # partial: the last four digits stay
    stored = recorded(gw, f"cat {path}").decode("utf-8", "replace")
    assert not leaked([CARD], [EMAIL], stored), stored
