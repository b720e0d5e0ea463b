"""Two sqlglot dialects: the query language's (how user text is tokenized and parsed) and the
PostgreSQL we generate (stock Postgres plus pgvector's and jsonb's operators).

Built once at import; compile_query reuses them, so no per-query dialect setup is paid."""

from __future__ import annotations

from typing import Any, ClassVar

from sqlglot import exp
from sqlglot import parser as sqlglot_parser
from sqlglot import tokens as sqlglot_tokens
from sqlglot.dialects.dialect import Dialect
from sqlglot.dialects.postgres import Postgres
from sqlglot.generators.postgres import PostgresGenerator
from sqlglot.tokenizer_core import Token, TokenType

# Words the language reserves; every other word is a name (field, label, function), so labels
# such as `date`, `select` or `order` need no quoting.
_KEYWORDS = ("AND", "OR", "NOT", "IN", "TRUE", "FALSE", "==", "!=", "<>", "<=", ">=")


class QueryDialect(Dialect):
    """ "double" and 'single' quotes are strings, `backquotes` quote names; no comments.

    A backslash escapes a quote or a backslash; any other backslash is itself, so a Windows path
    such as "C:\\new\\table" is what it looks like (no C escapes: \\n, \\t, \\a stay two characters)."""

    class Tokenizer(sqlglot_tokens.Tokenizer):
        QUOTES: ClassVar[list[tuple[str, str] | str]] = ['"', "'"]
        IDENTIFIERS: ClassVar[list[str | tuple[str, str]]] = ["`"]
        STRING_ESCAPES: ClassVar[list[str]] = ["\\"]
        IDENTIFIER_ESCAPES: ClassVar[list[str]] = ["`"]
        COMMENTS: ClassVar[list[str | tuple[str, str]]] = []
        KEYWORDS: ClassVar[dict[str, TokenType]] = {
            k: v for k, v in sqlglot_tokens.Tokenizer.KEYWORDS.items() if k in _KEYWORDS
        }

    class Parser(sqlglot_parser.Parser):
        # Every call parses as exp.Anonymous; the allow-list decides which names exist.
        FUNCTIONS: ClassVar[dict[str, Any]] = {}
        FUNCTION_PARSERS: ClassVar[dict[str, Any]] = {}
        NO_PAREN_FUNCTIONS: ClassVar[dict[Any, Any]] = {}

        def _parse_bracket(self, this: exp.Expr | None = None) -> exp.Expr | None:
            # sqlglot records no position for `[...]` / `{...}`: the brackets' own, so that errors
            # about inside()'s polygon and its vertices underline them whole (`[]` too).
            opening: Token | None = self._curr
            parsed = super()._parse_bracket(this)
            closing: Token | None = self._prev
            if (
                parsed is not None
                and parsed is not this
                and opening is not None
                and closing is not None
                and opening.token_type in self.BRACKETS
            ):
                parsed.meta["start"], parsed.meta["end"] = opening.start, closing.end
            return parsed


# Set after the class: sqlglot's dialect metaclass merges its C escapes (\n, \t, \a, ...) into
# every dialect whose strings take backslash escapes. Only \\ (and \" / \', the tokenizer's own
# rule) stay escapes.
QueryDialect.UNESCAPED_SEQUENCES = {"\\\\": "\\"}
QUERY_DIALECT = QueryDialect()


# PostgreSQL operators sqlglot has no node for (or renders differently).
class JsonGet(exp.Expression, exp.Binary):
    """jsonb -> key"""


class JsonGetText(exp.Expression, exp.Binary):
    """jsonb ->> key"""


class JsonHasKey(exp.Expression, exp.Binary):
    """jsonb ? key (GIN-indexable)"""


class CosineDistance(exp.Expression, exp.Binary):
    """pgvector's <=>: the operator the HNSW index answers (the function form never is)."""


class ContainedIn(exp.Expression, exp.Binary):
    """PostgreSQL's geometric <@: point <@ polygon (the boundary counts as inside)."""


class TypeCast(exp.Expression):
    """expr::type, with `to` a type name written by the translator itself (never user text)."""

    arg_types: ClassVar[dict[str, bool]] = {"this": True, "to": True}


# Nodes that print as one unit (a name, a literal, a call, a bracketed form): safe next to any
# operator. Careful: sqlglot's And/Or/Collate are Func subclasses, so Func is no test.
ATOMIC: tuple[type[exp.Expr], ...] = (
    exp.Column,
    exp.Literal,
    exp.Paren,
    exp.Subquery,
    exp.Placeholder,
    exp.Boolean,
    exp.Null,
    exp.Anonymous,
    exp.Coalesce,
    exp.Nullif,
    exp.Case,
    exp.Abs,
    exp.Count,
    exp.Array,
    TypeCast,
)


def _typecast_sql(gen: PostgresGenerator, e: TypeCast) -> str:
    this = gen.sql(e, "this")
    if not isinstance(e.this, ATOMIC):
        this = f"({this})"
    return f"{this}::{e.args['to']}"


class PgDialect(Postgres):
    class Generator(PostgresGenerator):
        # Without exp.Select's preprocessing (semi-join and QUALIFY rewrites our statements never
        # need): it re-walks every nested SELECT and costs a third of the compile time.
        TRANSFORMS: ClassVar[dict[type[exp.Expr], Any]] = {
            **{k: v for k, v in PostgresGenerator.TRANSFORMS.items() if k is not exp.Select},
            JsonGet: lambda self, e: self.binary(e, "->"),
            JsonGetText: lambda self, e: self.binary(e, "->>"),
            JsonHasKey: lambda self, e: self.binary(e, "?"),
            CosineDistance: lambda self, e: self.binary(e, "<=>"),
            ContainedIn: lambda self, e: self.binary(e, "<@"),
            TypeCast: _typecast_sql,
        }


PG_DIALECT = PgDialect()
