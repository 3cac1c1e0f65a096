"""The outside attack through the SSH side, second round (real OpenSSH ssh, scp and sshd):

- getopt_long's abbreviations: ``grep --only`` is ``--only-matching``, ``head --by=`` is
  ``--bytes``, ``env --split=`` is ``--split-string``. An abbreviated option that cuts what a
  plain reader prints makes its output masked whole, and ``env --split='rm -rf /etc/…'`` is
  judged, and blocked, as the command it runs.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.integration.test_masking_ssh_transfers import CARDS, EMAILS, leaked
from tests.sshd import SshdTarget
from tests.sshgw import SshGateway, start_ssh_gateway, stop_ssh_gateway

pytestmark = pytest.mark.integration

SECRETS = "".join(f"{i},{EMAILS[i % 2]},{CARDS[i % 3]},note {i}\n" for i in range(6))


@pytest.fixture(scope="module")
def rgw(sshd: SshdTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGateway]:
    gateway = start_ssh_gateway(sshd, tmp_path_factory.mktemp("sshgw"))
    (sshd.home / "round2").mkdir(exist_ok=True)
    (sshd.home / "round2" / "env.txt").write_text(SECRETS)
    try:
        yield gateway
    finally:
        stop_ssh_gateway(gateway)


def run(gw: SshGateway, command: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(gw.ssh_argv(command), env=gw.env(), capture_output=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def exposed(data: bytes) -> list[str]:
    """Seeded values in ``data``, also once cut into chunks over lines, or reversed."""
    text = data.decode("utf-8", "replace")
    joined = "".join(text.split())
    return (leaked(data) + leaked(joined.encode()) + leaked(text[::-1].encode())
            + leaked("".join(text[::-1].split()).encode()))


ABBREVIATED = [
    "grep --only '.\\{{6\\}}' {f}", "grep --only-m '.\\{{5\\}}' {f}", "grep --o '[0-9 ]*' {f}",
    "head --by=120 {f}", "head --by 60 {f}; echo; tail --by=+61 {f}", "tail --by=+145 {f}",
    "tail --byte=+3 {f}", "sudo -n true 2>/dev/null; env grep --only '.\\{{4\\}}' {f}",
]


@pytest.mark.parametrize("command", ABBREVIATED)
def test_an_abbreviated_cutting_option_is_masked_whole(rgw: SshGateway, command: str) -> None:
    result = run(rgw, command.format(f=rgw.sshd.home / "round2" / "env.txt"))
    assert result.stdout.strip(), result.stderr
    assert not exposed(result.stdout), result.stdout[:300]
    assert set(result.stdout) <= set(b"* \t\r\n"), result.stdout[:300]


def test_a_plain_reader_with_a_full_harmless_option_is_masked_as_usual(rgw: SshGateway) -> None:
    result = run(rgw, f"grep --count note {rgw.sshd.home / 'round2' / 'env.txt'}; "
                      f"head --lines=2 {rgw.sshd.home / 'round2' / 'env.txt'}")
    assert result.returncode == 0 and b"note 0" in result.stdout, result.stdout
    assert b"**** **** **** 1111" in result.stdout and not exposed(result.stdout)


@pytest.mark.parametrize("command", [
    "env --split='rm -rf /etc/gatewatch-test-nonexistent'",
    "env --split-s 'rm -rf /etc/gatewatch-test-nonexistent'",
    "env -i --s='rm -rf /usr/gatewatch-test-nonexistent'",
    "su --comm='rm -rf /etc/gatewatch-test-nonexistent'",
    "flock /tmp/gatewatch-lock --comm 'rm -rf /etc/gatewatch-test-nonexistent'",
    "nice --adj 5 rm -rf /etc/gatewatch-test-nonexistent",
])
def test_an_abbreviated_wrapper_option_is_judged_as_the_command_it_runs(
        rgw: SshGateway, command: str) -> None:
    result = run(rgw, command)
    assert result.returncode == 126, result.stderr
    assert b"gatewatch: blocked by rule" in result.stderr
    assert result.stdout == b""
