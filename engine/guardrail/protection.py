"""What turns protection off, and what installs writes that run later, beyond their names.

Two classes of statement do harm without a DELETE or UPDATE in their text:

- **Protection off** (kind ``DISABLE PROTECTION``): anything that stops a trigger, rule, row
  security policy, constraint check or event trigger from acting in normal sessions —
  ``ALTER TABLE … DISABLE TRIGGER`` but also ``ENABLE REPLICA TRIGGER`` (it then fires only
  in replica sessions), ``DISABLE RULE``, ``ENABLE REPLICA RULE``, ``DISABLE`` / ``NO FORCE
  ROW LEVEL SECURITY``, ``REPLICA IDENTITY`` (what logical decoding, and any audit built on
  it, keeps of changed rows), dropping a constraint or NOT NULL, ``ALTER CONSTRAINT …
  DEFERRABLE`` or ``NOT ENFORCED``, a view's ``check_option`` / ``security_barrier`` /
  ``security_invoker`` taken away, a permissive or altered row security policy, ``ALTER
  EVENT TRIGGER … DISABLE``, dropping a trigger, rule or policy, replacing one (``CREATE OR
  REPLACE`` of a trigger, a rule, a trigger function or a view: what the old one held back
  may no longer be; any ``ALTER FUNCTION`` action: ``SET`` makes the same code read other
  names, ``STRICT`` makes a check return NULL),
  and setting
  ``session_replication_role`` (replica sessions fire no ordinary trigger, foreign keys'
  included). Every ALTER TABLE subcommand is decided here, one way or the other; one this
  module does not know (a later PostgreSQL's) counts as turning protection off.
- **Writes that run later**: a foreign key with ``ON DELETE`` / ``ON UPDATE`` ``CASCADE``,
  ``SET NULL`` or ``SET DEFAULT`` is a built-in trigger that deletes or updates the table's
  rows whenever the referenced table's rows go or change, uncounted (kind ``ADD CASCADING
  FOREIGN KEY``, with a part that deletes or updates the table, judged like a function body).
"""

from __future__ import annotations

from typing import Any

from engine.guardrail.literals import name, option_truth

OFF = "DISABLE PROTECTION"
CASCADING_FK = "ADD CASCADING FOREIGN KEY"

# ALTER TABLE subcommands that turn protection off → the kinds they carry besides their own
# words (so that a rule naming DISABLE TRIGGER also meets what disables one by another name).
_OFF_SUBCOMMANDS: dict[str, tuple[str, ...]] = {
    "AT_DisableTrig": (), "AT_DisableTrigAll": (), "AT_DisableTrigUser": (),
    "AT_EnableReplicaTrig": ("ALTER TABLE DISABLE TRIGGER",),
    "AT_DisableRule": (), "AT_EnableReplicaRule": ("ALTER TABLE DISABLE RULE",),
    "AT_DisableRowSecurity": (), "AT_NoForceRowSecurity": (),
    "AT_ReplicaIdentity": (), "AT_DropConstraint": (), "AT_DropNotNull": (),
    "AT_DropExpression": (), "AT_SetUnLogged": (),
}
# Subcommands decided not to turn protection off (they add it, or act on storage, names,
# defaults, identity, statistics or ownership), or decided per command below (options,
# ALTER CONSTRAINT). A subcommand in neither set is unknown: it counts as turning it off.
_OTHER_SUBCOMMANDS = frozenset({
    "AT_AddColumn", "AT_AddColumnToView", "AT_ColumnDefault", "AT_CookedColumnDefault",
    "AT_SetNotNull", "AT_SetExpression", "AT_SetStatistics", "AT_SetOptions",
    "AT_ResetOptions", "AT_SetStorage", "AT_SetCompression", "AT_DropColumn", "AT_AddIndex",
    "AT_ReAddIndex", "AT_AddConstraint", "AT_ReAddConstraint", "AT_ReAddDomainConstraint",
    "AT_AlterConstraint", "AT_ValidateConstraint", "AT_AddIndexConstraint", "AT_ReAddComment",
    "AT_AlterColumnType", "AT_AlterColumnGenericOptions", "AT_ChangeOwner", "AT_ClusterOn",
    "AT_DropCluster", "AT_SetLogged", "AT_DropOids", "AT_SetAccessMethod", "AT_SetTableSpace",
    "AT_SetRelOptions", "AT_ResetRelOptions", "AT_ReplaceRelOptions", "AT_EnableTrig",
    "AT_EnableAlwaysTrig", "AT_EnableTrigAll", "AT_EnableTrigUser", "AT_EnableRule",
    "AT_EnableAlwaysRule", "AT_AddInherit", "AT_DropInherit", "AT_AddOf", "AT_DropOf",
    "AT_EnableRowSecurity", "AT_ForceRowSecurity", "AT_GenericOptions", "AT_AttachPartition",
    "AT_DetachPartition", "AT_DetachPartitionFinalize", "AT_AddIdentity", "AT_SetIdentity",
    "AT_DropIdentity", "AT_ReAddStatistics",
})
# Subcommands that let a disabled trigger or rule run again: its code may never have been
# judged (created before the gateway, or behind it), so it is opaque.
ENABLES_CODE = frozenset({"AT_EnableTrig", "AT_EnableAlwaysTrig", "AT_EnableTrigAll",
                          "AT_EnableTrigUser", "AT_EnableRule", "AT_EnableAlwaysRule"})
# Subcommands that rewrite every row's value of a column: an UPDATE the text does not spell.
REWRITES_ROWS = frozenset({"AT_AlterColumnType", "AT_SetExpression"})
# A view's options whose removal (or a weaker value) lets through what it held back.
_VIEW_GUARDS = frozenset({"check_option", "security_barrier", "security_invoker"})
# Foreign key actions (pg_constraint.confdeltype): CASCADE, SET NULL, SET DEFAULT write.
_FK_ACTIONS = {"c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


def known_subcommands() -> frozenset[str]:
    """Every ALTER TABLE subcommand this module has decided on (for the tests)."""
    return frozenset(_OFF_SUBCOMMANDS) | _OTHER_SUBCOMMANDS


def alter_table_off(cmd: dict[str, Any]) -> tuple[str, ...] | None:
    """The kinds an ALTER TABLE subcommand adds when it turns protection off, or None."""
    subtype = str(cmd.get("subtype", ""))
    extra = _OFF_SUBCOMMANDS.get(subtype)
    if extra is not None:
        return (OFF, *extra)
    if subtype not in _OTHER_SUBCOMMANDS:
        return (OFF,)  # a subcommand the gateway does not know: fail closed
    if subtype == "AT_AlterConstraint" and _weakens_constraint(cmd.get("def")):
        return (OFF,)
    if subtype in ("AT_SetRelOptions", "AT_ResetRelOptions", "AT_ReplaceRelOptions") and (
            _weakens_view(cmd.get("def"), reset=subtype == "AT_ResetRelOptions")):
        return (OFF,)
    return None


def _weakens_constraint(definition: Any) -> bool:
    """ALTER CONSTRAINT … DEFERRABLE / INITIALLY DEFERRED (the check no longer runs with the
    statement), NOT ENFORCED, NO INHERIT."""
    if not isinstance(definition, dict):
        return True
    node = definition.get("ATAlterConstraint") or definition.get("Constraint")
    if not isinstance(node, dict):
        return True
    if "ATAlterConstraint" in definition:
        return bool(
            (node.get("alterDeferrability") and (node.get("deferrable")
                                                 or node.get("initdeferred")))
            or (node.get("alterEnforceability") and not node.get("is_enforced"))
            or (node.get("alterInheritability") and node.get("noinherit")))
    return bool(node.get("deferrable") or node.get("initdeferred"))


def _weakens_view(definition: Any, reset: bool) -> bool:
    """A view's guard option reset, or set to a weaker value (check_option = local,
    security_barrier or security_invoker false, or a value the gateway cannot read)."""
    items = definition.get("List", {}).get("items", []) if isinstance(definition, dict) else []
    for item in items:
        elem = item.get("DefElem", {}) if isinstance(item, dict) else {}
        option = str(elem.get("defname", "")).lower()
        if option not in _VIEW_GUARDS:
            continue
        if reset:
            return True
        if option == "check_option":
            if _word(elem.get("arg")) != "cascaded":
                return True
        elif option_truth(elem.get("arg")) is not True:
            return True
    return False


def _word(arg: Any) -> str | None:
    """An option's value written as a word or a string (``cascaded``, ``'local'``)."""
    if not isinstance(arg, dict):
        return None
    if "String" in arg:
        return str(arg["String"].get("sval", "")).lower()
    if "TypeName" in arg:
        names = name(arg["TypeName"].get("names", []))
        return names[-1].lower() if len(names) == 1 else None
    return None


def statement_off(node_type: str, node: dict[str, Any]) -> bool:
    """Statements other than ALTER TABLE that turn protection off."""
    if node_type == "AlterEventTrigStmt":
        return node.get("tgenabled") in ("D", "R")  # DISABLE, ENABLE REPLICA
    if node_type == "RuleStmt":
        # DO INSTEAD: the write it replaces no longer happens; OR REPLACE: the rule it
        # replaces (which may have held writes back) no longer acts.
        return bool(node.get("instead")) or bool(node.get("replace"))
    if node_type == "CreateTrigStmt":
        return bool(node.get("replace"))  # the trigger it replaces no longer acts
    if node_type == "CreateFunctionStmt":
        return bool(node.get("replace")) and _returns_trigger(node)
    if node_type == "ViewStmt":
        # A view replaced loses its options (check_option, security_barrier) unless given
        # again, and its WHERE (what a check option enforced) may be another.
        return bool(node.get("replace"))
    if node_type == "AlterFunctionStmt":
        # Every action changes what existing code does, so every one is reviewed (fail
        # closed): SET or RESET (search_path: a trigger function's audit table becomes the
        # session's temporary one), SECURITY (other privileges), STRICT (a CHECK function
        # returns NULL, which passes, for NULL input), volatility, LEAKPROOF, PARALLEL,
        # COST, ROWS, SUPPORT, and any a later PostgreSQL adds.
        return True
    if node_type in ("AlterOwnerStmt", "AlterObjectDependsStmt"):
        # ALTER FUNCTION … OWNER TO (a SECURITY DEFINER function runs with the new owner's
        # privileges) or … DEPENDS ON EXTENSION (dropped with it): as any ALTER FUNCTION.
        return node.get("objectType") in _ROUTINES
    if node_type == "CreatePolicyStmt":
        return bool(node.get("permissive"))  # widens what row security lets through
    if node_type == "AlterPolicyStmt":
        return True  # its roles or conditions change: the gateway cannot say which way
    if node_type == "AlterDomainStmt":
        return node.get("subtype") in ("N", "X")  # DROP NOT NULL, DROP CONSTRAINT
    if node_type == "DropStmt":
        return node.get("removeType") in ("OBJECT_TRIGGER", "OBJECT_RULE", "OBJECT_POLICY",
                                          "OBJECT_EVENT_TRIGGER")
    return False


# Renames that leave a name other code binds to, besides a table's (ALTER TABLE RENAME has
# kinds of its own), a column's or a constraint's: the next CREATE of the old name — an
# innocent-looking new function, type or trigger — stands in for it wherever code calls it
# (``is_frozen`` renamed away and created again returning false), and a trigger or rule
# renamed fires in another order among its table's.
_RENAMES_KEPT = frozenset({"OBJECT_COLUMN", "OBJECT_ATTRIBUTE", "OBJECT_TABCONSTRAINT",
                           "OBJECT_DOMCONSTRAINT", "OBJECT_TABLE", "OBJECT_VIEW",
                           "OBJECT_MATVIEW", "OBJECT_FOREIGN_TABLE", "OBJECT_INDEX",
                           "OBJECT_SEQUENCE", "OBJECT_ROLE", "OBJECT_DATABASE"})
# Object types of a function (ALTER FUNCTION / PROCEDURE / ROUTINE / AGGREGATE).
_ROUTINES = frozenset({"OBJECT_FUNCTION", "OBJECT_PROCEDURE", "OBJECT_ROUTINE",
                       "OBJECT_AGGREGATE"})
# Trigger timing bits of CreateTrigStmt (PostgreSQL's TRIGGER_TYPE_BEFORE, _INSTEAD).
_BEFORE, _INSTEAD = 1 << 1, 1 << 6


def rename_off(node: dict[str, Any]) -> bool:
    """Whether a RENAME rebinds a name that code calls (see ``_RENAMES_KEPT``)."""
    return str(node.get("renameType", "")) not in _RENAMES_KEPT


def trigger_vetoes(node: dict[str, Any]) -> bool:
    """Whether a CREATE TRIGGER makes a row trigger that fires BEFORE or INSTEAD OF the
    write: it may change or drop each row (``RETURN NULL``, ``NEW.amount := 0``), ahead of
    the table's own triggers that fire after it by name — on a table that is not the
    session's own, what those enforced may no longer hold."""
    timing = int(node.get("timing") or 0)
    return bool(node.get("row")) and bool(timing & (_BEFORE | _INSTEAD))


def _returns_trigger(node: dict[str, Any]) -> bool:
    """Whether a CREATE FUNCTION makes a trigger or event trigger function (the triggers
    that call one by name act by its new body)."""
    returns = node.get("returnType", {})
    returns = returns.get("TypeName", returns) if isinstance(returns, dict) else {}
    words = [n.lower() for n in name(returns.get("names", []))] if returns else []
    return bool(words) and words[-1] in ("trigger", "event_trigger")


def settings_off(settings: dict[str, str | None]) -> bool:
    """``session_replication_role`` set to anything but origin (replica sessions fire no
    ordinary trigger, nor foreign keys' checks and actions), or a setting the gateway
    cannot name (set_config with a name that is not a constant)."""
    if "*" in settings:
        return True
    if "session_replication_role" not in settings:
        return False
    value = settings["session_replication_role"]
    return (value or "").strip().lower() != "origin"


def fk_writes(constraint: dict[str, Any]) -> list[tuple[str, str]]:
    """For a foreign key constraint, the writes its actions make later: (kind, what), as
    ``("DELETE", "ON DELETE CASCADE")`` or ``("UPDATE", "ON UPDATE SET NULL")``."""
    if constraint.get("contype") != "CONSTR_FOREIGN":
        return []
    out: list[tuple[str, str]] = []
    delete = _FK_ACTIONS.get(str(constraint.get("fk_del_action", "")))
    if delete is not None:
        out.append(("DELETE" if delete == "CASCADE" else "UPDATE", f"ON DELETE {delete}"))
    update = _FK_ACTIONS.get(str(constraint.get("fk_upd_action", "")))
    if update is not None:
        out.append(("UPDATE", f"ON UPDATE {update}"))
    return out
