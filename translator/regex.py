"""A conservative check of `matches()` patterns, so PostgreSQL never sees a regular expression
it would reject: a subset on which PostgreSQL's ARE and Python's `re` agree about what matches.

Accepted: literal characters, `.`, `^`, `$`, `|`, groups `( )` and `(?: )`, bracket classes
`[a-z0-9_]` / `[^...]` (escapes \\d \\s \\w \\\\ \\] \\- \\^ inside), escapes \\d \\D \\s \\S \\w \\W
and an escaped punctuation character, quantifiers `* + ?` and `{m}`, `{m,}`, `{m,n}` (at most 255,
as PostgreSQL's limit) each optionally followed by `?`. Rejected with the offset: everything else
(back-references, lookaround, flags, POSIX classes like [[:alpha:]], \\b, a lone `{`)."""

from __future__ import annotations

MAX_PATTERN = 1000
MAX_REPEAT = 255
MAX_COST = 10_000  # rough size of the compiled automaton; counted repetitions multiply it

_SPECIAL = set("\\^$.[]|()*+?{}")
_CLASS_ESCAPES = set("dDsSwW")
_INNER_ESCAPES = set("dsw\\]-^[")


class _Bad(Exception):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


def check_regex(pattern: str) -> tuple[str, int] | None:
    """None when `pattern` is in the accepted subset, else (what is wrong, offset in pattern)."""
    if len(pattern) > MAX_PATTERN:
        return f"pattern longer than {MAX_PATTERN} characters", MAX_PATTERN
    try:
        parser = _Parser(pattern)
        cost = parser.alternation(depth=0)
        if parser.i < len(pattern):
            raise _Bad("unmatched ')'", parser.i)
        if cost > MAX_COST:
            raise _Bad("pattern too complex (counted repetitions nest too much)", 0)
    except _Bad as bad:
        return bad.message, bad.offset
    return None


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0

    def peek(self) -> str | None:
        return self.p[self.i] if self.i < len(self.p) else None

    def alternation(self, depth: int) -> int:
        if depth > 20:
            raise _Bad("groups nested too deeply", self.i)
        cost = self.branch(depth)
        while self.peek() == "|":
            self.i += 1
            cost += self.branch(depth)
        return cost

    def branch(self, depth: int) -> int:
        cost = 0
        while self.peek() not in (None, "|", ")"):
            cost += self.piece(depth)
        return cost

    def piece(self, depth: int) -> int:
        start = self.i
        cost = self.atom(depth)
        ch = self.peek()
        if ch in ("*", "+", "?"):
            self.i += 1
            cost *= 2
        elif ch == "{":
            low, high = self.bounds()
            if start == self.i:
                raise _Bad("a quantifier needs something to repeat", start)
            cost *= max(low, high if high is not None else low + 1, 1)
        else:
            return cost
        if self.peek() == "?":  # non-greedy
            self.i += 1
        if self.peek() in ("*", "+", "?", "{"):
            raise _Bad("two quantifiers in a row", self.i)
        return cost

    def bounds(self) -> tuple[int, int | None]:
        start = self.i
        end = self.p.find("}", start)
        if end == -1:
            raise _Bad("'{' starts a repetition {m,n} that is never closed; write \\{ for a brace", start)
        body = self.p[start + 1 : end]
        low_text, comma, high_text = body.partition(",")
        if not low_text.isdigit() or (high_text and not high_text.isdigit()):
            raise _Bad("a repetition is {m}, {m,} or {m,n} with whole numbers; write \\{ for a brace", start)
        low = int(low_text)
        high = int(high_text) if high_text else (None if comma else low)
        if low > MAX_REPEAT or (high is not None and (high > MAX_REPEAT or high < low)):
            raise _Bad(f"repetition counts go from 0 to {MAX_REPEAT}, the smaller first", start)
        self.i = end + 1
        return low, high

    def atom(self, depth: int) -> int:
        ch = self.peek()
        at = self.i
        if ch is None:
            raise _Bad("pattern ends too early", at)
        if ch == "(":
            self.i += 1
            if self.p.startswith("?:", self.i):
                self.i += 2
            elif self.peek() == "?":
                raise _Bad("only (?:...) groups are supported", at)
            cost = self.alternation(depth + 1)
            if self.peek() != ")":
                raise _Bad("'(' is never closed", at)
            self.i += 1
            return cost + 1
        if ch == "[":
            return self.bracket()
        if ch == "\\":
            nxt = self.p[self.i + 1] if self.i + 1 < len(self.p) else None
            if nxt is None:
                raise _Bad("pattern ends with a lone backslash", at)
            if nxt in _CLASS_ESCAPES or (not nxt.isalnum() and nxt.isprintable() and nxt != " "):
                self.i += 2
                return 1
            raise _Bad(f"unsupported escape \\{nxt}", at)
        if ch in ("*", "+", "?", "{"):
            raise _Bad(f"{ch!r} needs something to repeat before it (write \\{ch} for the character)", at)
        if ch in ("]", "}"):
            raise _Bad(f"write \\{ch} for a literal {ch!r}", at)
        self.i += 1
        return 1

    def bracket(self) -> int:
        at = self.i
        self.i += 1
        if self.peek() == "^":
            self.i += 1
        first = True
        previous: str | None = None
        while True:
            ch = self.peek()
            if ch is None:
                raise _Bad("'[' is never closed", at)
            if ch == "]" and not first:
                self.i += 1
                return 1
            if ch in ("[", "]"):
                raise _Bad(f"write \\{ch} inside [...] for a literal {ch!r}", self.i)
            if ch == "\\":
                nxt = self.p[self.i + 1] if self.i + 1 < len(self.p) else None
                if nxt not in _INNER_ESCAPES:
                    raise _Bad(f"unsupported escape inside [...]: \\{nxt or ''}", self.i)
                self.i += 2
                previous = None if nxt in "dsw" else nxt
            elif ch == "-" and previous is not None and self.p[self.i + 1 : self.i + 2] not in ("]", ""):
                end = self.p[self.i + 1]
                if end in ("[", "\\"):
                    raise _Bad("a range ends with a plain character", self.i)
                if ord(end) < ord(previous):
                    raise _Bad(f"range {previous}-{end} is backwards", self.i)
                self.i += 2
                previous = None
            else:
                self.i += 1
                previous = ch
            first = False
