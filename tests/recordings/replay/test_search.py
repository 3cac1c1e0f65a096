"""Searching the output: forwards and backwards, through escapes and across chunks."""

from __future__ import annotations

from pathlib import Path

import pytest

from recordings.replay import TerminalTimeline
from recordings.replay.search import overlap, plain
from tests.recordings.replay.build import Recording, new_store


@pytest.fixture
def timeline(tmp_path: Path) -> TerminalTimeline:
    rec = Recording(new_store(tmp_path))
    rec.size(0.0, 80, 24)
    rec.out(1.0, b"$ ls\r\nREADME.md  src\r\n")
    rec.out(2.0, b"$ \x1b[1;31mER\x1b[0mROR in \x1b]0;title\x07build\r\n")  # escapes in a word
    for k, char in enumerate(b"tail -f /var/log/syslog"):  # typed: one echo per chunk
        rec.out(3.0 + k * 0.1, bytes([char]))
    rec.out(10.0, b"\r\nerror: disk full\r\n")
    rec.out(12.0, b"SFTP error", channel=5)  # not a terminal channel: not searched
    rec.out(20.0, b"last Error line\r\n")
    rec.close(30.0)
    return TerminalTimeline(rec.store, "s1")


def test_forward_search_goes_from_match_to_match(timeline: TerminalTimeline) -> None:
    hits = []
    t = timeline.find("error", 0.0)
    while t is not None:
        hits.append(t)
        t = timeline.find("error", t)
    assert hits == pytest.approx([2.0, 10.0, 20.0])


def test_backward_search_goes_the_other_way(timeline: TerminalTimeline) -> None:
    assert timeline.find("ERROR", 30.0, backwards=True) == pytest.approx(20.0)
    assert timeline.find("ERROR", 20.0, backwards=True) == pytest.approx(10.0)
    assert timeline.find("ERROR", 10.0, backwards=True) == pytest.approx(2.0)
    assert timeline.find("ERROR", 2.0, backwards=True) is None


def test_text_typed_a_character_at_a_time_is_found_where_it_completes(
        timeline: TerminalTimeline) -> None:
    t = timeline.find("/var/log/syslog", 0.0)
    assert t == pytest.approx(3.0 + 22 * 0.1)
    assert "tail -f /var/log/syslog" in "\n".join(timeline.seek(t).display)
    assert timeline.find("/var/log/syslog", 30.0, backwards=True) == pytest.approx(t)


def test_misses_and_blank_searches(timeline: TerminalTimeline) -> None:
    assert timeline.find("not there", 0.0) is None
    assert timeline.find("  ", 0.0) is None
    assert timeline.find("readme", 1.0) is None  # strictly after from_t
    assert timeline.find("readme", 0.5) == pytest.approx(1.0)


def test_search_pages_through_long_output(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import recordings.replay.chunks as chunks
    import recordings.replay.search as search
    monkeypatch.setattr(chunks, "PAGE_BYTES", 100)
    monkeypatch.setattr(search, "PAGE_BYTES", 100)
    rec = Recording(new_store(tmp_path))
    for k in range(200):
        rec.out(float(k), f"line {k} of many\r\n".encode())
    rec.close(300.0)
    timeline = TerminalTimeline(rec.store, "s1")
    assert timeline.find("line 150 ", 0.0) == 150.0
    assert timeline.find("LINE 7 ", 199.0, backwards=True) == 7.0


def test_what_the_searcher_sees() -> None:
    seen = plain(b"\x1b[31mRe\x1b[0md\x1b]52;c;aGk=\x07 \x1bP1$r\x1b\\X\x1b(B\ty\r\n")
    assert seen == "red x\ty\n"
    assert overlap("abc") > 3 * 16
