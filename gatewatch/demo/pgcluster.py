"""A throw-away PostgreSQL cluster: initdb on a free port under a temporary directory.

PostgreSQL refuses to run as root; when we are root (as in CI) the server runs as the
``postgres`` system user on a directory that user owns.

The superuser logs in without a password over the Unix socket, whose directory is 0700: only the
server's user (and root) reach it. Over TCP the tests also let ``postgres`` and ``gw_trust`` in
without one; ``trust_tcp=False`` (the demo, whose SSH target shares the host) takes that away, so
that over TCP every role needs its password.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


class ClusterError(RuntimeError):
    """The throw-away cluster could not be set up; the message says which step failed."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for version in ("17", "16", "15", "14"):
        candidate = Path(f"/usr/lib/postgresql/{version}/bin/{name}")
        if candidate.exists():
            return str(candidate)
    return None


def missing_binaries() -> list[str]:
    return [b for b in ("initdb", "pg_ctl", "postgres") if pg_bin(b) is None]


class PgCluster:
    """Start with ``start()``; the superuser ``postgres`` connects over the Unix socket."""

    def __init__(self, base: Path | None = None, *, tls: tuple[Path, Path] | None = None,
                 trust_tcp: bool = True) -> None:
        self.base = Path(base) if base else Path(tempfile.mkdtemp(prefix="gatewatch-pg-"))
        self.data = self.base / "data"
        self.socket_dir = self.base / "sock"
        self.port = free_port()
        self.host = "127.0.0.1"
        self._tls = tls
        self._trust_tcp = trust_tcp
        self._as_postgres = os.geteuid() == 0
        self.started = False

    def _run(self, args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        program = Path(args[0]).name
        if self._as_postgres:
            args = ["runuser", "-u", "postgres", "--", *args]
        try:
            return subprocess.run(args, check=True, capture_output=True, text=True, **kw)  # type: ignore[call-overload,no-any-return]
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or exc.stdout or "").strip().splitlines()
            raise ClusterError(
                f"{program} failed: {detail[-1] if detail else exc}"
            ) from exc

    def start(self) -> None:
        missing = missing_binaries()
        if missing:
            raise RuntimeError(f"PostgreSQL server binaries not found: {', '.join(missing)}")
        self.base.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        for path in (self.base, self.socket_dir):   # whatever the umask or the caller made
            path.chmod(0o700)
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            for path in (self.base, self.socket_dir):
                os.chown(path, pw.pw_uid, pw.pw_gid)
            # The server runs as postgres: every directory above its own must be traversable.
            for parent in self.base.parents:
                if parent.stat().st_mode & 0o001 == 0:
                    parent.chmod(parent.stat().st_mode | 0o711)
        initdb = pg_bin("initdb")
        assert initdb is not None
        self._run([initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust",
                   "--encoding=UTF8", "--locale=C", "-N"])
        conf = [
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.socket_dir}'",
            "max_connections = 300",
            "fsync = off",
            "shared_buffers = 64MB",
            "password_encryption = 'scram-sha-256'",
        ]
        if self._tls is not None:
            cert, key = self._tls
            for src, name in ((cert, "server.crt"), (key, "server.key")):
                dest = self.data / name
                shutil.copy(src, dest)
                dest.chmod(0o600)
                if self._as_postgres:
                    pw = pwd.getpwnam("postgres")
                    os.chown(dest, pw.pw_uid, pw.pw_gid)
            conf += ["ssl = on", "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'"]
        with (self.data / "postgresql.conf").open("a") as f:
            f.write("\n".join(conf) + "\n")
        trusted = ("host all postgres 127.0.0.1/32 trust\n"
                   "host all gw_trust 127.0.0.1/32 trust\n") if self._trust_tcp else ""
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"{trusted}"
            "host all gw_md5 127.0.0.1/32 md5\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )
        pg_ctl = pg_bin("pg_ctl")
        assert pg_ctl is not None
        self._run([pg_ctl, "-D", str(self.data), "-l", str(self.base / "postgres.log"), "-w",
                   "-t", "60", "start"])
        self.started = True

    def dsn(self, dbname: str = "postgres", user: str = "postgres") -> str:
        return f"host={self.socket_dir} port={self.port} dbname={dbname} user={user}"

    def sql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL as the superuser through psql; returns its output."""
        psql = shutil.which("psql") or pg_bin("psql")
        assert psql is not None
        out = subprocess.run(
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-d", self.dsn(dbname)],
            input=sql, check=True, capture_output=True, text=True,
        )
        return out.stdout

    def create_role(self, name: str, password: str | None, *, md5: bool = False,
                    superuser: bool = False) -> None:
        parts = [f"SET password_encryption = '{'md5' if md5 else 'scram-sha-256'}';"]
        attrs = "LOGIN SUPERUSER" if superuser else "LOGIN"
        pw = f" PASSWORD '{password}'" if password is not None else ""
        parts.append(f'CREATE ROLE "{name}" {attrs}{pw};')
        self.sql("\n".join(parts))

    def stop(self) -> None:
        # A server whose start was interrupted may be up without start() having returned.
        if self.started or (self.data / "postmaster.pid").exists():
            pg_ctl = pg_bin("pg_ctl")
            assert pg_ctl is not None
            try:
                self._run([pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"])
            except ClusterError:    # already down; the directory goes all the same
                pass
            self.started = False
        shutil.rmtree(self.base, ignore_errors=True)
