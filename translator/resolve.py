"""Stage 3: names -> fields, label counts and jsonb paths of the catalog's dataset (a curation
field whose tool never ran on the rows is an error naming the command to run); `null` -> Missing;
literals checked (range, characters); a bare string where a condition belongs -> filename search;
inside()'s polygon -> a Polygon of checked number pairs."""

from __future__ import annotations

import difflib
import shlex
from decimal import Decimal, InvalidOperation

from sqlglot import exp

from .allow import INSIDE_USAGE
from .catalog import Catalog, Target
from .errors import QueryLimitError, QuerySyntaxError, QueryTypeError, UnknownNameError
from .fields import ASSET_FIELDS, ASSET_JSON, JOINS, SHAPE_FIELDS, SHAPE_JSON
from .nodes import FieldDef, FieldRef, FilenameSearch, JsonRef, LabelCount, Missing, Polygon, set_span, span

# Numbers a query may write: beyond these, arithmetic could leave PostgreSQL's numeric range.
MAX_NUMBER = Decimal("1e18")
MIN_NONZERO = Decimal("1e-18")
MAX_DIGITS = 40
# Vertices of inside()'s polygon. Each costs an edge test per row; the query's 10,000 characters
# hold at most about 1,600 (`[0,0],` each), and a lasso's about 500 at 4 decimals.
MAX_POLYGON_VERTICES = 1000
MIN_POLYGON_VERTICES = 3
_NOT_NUMBERS = ("nan", "inf", "infinity")

_BOOLEAN_CONTEXT = (exp.And, exp.Or, exp.Not, exp.Paren)


class Resolver:
    def __init__(self, text: str, catalog: Catalog, target: Target) -> None:
        self.text = text
        self.catalog = catalog
        self.target = target

    def resolve(self, tree: exp.Expr) -> exp.Expr:
        return self._node(tree, boolean=True)

    def _node(self, node: exp.Expr, boolean: bool) -> exp.Expr:
        if isinstance(node, exp.Literal):
            return self._literal(node, boolean)
        if isinstance(node, (exp.Column, exp.Dot)):
            return self._name(node)
        if isinstance(node, exp.Anonymous):
            if node.name.lower() == "count":
                return self._count(node)
            node.set("this", node.name.lower())
            if node.name == "inside":
                return self._inside(node)
        child_boolean = isinstance(node, _BOOLEAN_CONTEXT) and (boolean or not isinstance(node, exp.Paren))
        for key, value in list(node.args.items()):
            if isinstance(value, exp.Expr):
                node.set(key, self._node(value, child_boolean))
            elif isinstance(value, list):
                node.set(key, [self._node(v, False) if isinstance(v, exp.Expr) else v for v in value])
        if isinstance(node, exp.In):
            self._check_in(node)
        return node

    def _check_in(self, node: exp.In) -> None:
        """`x in ()` is no condition at all (and no SQL); `"v" in labels` names a label of the
        dataset, like a label used as a count: a typo would otherwise silently match nothing."""
        field = node.args.get("field")
        if field is None and not node.expressions:
            after = (span(node.this) or (0, 0))[1]
            start = self.text.find("(", after)
            end = self.text.find(")", start) + 1 if start >= 0 else 0
            where = (start, end) if 0 <= start < end else None
            raise QuerySyntaxError(
                'an empty list matches nothing: `in (...)` needs at least one value, e.g. status in ("review", "to_fix")',
                self.text,
                where,
            )
        needle = node.this
        if (
            isinstance(field, FieldRef)
            and field.field.name == "labels"
            and isinstance(needle, exp.Literal)
            and needle.is_string
            and needle.this not in self.catalog.labels
        ):
            label: str = needle.this
            labels = sorted(self.catalog.labels)
            close = [name for name in labels if name.lower() == label.lower()]
            close += [c for c in difflib.get_close_matches(label, labels, n=3) if c not in close]
            dataset = f" of dataset {self.catalog.dataset_name!r}" if self.catalog.dataset_name else ""
            hint = "; did you mean " + " or ".join(repr(c) for c in close[:3]) + "?" if close else ""
            raise UnknownNameError(f"{label!r} is not a label{dataset}{hint}", self.text, span(needle))

    # -- literals -------------------------------------------------------------------------
    def _literal(self, node: exp.Literal, boolean: bool) -> exp.Expr:
        where = span(node)
        if node.is_string:
            value = node.this
            if "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value):
                raise QuerySyntaxError(
                    "strings cannot hold NUL or unpaired surrogate characters", self.text, where
                )
            if boolean:
                return set_span(FilenameSearch(this=node), where)
            return node
        try:
            number = Decimal(node.this)
        except InvalidOperation:
            raise QuerySyntaxError(f"not a number: {node.this!r}", self.text, where) from None
        if not number.is_finite() or abs(number) > MAX_NUMBER or (number and abs(number) < MIN_NONZERO):
            raise QueryLimitError(
                f"number out of range: {node.this} (numbers are 0 or between 1e-18 and 1e18 in size)",
                self.text,
                where,
            )
        if len(number.as_tuple().digits) > MAX_DIGITS:
            raise QueryLimitError(f"number has more than {MAX_DIGITS} digits", self.text, where)
        node.meta["value"] = number
        return node

    # -- names ----------------------------------------------------------------------------
    def _name(self, node: exp.Expr) -> exp.Expr:
        parts = _parts(node)
        where = span(node)
        names = [p.name for p in parts]
        if len(parts) == 1 and not parts[0].quoted and names[0].lower() == "null":
            # The missing value (a label named null is `null` in backquotes, or count("null")).
            return set_span(Missing(), where)
        if self.target == "shape" and names[0] != "asset":
            resolved = self._shape_name(names, where)
        else:
            rest = names[1:] if names[0] == "asset" and len(names) > 1 else names
            resolved = self._asset_name(rest, names, where)
        return set_span(resolved, where)

    def _asset_name(self, names: list[str], written: list[str], where: tuple[int, int] | None) -> exp.Expr:
        prefix = "asset." if written[0] == "asset" and self.target == "shape" else ""
        head = names[0]
        if head in ASSET_JSON:
            return self._json(head, names, written, self.catalog.metadata_keys, where)
        if len(names) == 1:
            field = ASSET_FIELDS.get(head)
            if field is not None:
                return self._field(prefix + head, field, where)
            if head in self.catalog.labels:
                return LabelCount(this=exp.Literal.string(head))
        raise self._unknown(".".join(written), where)

    def _shape_name(self, names: list[str], where: tuple[int, int] | None) -> exp.Expr:
        head = names[0]
        if head in SHAPE_JSON:
            return self._json(head, names, names, self.catalog.attribute_keys, where)
        if len(names) == 1 and head in SHAPE_FIELDS:
            return self._field(head, SHAPE_FIELDS[head], where)
        raise self._unknown(".".join(names), where)

    def _field(self, written: str, field: FieldDef, where: tuple[int, int] | None) -> FieldRef:
        join = JOINS.get(field.alias)
        if (
            join is not None
            and join.tool is not None
            and self.catalog.score_space(join.target, join.tool) is None
        ):
            raise self._never_run(written, join.tool, join.target, where)
        ref = FieldRef(this=written)
        ref.meta["field"] = field
        return ref

    def _never_run(
        self, written: str, tool: str, target: Target, where: tuple[int, int] | None
    ) -> UnknownNameError:
        """A curation field before its tool has run: an error, not a field missing everywhere
        (which would make `uniqueness > 0.9` silently empty and `not ...` select every row)."""
        name = self.catalog.dataset_name
        dataset = f" of dataset {name!r}" if name else ""
        command = f"pgsearch {tool} --dataset {shlex.quote(name) if name else 'NAME'}"
        command += " --shapes" if target == "shape" else ""
        return UnknownNameError(
            f"{written!r} has no values yet: no {tool} run on the {target}s{dataset}; run `{command}`",
            self.text,
            where,
        )

    def _json(
        self,
        root: str,
        names: list[str],
        written: list[str],
        known: frozenset[str] | None,
        where: tuple[int, int] | None,
    ) -> exp.Expr:
        if len(names) < 2:
            raise QueryTypeError(f"{root} needs a key: {root}.<key>, e.g. {root}.camera", self.text, where)
        key = names[1]
        if known is not None and key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=3)
            hint = "did you mean " + " or ".join(f"{root}.{c}" for c in close) + "?" if close else ""
            if not hint:
                hint = f"known keys: {', '.join(sorted(known)[:10])}" if known else f"no asset has any {root}"
            raise UnknownNameError(f"unknown {root} key {key!r}; {hint}", self.text, where)
        return JsonRef(this=root, path=names[1:])

    def _count(self, node: exp.Anonymous) -> exp.Expr:
        arg = node.expressions[0]
        if not (isinstance(arg, exp.Literal) and arg.is_string):
            raise QueryTypeError(
                'count() takes a label name in quotes: count("person")', self.text, span(node)
            )
        return set_span(LabelCount(this=exp.Literal.string(arg.this)), span(node))

    # -- inside(x, y, polygon) -------------------------------------------------------------
    def _inside(self, node: exp.Anonymous) -> exp.Expr:
        x, y, polygon = node.expressions
        node.set("expressions", [self._node(x, False), self._node(y, False), self._polygon(polygon)])
        return node

    def _polygon(self, node: exp.Expr) -> Polygon:
        """The polygon as written: a list of at least 3 [number, number] pairs, every number a
        literal (signs allowed) checked like any other."""
        where = span(node)
        if not isinstance(node, exp.Array):
            raise QueryTypeError(
                f"inside() takes its polygon as a list of [x, y] vertices: {INSIDE_USAGE}", self.text, where
            )
        count = len(node.expressions)
        if count > MAX_POLYGON_VERTICES:
            raise QueryLimitError(
                f"polygon has {count} vertices, at most {MAX_POLYGON_VERTICES} (simplify the outline)",
                self.text,
                where,
            )
        vertices: list[tuple[Decimal, Decimal]] = []
        for vertex in node.expressions:
            if not isinstance(vertex, exp.Array) or len(vertex.expressions) != 2:
                hint = (
                    ""
                    if isinstance(vertex, exp.Array)
                    else " (the polygon is a list of pairs: [[x1, y1], [x2, y2], ...])"
                )
                raise QueryTypeError(
                    f"a polygon vertex is a pair of numbers [x, y]; {self._shown(vertex)} is not{hint}",
                    self.text,
                    span(vertex) or where,
                )
            vx, vy = vertex.expressions
            vertices.append((self._coordinate(vx), self._coordinate(vy)))
        if count < MIN_POLYGON_VERTICES:
            raise QueryTypeError(
                f"a polygon needs at least {MIN_POLYGON_VERTICES} vertices, this one has {count}: {INSIDE_USAGE}",
                self.text,
                where,
            )
        polygon = Polygon(this=tuple(vertices))
        set_span(polygon, where)
        return polygon

    def _coordinate(self, node: exp.Expr) -> Decimal:
        negative = False
        inner = node
        while isinstance(inner, exp.Neg):
            negative, inner = not negative, inner.this
        if isinstance(inner, exp.Literal) and not inner.is_string:
            self._literal(inner, False)
            value: Decimal = inner.meta["value"]
            return -value if negative else value
        where = span(node)
        if isinstance(inner, exp.Column) and inner.name.lower() in _NOT_NUMBERS and not inner.table:
            raise QueryTypeError(
                f"{self._shown(node)} is not a number: polygon vertices are finite numbers", self.text, where
            )
        raise QueryTypeError(
            f"polygon vertices are numbers written out, such as [-1.5, 2e3]; {self._shown(node)} is not one",
            self.text,
            where,
        )

    def _shown(self, node: exp.Expr) -> str:
        where = span(node)
        return repr(self.text[where[0] : where[1]]) if where else "this"

    def _unknown(self, name: str, where: tuple[int, int] | None) -> UnknownNameError:
        dataset = f" of dataset {self.catalog.dataset_name!r}" if self.catalog.dataset_name else ""
        if self.target == "shape":
            candidates = [*SHAPE_FIELDS, *(f"asset.{f}" for f in ASSET_FIELDS)]
            candidates += [f"asset.{label}" for label in self.catalog.labels]
            what = f"{name!r} is not a shape field"
            if name in self.catalog.labels:
                return UnknownNameError(
                    f'{what}; for shapes with that label write label == "{name}", for the asset\'s count asset.{name}',
                    self.text,
                    where,
                )
        else:
            candidates = [*ASSET_FIELDS, *self.catalog.labels]
            what = f"{name!r} is neither a field nor a label{dataset}"
        close = self._json_spellings(name) or difflib.get_close_matches(name, candidates, n=3)
        hint = "; did you mean " + " or ".join(close) + "?" if close else ""
        return UnknownNameError(what + hint, self.text, where)

    def _json_spellings(self, name: str) -> list[str]:
        """`split == "val"` where the metadata has a key `split`: the user meant metadata.split
        (attributes.split for a shape attribute). Keys match exactly or up to case."""
        head, _, _ = name.partition(".")
        roots: list[tuple[str, frozenset[str] | None]] = [("metadata", self.catalog.metadata_keys)]
        if self.target == "shape":
            roots = [
                ("attributes", self.catalog.attribute_keys),
                ("asset.metadata", self.catalog.metadata_keys),
            ]
        found: list[str] = []
        for root, keys in roots:
            for key in sorted(keys or ()):
                if key == head or (key.lower() == head.lower() and not found):
                    spelt = key if key.isidentifier() else "`" + key.replace("`", "``") + "`"
                    found.append(f"{root}.{spelt}{name[len(head) :]}")
        return found[:3]


def _parts(node: exp.Expr) -> list[exp.Identifier]:
    """The identifiers of a dotted name, left to right (Column holds four, Dot chains more)."""
    out: list[exp.Identifier] = []
    todo: list[exp.Expr] = [node]
    while todo:
        current = todo.pop()
        if isinstance(current, exp.Identifier):
            out.append(current)
        elif isinstance(current, exp.Column):
            todo.extend(reversed(current.parts))
        elif isinstance(current, exp.Dot):
            todo.extend((current.expression, current.this))
    return out
