"""asciicast v2 of an SSH session: header, events, markers, channels, decoding."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from recordings.export.asciicast import write_asciicast
from recordings.export.events import ExportError, chain_head
from store import SqliteStore
from tests.recordings.export.recorded import (
    a_pg_session,
    an_ssh_session,
    command,
    out,
    record,
    ssh_open,
)
from tests.store.sample import T0


def cast(store: SqliteStore, session_id: str, channel: int | None = None
         ) -> tuple[dict[str, Any], list[list[Any]]]:
    sink = io.BytesIO()
    write_asciicast(store, session_id, chain_head(store), sink, channel=channel)
    header, *events = sink.getvalue().decode().splitlines()
    return json.loads(header), [json.loads(e) for e in events]


def test_header_carries_the_session_and_the_chain_head(writer: SqliteStore,
                                                      reader: SqliteStore) -> None:
    record(writer, an_ssh_session("s1"))
    header, _ = cast(reader, "s1")
    head = chain_head(reader)
    assert header["version"] == 2
    assert (header["width"], header["height"]) == (100, 30)
    assert header["timestamp"] == int(T0)
    assert "alice" in header["title"] and "root@127.0.0.1:2222" in header["title"]
    meta = header["gatewatch"]
    assert meta["format"] == "asciicast" and meta["channel"] == 0
    assert meta["chain"] == {"seq": head.seq, "hash": head.hash}
    assert meta["session"]["id"] == "s1"
    assert meta["session"]["identity"] == "alice"
    assert meta["session"]["connection"] == "box"
    assert meta["session"]["target"] == "root@127.0.0.1:2222"
    assert meta["session"]["started_at"].startswith("2026-")


def test_terminal_output_resizes_and_markers(writer: SqliteStore, reader: SqliteStore) -> None:
    record(writer, an_ssh_session("s1"))
    _, events = cast(reader, "s1")
    output = "".join(e[2] for e in events if e[1] == "o")
    # the euro sign split across two chunks comes out whole; stderr shares the screen
    assert output == ("$ echo price\r\nprice: 5 €\r\n$ \r\n[gatewatch] blocked\r\n$ "
                      "rebooting\r\n")
    assert [e[2] for e in events if e[1] == "r"] == ["100x30", "120x40"]
    markers = [e[2] for e in events if e[1] == "m"]
    assert markers == [
        "command 1: echo price",
        'command 2 blocked by rule "no-rm-root": rm -rf /',
        'command 3 held for approval (rule "review-sudo"): sudo reboot',
        'approval apr-1 requested (rule "review-sudo"): sudo reboot',
        "approval apr-1 approved by bob: maintenance window",
        "command 3 error (exit status 1)",
        "command 4: cat > notes.txt",
        "channel 1 opened (no terminal: its bytes are in the jsonl export)",
        "session killed: killed by bob: incident 42",
    ]
    assert not [e for e in events if e[1] == "i"]  # channel 1's input is not this terminal's


def test_times_are_seconds_from_the_start_and_never_go_back(writer: SqliteStore,
                                                            reader: SqliteStore) -> None:
    record(writer, an_ssh_session("s1"))
    _, events = cast(reader, "s1")
    times = [e[0] for e in events]
    assert times == sorted(times)
    assert events[0] == [0.01, "r", "100x30"]
    assert [e[0] for e in events if e[2] == "command 1: echo price"] == [1.0]
    assert events[-1] == [7.0, "m", "session killed: killed by bob: incident 42"]
    # command 2 was judged at 2.0 s and its end stamped 2.0 s: the marker is not moved earlier
    blocked = next(e for e in events if e[2].startswith("command 2 blocked"))
    assert blocked[0] == 2.0


def test_a_channel_without_a_terminal_on_request(writer: SqliteStore,
                                                 reader: SqliteStore) -> None:
    record(writer, an_ssh_session("s1"))
    header, events = cast(reader, "s1", channel=1)
    assert header["gatewatch"]["channel"] == 1
    assert (header["width"], header["height"]) == (80, 24)
    assert [e[1:] for e in events if e[1] in "oir"] == [
        ["i", "line one\r\nline two\r\n"], ["o", "saved\r\n"]]  # shown as onlcr showed it
    assert "channel 0 opened (a terminal of its own: not in this cast; see the jsonl export)" \
        in [e[2] for e in events if e[1] == "m"]


def test_an_unknown_channel_is_a_usage_error(writer: SqliteStore, reader: SqliteStore) -> None:
    record(writer, an_ssh_session("s1"))
    with pytest.raises(ExportError, match=r"no output on channel 7 \(channels with output: 0, 1\)"):
        cast(reader, "s1", channel=7)


def test_a_second_terminal_is_left_to_the_jsonl_export(writer: SqliteStore,
                                                       reader: SqliteStore) -> None:
    record(writer, [ssh_open("s1"), out("s1", 1, 0.1, b"80x24", channel=0, stream="r"),
                    out("s1", 2, 0.2, b"first$ "),
                    out("s1", 3, 0.3, b"90x20", channel=2, stream="r"),
                    out("s1", 4, 0.4, b"second$ ", channel=2)])
    header, events = cast(reader, "s1")
    assert (header["width"], header["height"]) == (80, 24)
    assert "".join(e[2] for e in events if e[1] == "o") == "first$ "
    assert [e for e in events if e[1] == "m"] == [
        [0.3, "m", "channel 2 opened (a terminal of its own: not in this cast; "
                   "see the jsonl export)"]]


def test_invalid_utf8_and_a_character_cut_off_at_the_end(writer: SqliteStore,
                                                         reader: SqliteStore) -> None:
    record(writer, [ssh_open("s1"), out("s1", 1, 0.1, b"80x24", stream="r"),
                    out("s1", 2, 0.2, b"bad \xff byte, cut "), out("s1", 3, 0.3, "é".encode()[:1])])
    _, events = cast(reader, "s1")
    assert [e[2] for e in events if e[1] == "o"] == ["bad \ufffd byte, cut ", "\ufffd"]


def test_a_session_without_a_terminal_plays_its_output(writer: SqliteStore,
                                                      reader: SqliteStore) -> None:
    """``ssh host uptime``: no channel has a terminal, so the cast follows the first channel
    with output, which is what the user saw (issue 16: the cast held markers only)."""
    record(writer, [ssh_open("s1"), command("s1", 1, "uptime", 0.5),
                    out("s1", 1, 0.6, b"up 3 days\n")])
    header, events = cast(reader, "s1")
    assert header["gatewatch"]["channel"] == 0
    assert (header["width"], header["height"]) == (80, 24)
    assert [e[1:] for e in events if e[1] == "o"] == [["o", "up 3 days\r\n"]]


def test_postgres_sessions_have_no_cast(writer: SqliteStore, reader: SqliteStore) -> None:
    record(writer, a_pg_session("pg"))
    with pytest.raises(ExportError, match="postgres session: only SSH sessions"):
        cast(reader, "pg")
