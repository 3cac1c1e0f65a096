"""Portals and cursors an approval made, which run on after the statement that made them.

An approved Bind's portal runs at its Execute, and may be executed again after a row limit
(PortalSuspended); an approved ``DECLARE`` runs its query at each FETCH. Anything that runs
in between can change what the approver was shown (a SET of ``bytea_output``, a function that
calls ``set_config``: outside attack on issue 12, round 16, where an approved setval read as
2001 set 1 after a SET between its Bind and its Execute, or between its DECLARE and a FETCH).
So an approved portal or cursor runs only while nothing else has run since it was approved or
last ran; after that it is spent, and a statement that names it (but to close it) is refused.

Names are kept as the relay shows them, case-folded: a SQL cursor name is folded unless quoted,
and a text naming one in any case counts (errs strict).
"""

from __future__ import annotations

import re
from functools import lru_cache

SPENT = ("an approved statement's portal or cursor runs only while nothing else runs: another "
         "statement ran after it was approved or last fetched, which may have changed what its "
         "approver was shown")
SPENT_HINT = "Run the statement again (it asks for a new approval)."


@lru_cache(maxsize=256)
def _word(name: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w$])" + re.escape(name) + r"(?![\w$])", re.IGNORECASE)


class ApprovedRuns:
    """Each approved portal's or cursor's name, with the count of statements sent to run
    (``PgRelay._ran``) when it was approved or last ran."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self._last)

    def approved(self, name: str, ran: int) -> None:
        self._last[name.casefold()] = ran

    def forget(self, name: str) -> None:
        self._last.pop(name.casefold(), None)

    def spent(self, name: str, ran: int) -> bool:
        """Whether ``name`` is an approved one that something else ran after."""
        last = self._last.get(name.casefold())
        return last is not None and last != ran

    def ran(self, name: str, ran: int) -> None:
        """``name`` ran as the ``ran``-th statement (if it is an approved one)."""
        key = name.casefold()
        if key in self._last:
            self._last[key] = ran

    def named_in(self, text: str) -> list[str]:
        """The approved names ``text`` names (as words, in any case)."""
        return [name for name in self._last if name and _word(name).search(text)]
