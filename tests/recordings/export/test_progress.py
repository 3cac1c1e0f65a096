"""The progress line: drawn on a terminal only, redrawn per whole percent, wiped at the end."""

from __future__ import annotations

import io

from recordings.export.events import chain_head
from recordings.export.formats import export, progress_for
from recordings.export.progress import Progress
from store import SqliteStore
from tests.recordings.export.recorded import a_pg_session, an_ssh_session, record


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_nothing_is_written_when_stderr_is_not_a_terminal() -> None:
    stream = io.StringIO()
    with Progress("exporting", 100, stream=stream) as progress:
        progress.advance(50)
        progress.advance(50)
    assert stream.getvalue() == ""
    assert progress.done == 100


def test_redrawn_once_per_percent_and_wiped() -> None:
    stream = Terminal()
    with Progress("exporting s1", 3 << 20, stream=stream) as progress:
        for _ in range(3 * 1024):
            progress.advance(1024)  # 3072 small steps, 100 distinct percentages
        text = stream.getvalue()
        assert text.count("\r") == 101  # 0 % to 100 %, not 3072 redraws
        assert text.split("\r")[-1].rstrip() == (
            "exporting s1 [##############################] 100%  3.0 MB of 3.0 MB")
    assert stream.getvalue().endswith("\r" + " " * len(text.split("\r")[-1]) + "\r")


def test_statements_for_postgres_bytes_for_ssh(writer: SqliteStore, reader: SqliteStore) -> None:
    ssh = an_ssh_session("s1")
    record(writer, [*ssh, *a_pg_session("pg", statements=4)])
    output = sum(len(op.blob) for op in ssh if op.blob is not None)
    for sid, fmt, unit, total in (("s1", "asciicast", "bytes", output),
                                  ("pg", "csv", "statements", 4)):
        session = reader.find_session(sid)
        assert session is not None
        progress = progress_for(reader, session, f"exporting {sid}")
        assert (progress.unit, progress.total) == (unit, total)
        progress = Progress(progress.label, progress.total, unit=unit, stream=Terminal())
        export(reader, session, fmt, io.BytesIO(), chain_head(reader), progress=progress)
        assert progress.done == total
