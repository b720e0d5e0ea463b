"""The query language's errors: one root, QueryError, whose message says what is wrong and,
when the spot is known, where (line, column, and the query with the spot underlined).

QueryError derives from PgsearchError, the root of every error pgsearch raises for a mistake the
user can fix. That root lives here because the translator depends on nothing else of ours;
pgsearch.errors re-exports it (pgsearch.PgsearchError is this class), so one
`except pgsearch.PgsearchError` catches a bad query as well as a bad setting."""

from __future__ import annotations

Span = tuple[int, int]  # [start, end) character offsets into the query text


class PgsearchError(Exception):
    """Root of every error that is the user's to fix: bad input, configuration, environment.

    Exported as pgsearch.PgsearchError (and pgsearch.errors.PgsearchError)."""


class QueryError(PgsearchError):
    """Root of every error the translator raises for a query the user can fix.

    `span` is the offending part of `query` as [start, end) offsets; `line` and `column` are
    1-based and point at its start. str(error) is the message followed, when the spot is known,
    by the query's line and a caret underline.
    """

    def __init__(self, message: str, query: str | None = None, span: Span | None = None) -> None:
        self.message = message
        self.query = query
        self.span = span
        self.line: int | None = None
        self.column: int | None = None
        if query is not None and span is not None:
            start = max(0, min(span[0], len(query)))
            self.line = query.count("\n", 0, start) + 1
            self.column = start - (query.rfind("\n", 0, start) + 1) + 1
        super().__init__(self.render())

    def render(self) -> str:
        if self.query is None or self.span is None or self.line is None or self.column is None:
            return self.message
        start = max(0, min(self.span[0], len(self.query)))
        line_start = self.query.rfind("\n", 0, start) + 1
        line_end = self.query.find("\n", line_start)
        if line_end == -1:
            line_end = len(self.query)
        text = self.query[line_start:line_end]
        column0 = start - line_start
        width = max(1, min(self.span[1], line_end) - start)
        # Long lines are cut to a window around the spot so the caret stays on screen.
        window = 0
        if len(text) > 100:
            window = max(0, column0 - 40)
            text = (
                ("..." if window else "")
                + text[window : window + 80]
                + ("..." if window + 80 < len(text) else "")
            )
        pad = " " * (column0 - window + (3 if window else 0))
        caret = "^" * max(1, min(width, len(text) - len(pad)))
        printable = "".join(ch if ch.isprintable() or ch == "\t" else "?" for ch in text)
        return f"{self.message} (line {self.line}, column {self.column})\n  {printable}\n  {pad}{caret}"


class QuerySyntaxError(QueryError):
    """The text is not a query: a stray character, an unclosed string or parenthesis, SQL syntax."""


class UnknownNameError(QueryError):
    """A field, label, metadata key or function the dataset does not have."""


class QueryTypeError(QueryError):
    """Operands of the wrong kind: `filename > 3`, `"a" + 1`, `groups > 2`."""


class QueryLimitError(QueryError):
    """The query is empty, too long, nested too deeply, or holds an out-of-range number."""
