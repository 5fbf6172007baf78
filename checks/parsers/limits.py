"""Size caps on what the bot reads from a target and parses (issue 13: bounded work for any input).

A 5 MB `geo` block, 200k lines of junk from `pm2 jlist` or a 30 MB log line must cost the bot a bounded
amount of memory and CPU, off the event loop (facts.py runs the parsers in a worker thread), and must
never turn into a false incident: what is too large to model is said as `warn`, with the reason.
"""

from __future__ import annotations

from checks.parsers import ParseError

#: `nginx -T` output beyond this is not modelled (real configs are kilobytes; a big geo/map list is a few MB).
MAX_NGINX_DUMP_BYTES = 16 * 1024 * 1024
#: Statements the nginx model holds at most (includes spliced); nginx.py's splice budget uses the same.
MAX_NGINX_STATEMENTS = 200_000
#: `pm2 jlist` output beyond this is not parsed: a few hundred processes are well under 1 MB.
MAX_JLIST_BYTES = 8 * 1024 * 1024
#: The tail of a log file read per run, in bytes (`tail -c`): a 30 MB line costs no more than this.
LOG_TAIL_BYTES = 128 * 1024


class TooLarge(ParseError):
    """Input beyond what the bot models. Kept as data (which limit, how much) so both languages can say it."""

    def __init__(self, what: str, *, size: int, limit: int, unit: str) -> None:
        self.what = what
        self.size = size
        self.limit = limit
        #: "bytes" or "statements"
        self.unit = unit
        super().__init__(f"{what} too large to model ({size} {unit}, over {limit})")


def statements_estimate(text: str) -> int:
    """An upper bound of nginx statements in `text`, at C speed: every one ends in `;` or opens a `{`.

    Semicolons inside comments or quotes count too, so this over-counts only text that is mostly those.
    """
    return text.count(";") + text.count("{")
