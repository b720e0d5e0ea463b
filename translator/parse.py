"""Stage 1: text -> sqlglot expression tree, with every limit checked before sqlglot's
recursive-descent parser can recurse (length, nesting depth) and errors that point at the spot."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokenizer_core import Token, TokenType

from .dialect import QUERY_DIALECT
from .errors import QueryLimitError, QuerySyntaxError

MAX_QUERY_LENGTH = 10_000
# Parentheses, brackets, `not`s and unary signs open a level each. sqlglot's parser spends about 16 Python
# frames per parenthesis, so 32 levels stay well inside the default recursion limit.
MAX_NESTING = 32
# Depth of the parsed tree after long and/or chains are balanced (_balance_chains); every later
# stage walks the tree recursively, so it is bounded too.
MAX_TREE_DEPTH = 100

# Size suffixes: binary multiples, as Linux file managers and `ls -h` count.
SIZE_UNITS: dict[str, int] = {
    "KB": 1024,
    "MB": 1024**2,
    "GB": 1024**3,
    "TB": 1024**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
}

# Brackets nest like parentheses (`[...]` is inside()'s polygon; `{...}` is no part of the
# language but still recurses in sqlglot's parser): each closer, and the opener it closes.
_CLOSES = {
    TokenType.R_PAREN: TokenType.L_PAREN,
    TokenType.R_BRACKET: TokenType.L_BRACKET,
    TokenType.R_BRACE: TokenType.L_BRACE,
}
_OPENERS = set(_CLOSES.values())
_CLOSERS = set(_CLOSES)
_TEXT = {
    TokenType.L_PAREN: "(",
    TokenType.R_PAREN: ")",
    TokenType.L_BRACKET: "[",
    TokenType.R_BRACKET: "]",
    TokenType.L_BRACE: "{",
    TokenType.R_BRACE: "}",
}
_PREFIX = {TokenType.NOT, TokenType.DASH, TokenType.PLUS}
# After these a `-` or `+` is a sign, not a binary operator.
_OPERAND_ENDS = {
    TokenType.VAR,
    TokenType.NUMBER,
    TokenType.STRING,
    TokenType.IDENTIFIER,
    TokenType.R_PAREN,
    TokenType.R_BRACKET,
    TokenType.TRUE,
    TokenType.FALSE,
}

_DESCRIPTIONS = {
    "Expecting )": "expected ')'",
    "Invalid expression / Unexpected token": "unexpected",
}


def parse(text: str) -> exp.Expr:
    """The query's tree as sqlglot parses it with the query dialect (not yet allow-listed)."""
    _check_text(text)
    tokens = _tokenize(text)
    _check_tokens(text, tokens)
    try:
        trees = QUERY_DIALECT.parser().parse(tokens, text)
    except ParseError as exc:
        raise _syntax_error(text, exc) from None
    if len(trees) != 1 or trees[0] is None:
        raise QuerySyntaxError("expected one query", text, (0, len(text)))
    tree = _balance_chains(trees[0])
    _check_depth(text, tree)
    return tree


# `a and b and c ...` parses left-deep, one level per term; and/or are associative, so a long
# chain is rebuilt as a balanced tree (log2 levels) and only true nesting counts against
# MAX_TREE_DEPTH. Short chains keep the parser's shape (and so their SQL text).
_BALANCE_FROM = 8


def _balance_chains(tree: exp.Expr) -> exp.Expr:
    def balanced(kind: type[exp.Connector], terms: list[exp.Expr]) -> exp.Expr:
        if len(terms) == 1:
            return terms[0]
        middle = len(terms) // 2
        return kind(this=balanced(kind, terms[:middle]), expression=balanced(kind, terms[middle:]))

    todo = [tree]
    roots: list[exp.Expr] = []
    while todo:
        node = todo.pop()
        if isinstance(node, (exp.And, exp.Or)) and type(node.parent) is not type(node):
            roots.append(node)
        todo.extend(node.iter_expressions())
    for root in roots:
        kind: type[exp.Connector] = exp.And if isinstance(root, exp.And) else exp.Or
        terms: list[exp.Expr] = []
        stack: list[exp.Expr] = [root]
        while stack:  # left to right
            node = stack.pop()
            if type(node) is kind:
                stack.extend((node.expression, node.this))
            else:
                terms.append(node)
        if len(terms) < _BALANCE_FROM:
            continue
        for term in terms:
            term.pop()
        rebuilt = balanced(kind, terms)
        if root is tree:
            tree = rebuilt
        else:
            root.replace(rebuilt)
    return tree


def _check_text(text: str) -> None:
    if not text.strip():
        raise QueryLimitError("empty query: give a condition such as `width > 100`, or no query at all")
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryLimitError(f"query too long: {len(text)} characters, at most {MAX_QUERY_LENGTH}")
    for i, ch in enumerate(text):
        if ch == "\x00" or "\ud800" <= ch <= "\udfff" or (not ch.isprintable() and ch not in "\t\n\r"):
            raise QuerySyntaxError(f"character {ch!r} is not allowed in a query", text, (i, i + 1))
    _check_quotes(text)


def _check_quotes(text: str) -> None:
    """Unterminated strings and names, found here because sqlglot's tokenizer cannot say where."""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "\"'`":
            start, i = i, i + 1
            while i < n:
                if text[i] == "\\" and ch != "`":
                    i += 2
                    continue
                if text[i] == ch:
                    if ch == "`" and i + 1 < n and text[i + 1] == "`":  # `` inside a name
                        i += 2
                        continue
                    break
                i += 1
            if i >= n:
                what = "name" if ch == "`" else "string"
                raise QuerySyntaxError(f"{what} opened here is never closed (missing {ch})", text, (start, n))
        i += 1


def _tokenize(text: str) -> list[Token]:
    try:
        raw = QUERY_DIALECT.tokenize(text)
    except TokenError as exc:
        raise QuerySyntaxError(f"cannot read the query: {exc}", text, (0, len(text))) from None
    return _merge_size_units(text, raw)


def _merge_size_units(text: str, tokens: list[Token]) -> list[Token]:
    """`2MB`, `1.5 GB` -> one number token holding the byte count."""
    out: list[Token] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if (
            tok.token_type == TokenType.NUMBER
            and nxt is not None
            and nxt.token_type == TokenType.VAR
            and nxt.text.upper() in SIZE_UNITS
        ):
            try:
                value = Decimal(tok.text) * SIZE_UNITS[nxt.text.upper()]
            except InvalidOperation:
                raise QuerySyntaxError(
                    f"not a number: {tok.text!r}", text, (tok.start, tok.end + 1)
                ) from None
            merged = Token(
                TokenType.NUMBER, _plain(value), tok.line, nxt.col, tok.start, nxt.end, tok.comments
            )
            out.append(merged)
            i += 2
            continue
        out.append(tok)
        i += 1
    return out


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def _check_tokens(text: str, tokens: list[Token]) -> None:
    """Balanced parentheses and brackets, one statement, and nesting within MAX_NESTING, before
    sqlglot."""
    stack: list[Token] = []
    prefix_run = 0
    previous: Token | None = None
    for tok in tokens:
        kind = tok.token_type
        if kind == TokenType.SEMICOLON:
            raise QuerySyntaxError(
                "';' is not part of the query language: one query at a time", text, _span(tok)
            )
        if kind in _OPENERS:
            stack.append(tok)
        elif kind in _CLOSERS:
            closer, opener = _TEXT[kind], _TEXT[_CLOSES[kind]]
            if not stack:
                raise QuerySyntaxError(f"'{closer}' without a matching '{opener}'", text, _span(tok))
            if stack[-1].token_type != _CLOSES[kind]:
                expected = next(_TEXT[c] for c, o in _CLOSES.items() if o == stack[-1].token_type)
                raise QuerySyntaxError(f"expected '{expected}' before '{closer}'", text, _span(tok))
            stack.pop()
        is_prefix = kind in _PREFIX and (
            kind == TokenType.NOT or previous is None or previous.token_type not in _OPERAND_ENDS
        )
        prefix_run = prefix_run + 1 if is_prefix else 0
        if len(stack) + prefix_run > MAX_NESTING:
            raise QueryLimitError(
                f"query nested too deeply: more than {MAX_NESTING} levels of parentheses, brackets and `not`",
                text,
                _span(tok),
            )
        previous = tok
    if stack:
        raise QuerySyntaxError(f"'{_TEXT[stack[-1].token_type]}' is never closed", text, _span(stack[-1]))


def _check_depth(text: str, tree: exp.Expr) -> None:
    todo: list[tuple[exp.Expr, int]] = [(tree, 1)]
    while todo:
        node, depth = todo.pop()
        if depth > MAX_TREE_DEPTH:
            raise QueryLimitError(
                f"query too deep: more than {MAX_TREE_DEPTH} operations inside one another "
                "(long `and` / `or` chains are fine; a long chain of + - * / is not)",
                text,
                (0, len(text)),
            )
        todo.extend((child, depth + 1) for child in node.iter_expressions())


def _span(tok: Token) -> tuple[int, int]:
    return tok.start, tok.end + 1


def _syntax_error(text: str, exc: ParseError) -> QuerySyntaxError:
    info = exc.errors[0] if exc.errors else {}
    line, col = info.get("line"), info.get("col")
    highlight = str(info.get("highlight") or "")
    description = str(info.get("description") or "syntax error")
    span: tuple[int, int] | None = None
    if isinstance(line, int) and isinstance(col, int):
        line_start = 0
        for _ in range(line - 1):
            line_start = text.find("\n", line_start) + 1
        end = line_start + col  # sqlglot's col is the 1-based column of the token's last character
        span = (max(0, end - max(1, len(highlight))), end)
    if description.startswith("Required keyword: 'expression' missing"):
        message = f"{highlight!r} needs a value on its right" if highlight else "an operator lacks a value"
    elif description.startswith("Required keyword: 'this' missing"):
        message = f"{highlight!r} needs a value" if highlight else "an operator lacks a value"
    elif description in _DESCRIPTIONS:
        message = _DESCRIPTIONS[description]
        if message == "unexpected":
            message = f"unexpected {highlight!r}" if highlight else "unexpected end of query"
        elif highlight:
            message += f" before {highlight!r}"
    else:
        message = f"syntax error near {highlight!r}" if highlight else "syntax error"
    return QuerySyntaxError(message, text, span)
