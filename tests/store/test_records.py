"""Typed records: each kind's fields are the columns ``verify`` checks, in the chain's order."""

from __future__ import annotations

import dataclasses

import pytest

from store import ops as O
from store import records as R

COLUMNS = {
    R.SessionOpen: O.SESSION_OPEN_FIELDS,
    R.SessionClose: O.SESSION_CLOSE_FIELDS,
    R.StatementStart: O.STATEMENT_START_FIELDS,
    R.StatementEnd: O.STATEMENT_END_FIELDS,
    R.ApprovalOpen: O.APPROVAL_REQUEST_FIELDS,
    R.ApprovalUpdate: O.APPROVAL_UPDATE_FIELDS,
    R.SshOutput: O.SSH_OUTPUT_FIELDS,
    R.LockoutSet: O.LOCKOUT_SET_FIELDS,
    R.LockoutLift: O.LOCKOUT_LIFT_FIELDS,
    R.AuditGap: O.AUDIT_GAP_FIELDS,
    R.PolicyReload: O.POLICY_RELOAD_FIELDS,
}


@pytest.mark.parametrize("kind", R.KINDS, ids=lambda k: k.__name__)
def test_a_record_kind_has_exactly_its_columns(kind: type[R.Record]) -> None:
    key = {kind.KEY[0], kind.KEY[1], kind.BLOB}
    names = tuple(f.name for f in dataclasses.fields(kind) if f.name not in key)
    assert names == COLUMNS[kind]
    assert kind.kind in O.KINDS
    assert dataclasses.fields(kind) and kind.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_an_output_chunk_carries_its_bytes_outside_the_hashed_fields() -> None:
    op = R.SshOutput.of("s1", 3, 1.23456789, 1, "o", b"hello").op()
    assert op == O.output_op("s1", 3, 1.23456789, 1, "o", b"hello")
    assert op.blob == b"hello" and "data" not in op.fields


def test_a_statement_start_is_keyed_by_session_and_number() -> None:
    op = R.StatementStart("s1", 7, protocol="simple", text="select 1", params=None,
                          started_at="t", status="running", verdict="allow", rule=None,
                          approval_id=None).op()
    assert (op.kind, op.session_id, op.ref) == (O.STATEMENT_START, "s1", 7)
    assert "seq" not in op.fields and "session_id" not in op.fields


def test_an_approval_is_keyed_by_its_request() -> None:
    op = R.ApprovalUpdate("a1", status="expired", approvals=None, decided_at="t",
                          decided_by=None, decision_reason="engine restarted").op()
    assert (op.kind, op.session_id, op.ref) == (O.APPROVAL_UPDATE, "a1", 0)
