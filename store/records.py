"""The records the engine writes, one frozen dataclass per kind: what a writer builds.

A writer never assembles a dict of column names: it builds one of these, and the recorder turns
it into the store's ``Op`` (kind, key, fields in the order the audit chain hashes them, and the
bytes of an output chunk). The field names and order of each kind are those of its
``*_FIELDS`` tuple in ``store.ops``, which ``verify`` checks the tables against; a test keeps
the two in step.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar

from store import ops as O


@dataclass(frozen=True, slots=True)
class Record:
    kind: ClassVar[str] = ""
    KEY: ClassVar[tuple[str, str | None]] = ("session_id", None)  # the Op's id and ref
    BLOB: ClassVar[str | None] = None  # the field carried as the Op's bytes, not hashed

    def op(self) -> O.Op:
        id_name, ref_name = self.KEY
        skip = {id_name, ref_name, self.BLOB}
        fields: dict[str, Any] = {f.name: getattr(self, f.name)
                                  for f in dataclasses.fields(self) if f.name not in skip}
        return O.Op(self.kind, getattr(self, id_name),
                    getattr(self, ref_name) if ref_name else 0, fields,
                    getattr(self, self.BLOB) if self.BLOB else None)


@dataclass(frozen=True, slots=True)
class SessionOpen(Record):
    kind: ClassVar[str] = O.SESSION_OPEN
    session_id: str
    protocol: str
    connection: str
    identity: str | None
    identity_kind: str | None
    client_addr: str
    application_name: str | None
    database: str | None
    started_at: str
    status: str
    target: str | None
    identity_vendor: str | None


@dataclass(frozen=True, slots=True)
class SessionClose(Record):
    kind: ClassVar[str] = O.SESSION_CLOSE
    session_id: str
    ended_at: str
    status: str
    end_reason: str
    masked: str | None = None  # JSON: values masked by rule and column


@dataclass(frozen=True, slots=True)
class StatementStart(Record):
    kind: ClassVar[str] = O.STATEMENT_START
    KEY: ClassVar[tuple[str, str | None]] = ("session_id", "seq")
    session_id: str
    seq: int
    protocol: str
    text: str | None
    params: str | None
    started_at: str
    status: str
    verdict: str
    rule: str | None
    approval_id: str | None


@dataclass(frozen=True, slots=True)
class StatementEnd(Record):
    kind: ClassVar[str] = O.STATEMENT_END
    KEY: ClassVar[tuple[str, str | None]] = ("session_id", "seq")
    session_id: str
    seq: int
    finished_at: str
    duration_ms: float
    status: str
    command: str | None
    rows: int | None
    sqlstate: str | None
    error: str | None
    exit_status: int | None
    masked: str | None


@dataclass(frozen=True, slots=True)
class ApprovalOpen(Record):
    kind: ClassVar[str] = O.APPROVAL_REQUEST
    KEY: ClassVar[tuple[str, str | None]] = ("request_id", None)
    request_id: str
    session_id: str
    requester: str
    connection: str
    statement: str
    statement_hash: str
    rule: str | None
    reason: str
    created_at: str
    expires_at: str
    status: str


@dataclass(frozen=True, slots=True)
class ApprovalUpdate(Record):
    kind: ClassVar[str] = O.APPROVAL_UPDATE
    KEY: ClassVar[tuple[str, str | None]] = ("request_id", None)
    request_id: str
    status: str
    approvals: str | None
    decided_at: str | None
    decided_by: str | None
    decision_reason: str | None


@dataclass(frozen=True, slots=True)
class SshOutput(Record):
    """A chunk of an SSH session's bytes: the audit chain carries their size and SHA-256."""

    kind: ClassVar[str] = O.SSH_OUTPUT
    KEY: ClassVar[tuple[str, str | None]] = ("session_id", "ref")
    BLOB: ClassVar[str | None] = "data"
    session_id: str
    ref: int
    t: float
    channel: int
    stream: str
    size: int
    sha256: str
    data: bytes

    @classmethod
    def of(cls, session_id: str, ref: int, t: float, channel: int, stream: str,
           data: bytes) -> SshOutput:
        return cls(session_id, ref, round(t, 6), channel, stream, len(data),
                   hashlib.sha256(data).hexdigest(), data)


@dataclass(frozen=True, slots=True)
class LockoutSet(Record):
    """An operator keeps ``identity`` out of ``connection`` (None: of every connection) until
    ``until``, usually while killing its session ``session_id`` (``engine.lockout``)."""

    kind: ClassVar[str] = O.LOCKOUT_SET
    KEY: ClassVar[tuple[str, str | None]] = ("lockout_id", None)
    lockout_id: str
    identity: str
    connection: str | None
    until: str
    created_at: str
    created_by: str
    reason: str
    session_id: str | None


@dataclass(frozen=True, slots=True)
class LockoutLift(Record):
    kind: ClassVar[str] = O.LOCKOUT_LIFT
    KEY: ClassVar[tuple[str, str | None]] = ("lockout_id", None)
    lockout_id: str
    lifted_at: str
    lifted_by: str
    lift_reason: str | None


@dataclass(frozen=True, slots=True)
class AuditGap(Record):
    """Audit records ``first_seq`` to ``last_seq`` that the audit stream ``sink`` dropped
    (``dropped`` of them: its queue was full), so that the SIEM's copy of the chain has a
    gap the store explains."""

    kind: ClassVar[str] = O.AUDIT_GAP
    KEY: ClassVar[tuple[str, str | None]] = ("sink", None)
    sink: str
    first_seq: int
    last_seq: int
    dropped: int
    at: str
    reason: str


@dataclass(frozen=True, slots=True)
class PolicyReload(Record):
    """The policies file read again (SIGHUP, ``gatewatch reload``): applied, or refused with
    ``error`` and the old policy kept. ``changed``: the sections that changed (JSON list)."""

    kind: ClassVar[str] = O.POLICY_RELOAD
    KEY: ClassVar[tuple[str, str | None]] = ("node", None)
    node: str
    at: str
    by: str
    path: str
    sha256: str | None
    status: str  # applied | refused
    error: str | None
    changed: str | None


KINDS: tuple[type[Record], ...] = (SessionOpen, SessionClose, StatementStart, StatementEnd,
                                   ApprovalOpen, ApprovalUpdate, SshOutput, LockoutSet,
                                   LockoutLift, AuditGap, PolicyReload)
