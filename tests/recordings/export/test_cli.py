"""``gatewatch export`` and ``gatewatch verify --export``: exit statuses and one-line reasons."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gatewatch.cli.main import main
from store import SqliteStore
from tests.conftest import ROOT
from tests.recordings.export.recorded import a_pg_session, an_ssh_session, record

POLICIES = """\
version: 1
engine:
  store: state/gatewatch.db
  control_socket: control.sock
identities: []
connections: []
"""


@pytest.fixture
def config(tmp_path: Path, writer: SqliteStore) -> Path:
    """A policies file naming the store the ``writer`` fixture opened (tmp_path/state/...)."""
    record(writer, [*an_ssh_session("ssh-1"), *a_pg_session("pg-1")])
    path = tmp_path / "policies.yaml"
    path.write_text(POLICIES)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    return err.rstrip("\n")


def test_export_to_a_file_then_verify(config: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    cast = tmp_path / "ssh-1.cast"
    code, out, err = run(capsys, "export", "ssh-", "--format", "asciicast", "-o", str(cast),
                         "-c", str(config))
    assert (code, err) == (0, "")
    assert out.startswith(f"wrote {cast}: asciicast export of session ssh-1 as of audit record")
    assert cast.read_bytes().startswith(b'{"version":2,')
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
    code, out, err = run(capsys, "verify", "ssh-1", "--export", str(cast), "-c", str(config))
    assert (code, err) == (0, "")
    assert out.startswith(f"ok: {cast} is the asciicast export of session ssh-1")


def test_export_to_stdout(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "export", "pg-1", "--format", "csv", "-c", str(config))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("# gatewatch {")
    assert lines[1].startswith("seq,started_at,finished_at,")
    assert len(lines) == 2 + 3


def test_a_failed_verification_is_one_line_and_status_1(
        config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pg.jsonl"
    assert run(capsys, "export", "pg-1", "--format", "jsonl", "-o", str(path),
               "-c", str(config))[0] == 0
    path.write_bytes(path.read_bytes().replace(b"SELECT 2", b"SELECT 9"))
    code, out, err = run(capsys, "verify", "--export", str(path), "-c", str(config))
    assert (code, out) == (1, "")
    assert one_line(err) == (f"verification FAILED: {path}: line 5 differs from the store's "
                             "records (edited)")
    code, out, err = run(capsys, "verify", "ssh-1", "--export", str(path), "-c", str(config))
    assert code == 1
    assert one_line(err).endswith("is an export of session pg-1, not of session ssh-1")


@pytest.mark.parametrize(("argv", "reason"), [
    (["export", "nope", "--format", "jsonl"], "no session 'nope' in "),
    (["export", "pg-1", "--format", "asciicast"],
     "session pg-1 is a postgres session: only SSH sessions have terminal output; "
     "use --format jsonl or csv"),
    (["export", "ssh-1", "--format", "jsonl", "--channel", "1"],
     "--channel is for --format asciicast"),
    (["export", "ssh-1", "--format", "asciicast", "--channel", "5"],
     "session ssh-1 has no output on channel 5 (channels with output: 0, 1)"),
    (["export", "ssh-1", "--format", "csv", "-o", "{tmp}/no/such/dir/x.csv"],
     "cannot write {tmp}/no/such/dir/x.csv: No such file or directory"),
    (["verify", "--export", "{tmp}/absent.cast"],
     "cannot read {tmp}/absent.cast: No such file or directory"),
    (["verify", "nope", "--export", "{tmp}/absent.cast"], "no session 'nope' in "),
])
def test_usage_errors_are_one_line_and_status_2(config: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                argv: list[str], reason: str) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = run(capsys, *argv, "-c", str(config))
    assert (code, out) == (2, "")
    assert one_line(err).startswith("gatewatch: " + reason.replace("{tmp}", str(tmp_path)))


def test_a_bad_format_is_refused_by_the_parser(config: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["export", "pg-1", "--format", "mp4", "-c", str(config)])
    assert exit_.value.code == 2
    assert "invalid choice: 'mp4'" in capsys.readouterr().err


def test_a_failed_export_leaves_no_file(config: Path, tmp_path: Path, writer: SqliteStore,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    writer.conn.execute("UPDATE ssh_output SET data = x'00' WHERE seq = 6")
    path = tmp_path / "ssh.cast"
    code, out, err = run(capsys, "export", "ssh-1", "--format", "asciicast", "-o", str(path),
                         "-c", str(config))
    assert (code, out) == (1, "")
    assert one_line(err) == ("gatewatch: export FAILED: output chunk 6 of session ssh-1 differs "
                             "from its audit record: run gatewatch verify")
    assert not path.exists()
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def test_the_console_script_writes_no_progress_to_a_pipe(config: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gatewatch.cli.main", "export", "ssh-1", "--format", "jsonl",
         "-c", str(config)], capture_output=True, cwd=ROOT, timeout=60, check=False)
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout.count(b"\n") == 1 + len(an_ssh_session("ssh-1"))
