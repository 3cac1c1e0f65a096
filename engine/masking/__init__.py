"""Real-time masking: hide sensitive values in what a target sends back, without sockets.

``detectors`` finds values (emails, payment cards, IBANs, SSNs, phone numbers, JWTs, AWS keys,
private key blocks, secret assignments, and custom patterns), validated by their checksums
where one exists. ``strategies`` says what a value becomes: redacted, partly shown, a keyed
hash, or NULL for a whole column. ``masker.ValueMasker`` masks one text value, behind a
pre-screen that lets the common value (which holds nothing) through after a few substring tests
and one regex search; ``screen`` does the same for a whole protocol message. ``stream``
wraps it for byte streams cut into arbitrary chunks (SSH output): it holds back only the tail
in which a value may still be growing, so that a value split between chunks is masked as if
it had arrived whole. ``pg`` masks PostgreSQL results message by message (DataRow by the
RowDescription before it, COPY data, notices and errors). ``rules`` holds the ``masking:`` rules
of the policies file and ``policy`` decides which of them apply to a session.

Nothing here does I/O, and nothing here imports the policies file's loader (``engine.config``)
or a front end: the PostgreSQL and SSH front ends call in.
"""

from engine.masking.detectors import BUILTIN, Detector, Finding, custom
from engine.masking.masker import ValueMasker
from engine.masking.strategies import KINDS, Strategy
from engine.masking.stream import MAX_HOLD, MAX_KEY_BLOCK, StreamMasker

__all__ = ["BUILTIN", "KINDS", "MAX_HOLD", "MAX_KEY_BLOCK", "Detector", "Finding", "Strategy",
           "StreamMasker", "ValueMasker", "custom"]
