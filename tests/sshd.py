"""A throw-away OpenSSH ``sshd`` on a free port of 127.0.0.1, for integration tests.

``start_sshd(work)`` writes host and client keys and an sshd_config under ``work`` and runs
``/usr/sbin/sshd -D -e`` in the foreground, logging to ``work/sshd.log``. The only user it lets
in is whoever runs the tests (root in CI, you on a laptop), by public key only.

Root and non-root differ in what sshd can do, not in how it is driven:

- as root sshd uses privilege separation, which needs ``/run/sshd`` (created here if missing)
  and the ``sshd`` system user; with ``UsePAM no`` it refuses a root whose /etc/shadow entry
  is locked (``!``), so we check that up front;
- as anyone else sshd runs without privilege separation and can only log that same user in;
  it needs no directory of its own and never reads /etc/shadow.

Either way sshd logs the user in with their real home directory as the working directory, but
with ``HOME`` set to ``SshdTarget.home`` (a scratch directory, through ``PermitUserEnvironment``)
so that no start-up file of the real user runs. Tests put files under ``SshdTarget.home`` and
name them by absolute path.
"""

from __future__ import annotations

import contextlib
import getpass
import grp
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from gatewatch.demo.pgcluster import free_port

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
CLIENT_TOOLS = ("ssh", "scp", "sftp", "ssh-keygen")
PRIVSEP_DIR = Path("/run/sshd")
HOST = "127.0.0.1"
START_TIMEOUT = 10.0

CONFIG = """\
ListenAddress {host}
Port {port}
HostKey {host_key}
PidFile {work}/sshd.pid
AuthorizedKeysFile {authorized_keys}
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
Subsystem sftp {sftp_server}
AllowTcpForwarding yes
X11Forwarding no
PermitTTY yes
PrintMotd no
PrintLastLog no
AcceptEnv LANG LC_*
PermitUserEnvironment HOME
MaxSessions 200
MaxStartups 100:30:200
LogLevel VERBOSE
"""


def missing_sshd() -> list[str]:
    """What the sshd target and the tests that drive it need but cannot find."""
    missing = [p for p in (SSHD, SFTP_SERVER) if not os.access(p, os.X_OK)]
    return missing + [t for t in CLIENT_TOOLS if shutil.which(t) is None]


def pty_problem() -> str | None:
    """Why sshd, run by this user, could not open a terminal (``ssh -t``); None if it can.

    sshd hands each new terminal to the tty group and treats a failed chown as fatal, which
    only root or a member of tty may do, unless devpts is mounted with ``gid=<tty>`` (as
    systemd mounts it) so new terminals already belong to tty. Containers often mount it
    without, so there a non-root sshd drops every ``ssh -t`` connection.
    """
    if os.geteuid() == 0:
        return None
    try:
        tty_gid = grp.getgrnam("tty").gr_gid
    except KeyError:  # no tty group: sshd leaves the terminal in the user's own group
        return None
    if tty_gid == os.getegid() or tty_gid in os.getgroups():
        return None
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    for mount in mounts:
        parts = mount.split()
        if len(parts) > 3 and parts[1] == "/dev/pts" and f"gid={tty_gid}" not in parts[3]:
            return (f"a non-root sshd cannot give terminals to group tty here: /dev/pts is "
                    f"mounted without gid={tty_gid}; run as root or as a member of tty")
    return None


def _keygen(path: Path, comment: str) -> str:
    """A fresh ed25519 key pair at ``path`` (and ``path.pub``); returns the public key line."""
    pub = path.with_name(path.name + ".pub")
    # ssh-keygen asks before overwriting, which would hang on our closed stdin.
    path.unlink(missing_ok=True)
    pub.unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    path.chmod(0o600)
    return pub.read_text().strip()


def make_client_key(path: Path) -> str:
    """An ed25519 client key without passphrase, mode 0600; returns its public key line."""
    return _keygen(path, "gatewatch-test-client")


def known_hosts_line(host: str, port: int, pub: str) -> str:
    """The known_hosts line pinning ``pub`` (a public key line) for ``host:port``."""
    name = host if port == 22 else f"[{host}]:{port}"
    keytype, blob = pub.split()[:2]  # a known_hosts entry has no use for the key's comment
    return f"{name} {keytype} {blob}"


@dataclass
class SshdTarget:
    """A running sshd; ``stop()`` ends it and every connection it is serving."""

    host: str
    port: int
    user: str
    work: Path
    client_key: Path
    host_key_pub: str
    known_hosts: Path
    home: Path
    log: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}"

    def client_options(self) -> list[str]:
        """Options every OpenSSH client (ssh, scp, sftp, ``rsync -e``) needs to reach us.

        Without the port, which ssh spells ``-p`` but scp and sftp ``-P``. ``-F /dev/null`` and
        the empty global known_hosts keep the user's and the machine's ssh config out of it.
        """
        return ["-F", "/dev/null", "-i", str(self.client_key),
                "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "StrictHostKeyChecking=yes",
                "-o", "BatchMode=yes",
                "-o", "LogLevel=ERROR"]

    def ssh_argv(self, *extra: str, options: tuple[str, ...] = ()) -> list[str]:
        """``ssh`` straight to this sshd; ``extra`` is the remote command, ``options`` go before
        the destination (``options=("-tt",)`` for a terminal)."""
        return ["ssh", "-p", str(self.port), *self.client_options(), *options,
                self.destination, *extra]

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Stop listening and drop the connections sshd is serving.

        Killing the listener alone would leave each connection's own sshd process (which calls
        setsid(), so it is not in our process group) running its session.
        """
        if not self.alive():
            return  # once reaped, its pid (and so its children's ppid) may belong to another
        children = _children(self.process.pid)
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        for pid in children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)


def _children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (Linux /proc; empty elsewhere)."""
    found: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name in parentheses may hold spaces; the parent pid follows it.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid):
            found.append(int(stat.parent.name))
    return found


def _log_tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _check_root_can_log_in() -> None:
    """As root with UsePAM no, sshd refuses a locked account even for a public key."""
    try:
        with open("/etc/shadow") as shadow:
            for line in shadow:
                name, _, rest = line.partition(":")
                if name == "root" and rest.startswith("!"):
                    raise RuntimeError(
                        "root's password is locked ('!' in /etc/shadow), so sshd refuses root "
                        "even by key; unlock it without a password: usermod -p '*' root")
    except OSError:
        pass


def _answers(host: str, port: int) -> bool:
    """Whether an SSH server answers on ``host:port`` with its version banner."""
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            return sock.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False


def start_sshd(work: Path) -> SshdTarget:
    """Start a throw-away sshd with its files under ``work``; raise RuntimeError if it fails."""
    missing = missing_sshd()
    if missing:
        raise RuntimeError(f"cannot start sshd: {', '.join(missing)} not installed "
                           "(apt-get install openssh-server openssh-client)")
    work.mkdir(parents=True, exist_ok=True)
    user = getpass.getuser()
    if os.geteuid() == 0:
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        _check_root_can_log_in()

    host_key = work / "ssh_host_ed25519_key"
    host_key_pub = _keygen(host_key, "gatewatch-test-host")
    client_key = work / "client_ed25519"
    authorized_keys = work / "authorized_keys"
    home = work / "home"
    home.mkdir(exist_ok=True)
    # HOME points at a scratch directory, so the user's shell start-up files (root's .bashrc
    # runs `pyenv init`, which can wait 60 s on a lock left by a killed login) stay out of it.
    authorized_keys.write_text(f'environment="HOME={home}" {make_client_key(client_key)}\n')
    config = work / "sshd_config"
    log = work / "sshd.log"

    # free_port() can lose a race with another process taking the port before sshd binds it.
    for _attempt in range(3):
        port = free_port()
        config.write_text(CONFIG.format(
            host=HOST, port=port, host_key=host_key, work=work,
            authorized_keys=authorized_keys, sftp_server=SFTP_SERVER))
        check = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True,
                               stdin=subprocess.DEVNULL, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"sshd rejects {config}: {check.stderr.strip()}")
        known_hosts = work / "known_hosts"
        known_hosts.write_text(known_hosts_line(HOST, port, host_key_pub) + "\n")

        with log.open("wb") as log_file:
            process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=log_file)
        target = SshdTarget(HOST, port, user, work, client_key, host_key_pub, known_hosts,
                            home, log, process)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and target.alive():
            if _answers(HOST, port):
                return target
            time.sleep(0.05)
        what = "never answered" if target.alive() else "exited"
        target.stop()
        tail = _log_tail(log)
        if "Address already in use" not in tail:
            break
    raise RuntimeError(f"sshd {what} on {HOST}:{port}; the end of {log}:\n{tail}")
