"""PostgreSQL's `log_line_prefix`: which prefixes identify a statement, and a parser for lines written
with one (pure functions).

A line of the ``stderr`` log destination is ``<prefix><LEVEL>:  <message>``. The prefix is whatever
the server's ``log_line_prefix`` expands to, so reading such a log needs that setting. An imported
statement needs a time, a session that is unique over the server's life (``%c``, or ``%p`` with
``%s``: a process id alone is reused), its line number in the session (``%l``) and the database role
(``%u``); other escapes are read when present.

>>> prefix = LinePrefix.compile("%m [%p] %c %l %q%u@%d %a ")
>>> fields = prefix.match("2026-12-04 16:32:38.849 UTC [25539] 6b12eb26.63c3 3 alice@clinic psql LOG:  hi")
>>> fields["c"], fields["l"], fields["u"], fields["d"], fields["a"], fields["level"], fields["message"]
('6b12eb26.63c3', '3', 'alice', 'clinic', 'psql', 'LOG', 'hi')
>>> LinePrefix.compile("%m [%p] ")
Traceback (most recent call last):
...
atlas_compliance.errors.BadRequest: log_line_prefix '%m [%p] ' cannot identify a statement: it lacks a session id (%c, or %p with %s: a process id alone is reused), the session line number (%l), the database role (%u). Set, for example, log_line_prefix = '%m [%p] %c %l %e %q%u@%d %h %a ' on the server (or read its csvlog or jsonlog instead)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import BadRequest

SUGGESTED_PREFIX = "%m [%p] %c %l %e %q%u@%d %h %a "

# The message levels PostgreSQL writes (in English: lc_messages = 'C' or 'en'), primary and secondary.
LEVELS = ("DEBUG1", "DEBUG2", "DEBUG3", "DEBUG4", "DEBUG5", "INFO", "NOTICE", "WARNING", "ERROR", "LOG",
          "FATAL", "PANIC", "DETAIL", "HINT", "QUERY", "CONTEXT", "LOCATION", "STATEMENT")
_LEVEL = "(?P<level>" + "|".join(LEVELS) + "):  (?P<message>.*)"

_TIMESTAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
_PATTERNS = {
    "m": _TIMESTAMP + r"\.\d{3}(?: [^ ]+)?",
    "t": _TIMESTAMP + r"(?: [^ ]+)?",
    "s": _TIMESTAMP + r"(?: [^ ]+)?",
    "n": r"\d+\.\d{3}",
    "p": r"\d+", "P": r"\d*", "l": r"\d+", "x": r"\d*", "Q": r"-?\d*",
    "c": r"[0-9a-f]+\.[0-9a-f]+",
    "e": r"[0-9A-Z]{5}",
    "v": r"[^ ]*",
}
_TEXT = ".*?"  # %a %u %d %r %h %b %i %L: free text, matched lazily up to what follows
_ESCAPE = re.compile(r"%(-?\d+)?([a-zA-Z%])")


@dataclass(frozen=True)
class LinePrefix:
    """A compiled ``log_line_prefix``: :meth:`match` gives the escapes' values of one line."""

    text: str
    escapes: frozenset[str]
    pattern: re.Pattern[str]

    @classmethod
    def compile(cls, text: str) -> LinePrefix:
        """Compile ``text``; refuse (BadRequest) one with which a statement cannot be identified."""
        escapes: set[str] = set()
        before_q: list[str] = []
        after_q: list[str] = []
        parts = before_q
        position = 0
        for found in _ESCAPE.finditer(text):
            parts.append(re.escape(text[position:found.start()]))
            position = found.end()
            padded, letter = found.group(1), found.group(2)
            if letter == "%":
                parts.append("%")
            elif letter == "q":
                parts = after_q
            elif letter in escapes:  # a repeated escape must match the same text again
                parts.append(f"(?P={letter})")
            else:
                escapes.add(letter)
                value = f"(?P<{letter}>{_PATTERNS.get(letter, _TEXT)})"
                parts.append(f" *{value} *" if padded else value)
        parts.append(re.escape(text[position:]))
        body = "".join(before_q) + (f"(?:{''.join(after_q)})?" if after_q else "")
        missing = _missing(escapes)
        if missing:
            raise BadRequest(
                f"log_line_prefix {text!r} cannot identify a statement: it lacks {', '.join(missing)}. "
                f"Set, for example, log_line_prefix = '{SUGGESTED_PREFIX}' on the server "
                "(or read its csvlog or jsonlog instead)", code="unusable_log_line_prefix")
        return cls(text=text, escapes=frozenset(escapes), pattern=re.compile(f"^{body}{_LEVEL}$", re.DOTALL))

    def match(self, line: str) -> dict[str, str] | None:
        """The escapes' values (and ``level``, ``message``) of ``line``, or None if it is not a log line."""
        found = self.pattern.match(line)
        return found.groupdict() if found else None


def _missing(escapes: set[str]) -> list[str]:
    missing = []
    if not escapes & {"m", "t", "n"}:
        missing.append("a timestamp (%m, %n or %t)")
    if "c" not in escapes and not {"p", "s"} <= escapes:
        missing.append("a session id (%c, or %p with %s: a process id alone is reused)")
    if "l" not in escapes:
        missing.append("the session line number (%l)")
    if "u" not in escapes:
        missing.append("the database role (%u)")
    return missing
