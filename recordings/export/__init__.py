"""Evidence export: a recorded session as files that standard tools read and auditors can check.

Three formats, all written from the **audit chain**, not from the tables: the tables hold a
session's state now (a statement's end, a session's close are updates), while the chain holds
every change in order with its number. An export is cut at a chain head — the newest audit
record when it was made — and carries that head (seq and hash) in its first line. So an export
is a pure function of the store's records up to that head, and ``check`` can recompute it later,
byte for byte, even when the session went on after the export.

- ``events``: one session's audit records in order, with each SSH chunk's bytes joined from
  ``ssh_output`` in pages (and checked against the digest the chain holds);
- ``asciicast``: asciicast v2 of one SSH channel (the first terminal by default) with markers
  at each command, block, approval and kill — what ``asciinema play``/``cat`` read;
- ``jsonl``: every record, one JSON object a line, each verifiable on its own against its hash;
- ``csvfile``: the statements (or SSH commands) as CSV, one row each;
- ``formats``: the one entry point (``export``) that picks the writer, used by the CLI and by
  ``check`` alike;
- ``check``: is a file what exporting its session at its chain head gives?
- ``progress``: a plain-text progress line on stderr when stderr is a terminal.

Writers take a binary sink (anything with ``write(bytes)``): a file, stdout's buffer, or the
comparer ``check`` uses, so that checking streams as exporting does and never holds a whole
session in memory.
"""

from recordings.export.events import ChainHead, ExportError, Metadata, chain_head
from recordings.export.formats import FORMATS, export

__all__ = ["FORMATS", "ChainHead", "ExportError", "Metadata", "chain_head", "export"]
