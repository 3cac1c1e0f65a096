"""Names as the target holds them, with changes pending until it confirms them."""

from __future__ import annotations

from engine.pg.names import ALL, Names


def test_confirmed_names_and_a_fast_path() -> None:
    names: Names[str] = Names()
    change = names.change(b"s", "A", 1)
    assert names.lookup(b"s", 1) == ("A", 0)  # the open segment: it decides
    names.confirm(change)
    assert names.pending == [] and names.lookup(b"s", 2) == ("A", 0)


def test_a_change_in_an_earlier_segment_is_not_known_until_answered() -> None:
    names: Names[str] = Names()
    names.confirm(names.change(b"s", "A", 1))
    replace = names.change(b"s", "B", 2)
    assert names.lookup(b"s", 3) == (None, 2)  # A or B: wait for segment 2
    names.drop(replace)  # skipped there
    assert names.lookup(b"s", 3) == ("A", 0)


def test_a_new_name_or_nothing_is_not_ambiguous() -> None:
    names: Names[str] = Names()
    names.change(b"s", "A", 1)
    assert names.lookup(b"s", 2) == ("A", 0)  # A, or no statement at all (then it fails)
    assert names.lookup(b"s", 2, strict=True) == (None, 1)


def test_a_removal_in_an_earlier_segment_leaves_the_old_meaning_or_nothing() -> None:
    names: Names[str] = Names()
    names.confirm(names.change(b"s", "A", 1))
    names.change(b"s", None, 2)
    assert names.lookup(b"s", 3) == ("A", 0)


def test_a_change_in_the_open_segment_decides_whatever_came_before() -> None:
    names: Names[str] = Names()
    names.confirm(names.change(b"s", "A", 1))
    names.change(b"s", None, 2)
    names.change(b"s", "B", 3)
    assert names.lookup(b"s", 3) == ("B", 0)
    assert names.lookup(b"s", 4) == (None, 3)


def test_all_removes_every_name() -> None:
    names: Names[str] = Names()
    names.confirm(names.change(b"a", "A", 1))
    names.confirm(names.change(b"b", "B", 1))
    everything = names.change(ALL, None, 2)
    assert names.lookup(b"a", 2) == (None, 0)
    names.confirm(everything)
    assert names.live == {}


def test_settle_drops_what_a_segment_left_pending() -> None:
    names: Names[str] = Names()
    names.change(b"a", "A", 1)
    later = names.change(b"b", "B", 2)
    names.settle(1)
    assert names.pending == [later]


def test_forget_keeps_changes_sent_after() -> None:
    names: Names[str] = Names()
    names.confirm(names.change(b"p", "P", 1))
    later = names.change(b"q", "Q", 2)
    names.forget()
    assert names.live == {} and names.pending == [later]
