"""Feed-level verdicts: a feed whose rows are all, or nearly all, rejected is not a feed with bad
rows but a file read the wrong way (ids of another network, a decimal comma, a time format) or
the wrong file. The run stops before the analysis, with one line naming the file, the commonest
reason and two examples, instead of ranking cells on the few rows left.

The share is ``ingest.max_reject_share`` (default 0.95: more than 19 rows in 20 rejected). Row
rejects in real exports run at a few percent (empty counters, out-of-range values); a KPI or
tests export of a whole province read against one city's cells file is the legitimate case with
many unknown cells, and even there a share above 95 % means the cells file covers almost none of
the feed, so the work orders would describe a network the user did not give. Set the share to
1.0 to stop only when no row at all is usable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kqi.errors import InputError

#: the check message of a row naming a cell the cells file does not have
UNKNOWN_CELL = "cell_id: not in the cells table"


@dataclass
class Tally:
    """Rejected rows per reason (the first failing check's message) with their first values."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, message: str, n: int, examples: list[str]) -> None:
        self.counts[message] = self.counts.get(message, 0) + n
        have = self.examples.setdefault(message, [])
        for e in examples:
            if len(have) >= 2:
                break
            if e not in have:
                have.append(e)

    def commonest(self) -> tuple[str, int, list[str]] | None:
        if not self.counts:
            return None
        message = max(self.counts, key=lambda m: (self.counts[m], m))
        return message, self.counts[message], self.examples.get(message, [])

    def top(self, k: int = 3) -> list[dict[str, object]]:
        """The ``k`` commonest reasons (for the report)."""
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [{"reason": m, "rows": n, "examples": self.examples.get(m, [])} for m, n in ranked]


def feed_verdict(path: Path, feed: str, rows_read: int, rows_rejected: int, tally: Tally, *,
                 max_share: float, cells_name: str | None = None,
                 cells_example: str | None = None) -> InputError | None:
    """The error that stops the run for this feed, or ``None`` when the feed is usable."""
    if rows_read == 0 or rows_rejected == 0:
        return None
    accepted = rows_read - rows_rejected
    share = rows_rejected / rows_read
    if accepted > 0 and share <= max_share:
        return None
    top = tally.commonest()
    counted = f"{rows_rejected:,} of {rows_read:,} rows"
    if top is None:
        return InputError(path, f"{counted} rejected")
    message, n, examples = top
    eg = f" (e.g. {', '.join(repr(e) for e in examples)})" if examples else ""
    lead = counted if n == rows_rejected else f"{counted} rejected; {n:,}"
    if message == UNKNOWN_CELL:
        where = cells_name or "the cells table"
        text = f"{lead} name a cell not in {where}{eg}"
        if cells_example is not None:
            text += f"; {where} ids look like {cells_example!r}"
    else:
        text = f"{lead} rejected: {message}{eg}{_hint(message, examples, feed)}"
    if accepted > 0:
        text += (f"; more than ingest.max_reject_share = {max_share:.0%} of the rows rejected, "
                 "so the run stops before the analysis")
    return InputError(path, text)


def _hint(message: str, examples: list[str], feed: str) -> str:
    if message.endswith("not a number") and any("," in e for e in examples):
        return f"; a decimal comma? set [ingest.read.{feed}] decimal = ','"
    if message.endswith("not a timestamp"):
        return f"; set the form in [ingest.formats.{feed}] ts (docs/input-formats.md)"
    return ""
