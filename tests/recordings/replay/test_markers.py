"""Markers: commands, blocks, approvals, masking and the end, with next/previous for n/p."""

from __future__ import annotations

from pathlib import Path

import pytest

from recordings.replay import COMMAND_KINDS, Marker, Markers, TerminalTimeline
from tests.recordings.replay.build import Recording, new_store


@pytest.fixture
def timeline(tmp_path: Path) -> TerminalTimeline:
    rec = Recording(new_store(tmp_path))
    rec.size(0.0, 80, 24)
    rec.out(0.1, b"$ ")
    rec.command(2.0, "ls -l")
    rec.command(5.0, "rm -rf /", "block", rule="no-rm", status="blocked")
    rec.command(8.0, "systemctl restart db", "review", rule="prod-change", status="ok")
    rec.approval("req1", 8.1, 30.0, "approved", "systemctl restart db")
    rec.command(40.0, "sudo -i", "review", rule="sudo", status="denied")
    rec.approval("req2", 40.1, 55.0, "denied", "sudo -i", reason="not now")
    rec.command(60.0, "cat users.csv", masked={"pii:email": 3, "pii:card": 1})
    rec.close(90.0, "killed by oncall: suspicious")
    return TerminalTimeline(rec.store, "s1")


def test_every_kind_is_marked_at_its_time(timeline: TerminalTimeline) -> None:
    got = [(m.t, m.kind) for m in timeline.markers]
    assert got == [
        (pytest.approx(2.0), "command"), (pytest.approx(5.0), "block"),
        (pytest.approx(8.0), "review"), (pytest.approx(30.0), "approved"),
        (pytest.approx(40.0), "review"), (pytest.approx(55.0), "denied"),
        (pytest.approx(60.0), "command"), (pytest.approx(60.0), "masked"),
        (pytest.approx(90.0), "kill"),
    ]


def test_labels_say_what_happened(timeline: TerminalTimeline) -> None:
    labels = {m.kind: m.label for m in timeline.markers}
    assert labels["block"] == "rm -rf / (rule no-rm)"
    assert labels["approved"].startswith("approved by bob — systemctl restart db")
    assert labels["denied"] == "denied by bob: not now — sudo -i"
    assert labels["masked"] == "4 value(s) masked: pii:card, pii:email"
    assert labels["kill"] == "killed by oncall: suspicious"
    # the commands: statements' markers; an SSH command's decision is a marker of its own
    assert [m.seq for m in timeline.markers if m.kind in COMMAND_KINDS
            and m.seq is not None] == [1, 2, 3, 4, 5]
    assert [m.kind for m in timeline.markers if m.seq is None] == ["approved", "denied", "kill"]


def test_next_and_previous_move_through_commands(timeline: TerminalTimeline) -> None:
    m = timeline.next_marker(0.0)
    assert m is not None and m.label == "ls -l"
    hops = []
    while m is not None:
        hops.append(m.t)
        m = timeline.next_marker(m.t)
    assert hops == pytest.approx([2.0, 5.0, 8.0, 40.0, 60.0])
    back = timeline.previous_marker(60.0)
    assert back is not None and back.t == pytest.approx(40.0)
    assert timeline.previous_marker(2.0) is None
    assert timeline.previous_marker(2.5) == timeline.next_marker(0.0)
    end = timeline.next_marker(60.0, kinds={"kill", "end"})
    assert end is not None and end.kind == "kill"


def test_a_session_that_ended_by_itself_ends_with_end(tmp_path: Path) -> None:
    rec = Recording(new_store(tmp_path))
    rec.out(1.0, b"bye")
    rec.close(3.0, "client quit")
    markers = TerminalTimeline(rec.store, "s1").markers
    assert [(m.kind, m.label) for m in markers] == [("end", "client quit")]


def test_markers_between_for_a_timeline_bar() -> None:
    markers = Markers([Marker(1.0, "command", "a"), Marker(2.0, "block", "b"),
                       Marker(2.0, "masked", "c"), Marker(9.0, "end", "d")])
    assert [m.label for m in markers.between(1.5, 9.0)] == ["b", "c"]
    assert len(markers) == 4 and markers[0].label == "a"
    assert markers.next(9.0) is None


def test_an_ssh_command_its_client_withdrew_is_withdrawn_not_denied(tmp_path: Path) -> None:
    rec = Recording(new_store(tmp_path))
    rec.command(2.0, "systemctl restart db", "review", rule="prod-change", status="denied",
                error="approval request req1 withdrawn: the client went away")
    rec.approval("req1", 2.1, 7.0, "withdrawn", "systemctl restart db", by="",
                 reason="the client went away")
    rec.close(9.0)
    got = [(m.t, m.kind, m.label) for m in TerminalTimeline(rec.store, "s1").markers]
    assert got == [
        (pytest.approx(2.0), "review", "systemctl restart db (rule prod-change)"),
        (pytest.approx(7.0), "withdrawn",
         "withdrawn: the client went away — systemctl restart db"),
        (pytest.approx(9.0), "end", "client quit"),
    ]
