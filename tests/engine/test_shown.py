"""``engine.shown``: a statement's text as an approver or operator is shown it (outside attack,
round 18: joined onto one line, a real line after a ``--`` comment read as part of it)."""

from __future__ import annotations

import pytest

from engine import shown

FORGED = ("SELECT setval('orders_id_seq', 2001) -- bump past the import, ticket OPS-88\n"
          ", setval('orders_id_seq', 1)")


def test_a_line_after_a_comment_is_a_line_of_its_own() -> None:
    assert shown.block(FORGED) == (
        "    1│ SELECT setval('orders_id_seq', 2001) -- bump past the import, ticket OPS-88\n"
        "    2│ , setval('orders_id_seq', 1)")


def test_in_one_line_each_line_break_is_marked() -> None:
    assert shown.one_line(FORGED) == (
        "SELECT setval('orders_id_seq', 2001) -- bump past the import, ticket OPS-88 "
        "⏎ , setval('orders_id_seq', 1)")
    # A mark of the text's own is escaped: it cannot end a comment on screen.
    assert shown.one_line("SELECT 1 -- x ⏎ , 2") == "SELECT 1 -- x \\u23ce , 2"
    assert shown.one_line("SELECT 1\n\n") == "SELECT 1"
    assert shown.one_line("x" * 50, 10) == "x" * 10 + "…"


@pytest.mark.parametrize(("text", "expected"), [
    # A lone carriage return ends a comment for PostgreSQL: a line end for the reader too.
    ("SELECT 1 -- x\r, setval('s', 1)", ["SELECT 1 -- x\\x0d", ", setval('s', 1)"]),
    ("SELECT 1\r\n, 2", ["SELECT 1", ", 2"]),
    ("SELECT 1 -- \x1b[2K\x0b\x0c\u2028\u202e\u200b", ["SELECT 1 -- \\x1b[2K\\x0b\\x0c\\u2028"
                                                      "\\u202e\\u200b"]),
    ("SELECT\t1", ["SELECT\t1"]),
])
def test_what_a_display_acts_on_is_escaped(text: str, expected: list[str]) -> None:
    assert shown.lines(text) == expected


def test_a_long_statement_is_cut_with_its_lines_counted() -> None:
    text = "\n".join(f"line {n}" for n in range(1, 13))
    block = shown.block(text, indent="", limit=3)
    assert block.splitlines() == [" 1│ line 1", " 2│ line 2", " 3│ line 3", "  … 9 more lines"]


def test_a_webhook_keeps_the_statement_s_lines() -> None:
    from engine.events import ApprovalRequested
    from engine.notify import Webhook

    hook = Webhook("http://127.0.0.1:9/hook")
    sent: list[dict[str, object]] = []
    hook.send = sent.append  # type: ignore[method-assign]
    hook.approval_event(ApprovalRequested(request={
        "id": "a1", "requester": "alice", "connection": "shop",
        "rule": "review-sequence-resets", "statement": FORGED + "\x1b[2K"}))
    [payload] = sent
    text = str(payload["text"])
    assert "ticket OPS-88\n, setval('orders_id_seq', 1)\\x1b[2K```" in text
