"""The Python API for notebooks and scripts; the `pgsearch query` command is a thin shell over it.

    import pgsearch
    db = pgsearch.connect()                      # embedded server, or connect("postgresql://...")
    rows = db.query("cat >= 1 and width > 640", dataset="pets", limit=20)
    rows = db.query(dataset="pets", similar_to="IMG_0042.jpg")
    df = db.query("status == 'review'", dataset="pets").to_dataframe()

A search is one SQL statement: the translator compiles the metadata query, the similarity order
and the limit into it. What happens before it (reading the dataset's catalog, embedding a text
prompt or an outside image) and after it (adding the rows to a group) is separate.

The catalog (the dataset's id, labels, embedding spaces, projection runs) is read afresh for
every search, so a client stays right while other sessions load, drop or reload datasets. Every
mistake in the arguments or the query raises a pgsearch.PgsearchError whose message names it.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow, dict_row

from pgsearch import db as database
from pgsearch.catalog import load_catalog
from pgsearch.datasets import choose_space, model_to_embed, shapes_not_embedded
from pgsearch.errors import PgsearchError
from pgsearch.search_settings import (
    IDLE_IN_TRANSACTION_TIMEOUT_S,
    SEARCH_SETTINGS,
    STATEMENT_TIMEOUT_S,
    check_timeout,
    libpq_options,
    session_limits,
)
from pgsearch.translator import (
    AssetSource,
    Catalog,
    CompiledQuery,
    EmbeddingSpace,
    ShapeSource,
    Similarity,
    Target,
    UnknownNameError,
    VectorSource,
    compile_query,
)
from pgsearch.translator.bounds import (
    INDEXED_TEXT_MAX_BYTES,
    MAX_LIMIT,
    MAX_OFFSET,
    check_query_vector,
    text_problem,
)
from pgsearch.translator.errors import QueryTypeError

if TYPE_CHECKING:
    import pandas


class SearchError(PgsearchError):
    """A search request that cannot be answered as asked (conflicting options, no embeddings)."""


class QueryTimeout(PgsearchError):
    """The server cancelled a statement that ran longer than the session's statement timeout.

    `seconds` is that timeout; the message says how to raise it through the API, and the CLI
    words it for `--timeout`."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        super().__init__(
            f"the query ran longer than {_seconds(seconds)} and was cancelled; "
            "connect(statement_timeout=SECONDS) raises the limit (0: none)"
        )


class SessionClosed(PgsearchError):
    """The server ended the session: it sat idle inside an open transaction for too long."""


class Result(list[dict[str, Any]]):
    """The rows of a search, as dicts, with the statement that produced them."""

    def __init__(self, rows: Iterable[dict[str, Any]], compiled: CompiledQuery) -> None:
        super().__init__(rows)
        self.compiled = compiled

    @property
    def columns(self) -> list[str]:
        """The statement's output columns, in order (also when there are no rows)."""
        return list(self.compiled.columns)

    @property
    def sql(self) -> str:
        return str(self.compiled.inline())

    def to_dataframe(self) -> pandas.DataFrame:
        try:
            import pandas
        except ImportError:
            raise PgsearchError("to_dataframe needs pandas: pip install pandas") from None
        # From no rows pandas would make a frame without columns; keep the statement's columns.
        return pandas.DataFrame(list(self), columns=self.columns)


@dataclass(frozen=True)
class SearchRequest:
    """Everything `query` takes, checked; the CLI builds one from its options."""

    dataset: str
    query: str | None = None
    similar_to: str | int | None = None
    similar_to_file: str | Path | None = None
    similar_to_shape: int | None = None
    text: str | None = None
    vector: Sequence[float] | None = None
    dissimilar: bool = False
    shapes: bool = False
    model: str | None = None
    limit: int = 100
    offset: int = 0

    def check(self) -> None:
        """SearchError naming the argument when one has the wrong type or value, or when the
        arguments contradict each other."""
        self._check_types()
        given = [
            name
            for name, value in (
                ("similar_to", self.similar_to),
                ("similar_to_file", self.similar_to_file),
                ("similar_to_shape", self.similar_to_shape),
                ("text", self.text),
                ("vector", self.vector),
            )
            if value is not None
        ]
        if len(given) > 1:
            raise SearchError(
                f"give one of similar_to, similar_to_file, similar_to_shape, text, vector; "
                f"got {', '.join(given)}"
            )
        if self.dissimilar and not given:
            raise SearchError(
                "dissimilar needs something to be dissimilar to: similar_to, similar_to_file, "
                "similar_to_shape, text or vector"
            )

    def _check_types(self) -> None:
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise SearchError(f"dataset= must be a dataset name (a non-empty string), not {self.dataset!r}")
        _check_storable("dataset", self.dataset)
        _check_storable("similar_to", self.similar_to)
        _check_optional_str("query", self.query)
        if self.similar_to is not None and not _is_int(self.similar_to):
            if not isinstance(self.similar_to, str) or not self.similar_to.strip():
                raise SearchError(
                    f"similar_to= must be an asset id (an int) or a filename (a string), "
                    f"not {self.similar_to!r}"
                )
        if self.similar_to_file is not None and not isinstance(self.similar_to_file, (str, os.PathLike)):
            raise SearchError(f"similar_to_file= must be a path (str or Path), not {self.similar_to_file!r}")
        shape = self.similar_to_shape
        if (
            shape is not None
            and not _is_int(shape)
            and not (isinstance(shape, str) and shape.strip().isdigit())
        ):
            raise SearchError(f"similar_to_shape= must be a shape id (an int), not {shape!r}")
        _check_optional_str("text", self.text)
        _check_optional_str("model", self.model)
        if self.vector is not None and (
            isinstance(self.vector, (str, bytes, Mapping)) or not isinstance(self.vector, Iterable)
        ):
            raise SearchError(f"vector= must be a sequence of numbers, not {type(self.vector).__name__}")
        for name in ("dissimilar", "shapes"):
            if not isinstance(getattr(self, name), bool):
                raise SearchError(f"{name}= must be True or False, not {getattr(self, name)!r}")
        if not _is_int(self.limit) or not 1 <= self.limit <= MAX_LIMIT:
            raise SearchError(
                f"limit must be a whole number from 1 to {MAX_LIMIT}, not {self.limit!r}"
                + ("; page with offset" if _is_int(self.limit) and self.limit > MAX_LIMIT else "")
            )
        if not _is_int(self.offset) or not 0 <= self.offset <= MAX_OFFSET:
            raise SearchError(f"offset must be a whole number from 0 to {MAX_OFFSET}, not {self.offset!r}")

    @property
    def target(self) -> Target:
        return "shape" if self.shapes or self.similar_to_shape is not None else "asset"


class Client:
    """A connection to a pgsearch database; see the module docstring."""

    def __init__(
        self,
        conn: psycopg.Connection[TupleRow],
        *,
        statement_timeout: float | None = None,
        idle_in_transaction_timeout: float | None = None,
    ) -> None:
        # Public for notebooks that want plain SQL next to the API; the CLI never touches it.
        self.conn: psycopg.Connection[TupleRow] = conn
        # The session's limits as set by connect(), for the messages when one is hit.
        self.statement_timeout = statement_timeout
        self.idle_in_transaction_timeout = idle_in_transaction_timeout
        # dataset name -> (dataset id, metadata keys, attribute keys) of its last full catalog read
        self._keys: dict[str, tuple[int, frozenset[str] | None, frozenset[str] | None]] = {}

    # -- searching ------------------------------------------------------------------------------

    def query(self, query: str | None = None, *, dataset: str, **options: Any) -> Result:
        """Runs one search; keyword options as in SearchRequest (similar_to, text, shapes, ...)."""
        accepted = {f.name for f in dataclasses.fields(SearchRequest)} - {"dataset", "query"}
        unknown = sorted(set(options) - accepted)
        if unknown:
            raise SearchError(
                f"query() got unknown argument {', '.join(unknown)}; it takes {', '.join(sorted(accepted))}"
            )
        request = SearchRequest(dataset=dataset, query=query, **options)
        compiled = self.compile(request)
        with self._transaction(), self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(compiled.sql.encode(), compiled.params)
            rows = cur.fetchall()
        return Result(rows, compiled)

    def compile(self, request: SearchRequest) -> CompiledQuery:
        """The one statement a search runs (embedding a text or an outside image first)."""
        request.check()
        catalog, fresh_keys = self._catalog(request.dataset, refresh=False)
        similarity = self._similarity(request, catalog)
        try:
            return self._compile(request, catalog, similarity)
        except UnknownNameError:
            if fresh_keys:
                raise
        # The metadata/attribute keys were remembered from an earlier read: a key added since
        # then is not in them. Read them again and judge the query on what is there now.
        catalog, _ = self._catalog(request.dataset, refresh=True)
        return self._compile(request, catalog, similarity)

    @staticmethod
    def _compile(request: SearchRequest, catalog: Catalog, similarity: Similarity | None) -> CompiledQuery:
        return compile_query(
            request.query,
            catalog,
            target=request.target,
            similarity=similarity,
            limit=int(request.limit),  # checked: whole numbers, numpy's too
            offset=int(request.offset),
        )

    def explain(self, request: SearchRequest, *, analyze: bool = False) -> str:
        """PostgreSQL's plan of the one statement `request` runs, as text (EXPLAIN's lines).

        analyze=True runs the statement (EXPLAIN (ANALYZE, BUFFERS)): the plan then shows real
        row counts and times, and which of the similarity paths did the work (the other one is
        `(never executed)`). Whatever the statement did is rolled back."""
        compiled = self.compile(request)
        prefix = sql.SQL("EXPLAIN (ANALYZE, BUFFERS) ") if analyze else sql.SQL("EXPLAIN ")
        statement = prefix + sql.SQL(compiled.sql)
        try:
            rows = self.conn.execute(statement, compiled.params).fetchall()
        except psycopg.Error as exc:
            self._raise_bounded(exc)
            raise
        finally:
            if not self.conn.closed:
                self.conn.rollback()
        return "\n".join(r[0] for r in rows)

    def catalog(self, dataset: str, *, refresh: bool = False) -> Catalog:
        """The translator's view of `dataset` as it is now.

        The dataset's id, labels, embedding spaces and projection runs are read on every call
        (four indexed look-ups, under a millisecond), so a dataset dropped and loaded again, or
        labels and models added by a later load, are seen at once. The metadata and attribute
        keys in use (a scan of up to catalog.KEY_SCAN_ROWS rows: tens of milliseconds on a large
        dataset) are read on the first call for the dataset, again when its id changes, with
        refresh=True, and by a search that names a key they lack.
        """
        return self._catalog(dataset, refresh=refresh)[0]

    def _catalog(self, dataset: str, *, refresh: bool) -> tuple[Catalog, bool]:
        """(catalog, whether its keys were read just now)."""
        if not isinstance(dataset, str) or not dataset.strip():
            raise SearchError(f"dataset= must be a dataset name (a non-empty string), not {dataset!r}")
        with self._transaction():
            known = self._keys.get(dataset)
            if not refresh and known is not None:
                catalog = load_catalog(self.conn, dataset, keys=False)
                if catalog.dataset_id == known[0]:
                    return dataclasses.replace(
                        catalog, metadata_keys=known[1], attribute_keys=known[2]
                    ), False
            catalog = load_catalog(self.conn, dataset)
            self._keys[dataset] = (catalog.dataset_id, catalog.metadata_keys, catalog.attribute_keys)
            return catalog, True

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """Commits what the block read; rolls back when it fails, so that the connection stays
        usable for the next call after an error."""
        try:
            yield
        except BaseException as exc:
            if not self.conn.closed:
                self.conn.rollback()
            if isinstance(exc, psycopg.Error):
                self._raise_bounded(exc)
            raise
        self.conn.commit()

    def _raise_bounded(self, exc: psycopg.Error) -> None:
        """The session's limits, hit, as the errors that say so (else returns)."""
        if isinstance(exc, psycopg.errors.QueryCanceled) and "statement timeout" in str(exc):
            raise QueryTimeout(self.statement_timeout) from None
        if isinstance(exc, psycopg.errors.IdleInTransactionSessionTimeout) or (
            isinstance(exc, psycopg.OperationalError) and "idle-in-transaction timeout" in str(exc)
        ):
            raise SessionClosed(
                f"the server closed this session: it sat in an open transaction for over "
                f"{_seconds(self.idle_in_transaction_timeout)} (commit or roll back plain SQL on "
                "Client.conn); connect again"
            ) from None

    def space(self, dataset: str, *, target: Target = "asset", model: str | None = None) -> EmbeddingSpace:
        """The embedding space a search of `target` rows with `model` (None: the dataset's only
        model) orders by; SearchError when the dataset has none, or several and no model."""
        return self._space(self.catalog(dataset), target, model)

    @staticmethod
    def _space(
        catalog: Catalog,
        target: str,
        model: str | None,
        *,
        text: bool = False,
        embed_model: str | None = None,
    ) -> EmbeddingSpace:
        """The space a search orders by. A text prompt needs a model with a text tower: when
        only one of the dataset's models has one, a request naming no model gets it (the other
        could not serve the prompt at all)."""
        spaces = catalog.spaces
        if text and model is None:
            towers = {s.model for s in spaces if s.target == target and s.has_text}
            if len(towers) == 1:
                model = towers.pop()
        return choose_space(
            spaces,
            dataset=catalog.dataset_name,
            target=target,
            model=model,
            error=SearchError,
            to_embed="",
            name_one="model= (CLI: --model)",
            default=catalog.default_model,
            embed_model=embed_model or catalog.default_model,
        )

    def _similarity(self, request: SearchRequest, catalog: Catalog) -> Similarity | None:
        if all(
            v is None
            for v in (
                request.similar_to,
                request.similar_to_file,
                request.similar_to_shape,
                request.text,
                request.vector,
            )
        ):
            return None
        if request.target == "shape" and not any(s.target == "shape" for s in catalog.spaces):
            # Say why (only tags? nothing embedded yet?) instead of a bare "no embeddings".
            with self._transaction():
                reason = shapes_not_embedded(
                    self.conn,
                    catalog.dataset_id,
                    catalog.dataset_name,
                    request.model or catalog.default_model,
                )
            raise SearchError(reason)
        embed_model = None
        if not any(s.target == request.target for s in catalog.spaces):
            # The error path only: which model the hint to embed names (the one the dataset
            # remembers, e.g. after `pgsearch embed --drop`).
            with self._transaction():
                embed_model = model_to_embed(self.conn, catalog.dataset_id)
        space = self._space(
            catalog, request.target, request.model, text=request.text is not None, embed_model=embed_model
        )
        source: AssetSource | ShapeSource | VectorSource
        if request.similar_to_shape is not None:
            source = ShapeSource(int(request.similar_to_shape))  # checked: an int or digits
            self._stored_vector(catalog, space, "shape", source.shape_id, None)
        elif request.similar_to is not None:
            source = _asset_source(request.similar_to)
            vector = self._stored_vector(catalog, space, "asset", source.asset_id, source.filename)
            if vector is not None:  # shapes ordered by similarity to a whole image
                source = VectorSource(vector)
        elif request.text is not None:
            source = VectorSource(_embed_text(space.model, request.text))
        elif request.vector is not None:
            source = VectorSource(_checked_vector(request.vector, space.dim))
        else:
            assert request.similar_to_file is not None
            source = VectorSource(_embed_file(space.model, Path(request.similar_to_file)))
        return Similarity(space=space, source=source, dissimilar=request.dissimilar)

    def _stored_vector(
        self, catalog: Catalog, space: EmbeddingSpace, kind: str, item_id: int | None, filename: str | None
    ) -> list[float] | None:
        """Checks that the item to compare with exists in the dataset and has a vector of the
        space's model (a search against a missing vector would silently return an arbitrary
        order). Returns the vector when it lives in another space than the rows searched (shapes
        similar to a whole image), None when the statement can read it itself."""
        table = _space_of(catalog, kind, space.model)
        if table is None:
            raise SearchError(
                f"dataset {catalog.dataset_name!r} has no {kind} embeddings of model {space.model}"
            )
        vectors = sql.Identifier("pgsearch", table.table)
        if kind == "shape":
            statement = sql.SQL(
                "SELECT s.id, e.embedding FROM pgsearch.shapes s LEFT JOIN {} e ON e.shape_id = s.id"
                " WHERE s.dataset_id = %(d)s AND s.id = %(id)s"
            ).format(vectors)
            what = f"shape {item_id}"
        else:
            statement = sql.SQL(
                "SELECT a.id, e.embedding FROM pgsearch.assets a LEFT JOIN {} e ON e.asset_id = a.id"
                " WHERE a.dataset_id = %(d)s AND (a.id = %(id)s OR a.filename = %(name)s)"
            ).format(vectors)
            what = f"asset {filename!r}" if filename is not None else f"asset {item_id}"
        with self._transaction():
            row = self.conn.execute(
                statement, {"d": catalog.dataset_id, "id": item_id, "name": filename}
            ).fetchone()
        if row is None:
            hint = self._close_filenames(catalog, filename) if filename is not None else ""
            raise SearchError(f"dataset {catalog.dataset_name!r} has no {what}{hint}")
        if row[1] is None:
            raise SearchError(
                f"{what} has no {kind} embedding of model {space.model} (see `pgsearch status "
                f"--dataset {catalog.dataset_name}`; `pgsearch embed` computes pending ones)"
            )
        if table.id == space.id:
            return None
        return [float(v) for v in row[1].to_list()]

    def _close_filenames(self, catalog: Catalog, filename: str) -> str:
        """'; did you mean ...' from filenames sharing the name's stem, without reading them all."""
        import difflib

        stem = Path(filename).stem.translate({ord(c): "\\" + c for c in "%_\\"})
        with self._transaction():
            rows = self.conn.execute(
                "SELECT filename FROM pgsearch.assets WHERE dataset_id = %s AND filename ILIKE %s LIMIT 5000",
                (catalog.dataset_id, f"%{stem[: max(3, len(stem) // 2)]}%"),
            ).fetchall()
        close = difflib.get_close_matches(filename, [r[0] for r in rows], n=3, cutoff=0.5)
        return "; did you mean " + " or ".join(repr(c) for c in close) + "?" if close else ""

    def count_assets(self, request: SearchRequest) -> tuple[int, bool]:
        """(assets, capped): how many distinct assets the request's filter matches, whatever its
        order, limit and offset. The count reads at most MAX_LIMIT rows (assets, or shapes with
        shapes=True); capped says it stopped there, so the true number may be higher."""
        counting = dataclasses.replace(
            request,
            similar_to=None,
            similar_to_file=None,
            similar_to_shape=None,
            text=None,
            vector=None,
            dissimilar=False,
            shapes=request.target == "shape",
            limit=MAX_LIMIT,
            offset=0,
        )
        compiled = self.compile(counting)
        key = "asset_id" if request.target == "shape" else "id"
        statement = sql.SQL("SELECT count(*), count(DISTINCT {}) FROM ({}) AS matches").format(
            sql.Identifier(key), sql.SQL(compiled.sql)
        )
        with self._transaction():
            found = self.conn.execute(statement, compiled.params).fetchone()
        assert found is not None
        return int(found[1]), int(found[0]) >= MAX_LIMIT

    # -- groups ---------------------------------------------------------------------------------

    def group_names(self, dataset: str, *, limit: int = 1000) -> list[str]:
        """Names of groups the dataset's assets are in (at most `limit` of them, in no order)."""
        dataset_id = self.catalog(dataset).dataset_id
        with self._transaction():
            rows = self.conn.execute(
                "SELECT DISTINCT g FROM pgsearch.assets, unnest(groups) AS g WHERE dataset_id = %s LIMIT %s",
                (dataset_id, limit),
            ).fetchall()
        return [r[0] for r in rows]

    def has_group(self, dataset: str, group: str) -> bool:
        """Whether any asset of the dataset is in `group`."""
        dataset_id = self.catalog(dataset).dataset_id
        with self._transaction():
            found = self.conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pgsearch.assets WHERE dataset_id = %s AND %s = ANY(groups))",
                (dataset_id, group),
            ).fetchone()
        return bool(found and found[0])

    def add_to_group(self, dataset: str, asset_ids: Sequence[int], group: str) -> int:
        """Adds the assets to `group`; returns how many were not in it yet."""
        return self._edit_group(dataset, asset_ids, group, add=True)

    def remove_from_group(self, dataset: str, asset_ids: Sequence[int], group: str) -> int:
        """Removes the assets from `group`; returns how many were in it."""
        return self._edit_group(dataset, asset_ids, group, add=False)

    def edit_group(
        self,
        dataset: str,
        group: str,
        *,
        add: Sequence[int] = (),
        remove: Sequence[int] = (),
        commit: bool = True,
    ) -> tuple[int, int]:
        """Takes the assets `remove` out of `group`, then puts the assets `add` in (an asset in
        both ends up in the group); returns (added: how many were not in it yet, removed: how
        many were in it).

        commit=True: both changes in one transaction, committed (rolled back when one fails).
        commit=False: nothing is committed or rolled back; the changes stay in the connection's
        open transaction, for the caller to commit together with its own writes, e.g.

            with conn.transaction():
                client.edit_group("pets", "batch", add=new, remove=old, commit=False)
                conn.execute("INSERT ...")  # the group changes only if this succeeds too
        """
        _check_group_name(group)
        if commit:
            dataset_id = self.catalog(dataset).dataset_id
            with self._transaction():
                removed = self._group_update(dataset_id, remove, group, add=False)
                added = self._group_update(dataset_id, add, group, add=True)
            return added, removed
        if not isinstance(dataset, str) or not dataset.strip():
            raise SearchError(f"dataset= must be a dataset name (a non-empty string), not {dataset!r}")
        dataset_id = load_catalog(self.conn, dataset, keys=False).dataset_id  # read, not committed
        removed = self._group_update(dataset_id, remove, group, add=False)
        added = self._group_update(dataset_id, add, group, add=True)
        return added, removed

    def _edit_group(self, dataset: str, asset_ids: Sequence[int], group: str, *, add: bool) -> int:
        _check_group_name(group)
        catalog = self.catalog(dataset)
        with self._transaction():
            return self._group_update(catalog.dataset_id, asset_ids, group, add=add)

    def _group_update(self, dataset_id: int, asset_ids: Sequence[int], group: str, *, add: bool) -> int:
        """A group edit, in the current transaction: the assets' groups, then their memberships;
        rows changed."""
        ids = list(asset_ids)
        if not ids:
            return 0
        if add:
            statement = (
                "UPDATE pgsearch.assets SET groups = array_append(groups, %(g)s)"
                " WHERE dataset_id = %(d)s AND id = ANY(%(ids)s) AND array_position(groups, %(g)s) IS NULL"
            )
        else:
            statement = (
                "UPDATE pgsearch.assets SET groups = array_remove(groups, %(g)s)"
                " WHERE dataset_id = %(d)s AND id = ANY(%(ids)s) AND %(g)s = ANY(groups)"
            )
        changed = [
            r[0]
            for r in self.conn.execute(statement + " RETURNING id", {"g": group, "d": dataset_id, "ids": ids})
        ]
        # group_members is derived from assets.groups and written by whoever changes them
        # (sql/functions/sync_group_members.sql): here, in the same transaction.
        if changed:
            self.conn.execute("SELECT pgsearch.sync_group_members(%s, %s)", (dataset_id, changed))
        return len(changed)

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Closes the connection (the embedded server keeps running: `pgsearch db stop` stops
        it). The client is unusable afterwards; `with pgsearch.connect() as db:` closes it too."""
        self.conn.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(
    dsn: str | None = None,
    *,
    statement_timeout: float | None = STATEMENT_TIMEOUT_S,
    idle_in_transaction_timeout: float | None = IDLE_IN_TRANSACTION_TIMEOUT_S,
) -> Client:
    """A Client on `dsn`, else $PGSEARCH_DSN / $DATABASE_URL, else the embedded server.

    The connection carries the search settings (iterative HNSW scans, ef_search, ...) as
    connection options, so each search stays a single statement, and the session's bounds:
    the server cancels a statement after `statement_timeout` seconds (QueryTimeout) and ends
    the session after `idle_in_transaction_timeout` seconds idle in an open transaction
    (SessionClosed); 0 or None lifts either.
    """
    try:
        statement_s = check_timeout("statement_timeout", statement_timeout)
        idle_s = check_timeout("idle_in_transaction_timeout", idle_in_transaction_timeout)
    except ValueError as exc:
        raise SearchError(str(exc)) from None
    settings = {**SEARCH_SETTINGS, **session_limits(statement_s, idle_s)}
    conn = database.open_database(dsn, options=libpq_options(settings))
    return Client(conn, statement_timeout=statement_s, idle_in_transaction_timeout=idle_s)


def _seconds(seconds: float | None) -> str:
    if not seconds:
        return "the time allowed"
    return f"{seconds:g} s"


def _is_int(value: object) -> bool:
    """A whole number, numpy's included, but not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_group_name(group: object) -> None:
    if not isinstance(group, str) or not group.strip():
        raise SearchError("a group name must not be empty")
    # A group name is a GIN and btree key (assets.groups, group_members): as the loader checks it.
    problem = text_problem(group, INDEXED_TEXT_MAX_BYTES)
    if problem is not None:
        raise SearchError(f"group {group!r}: {problem}")


def _check_optional_str(name: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise SearchError(f"{name}= must be a string, not {value!r}")
    _check_storable(name, value)


def _check_storable(name: str, value: object) -> None:
    """A string argument PostgreSQL could not even receive (a NUL, a lone surrogate) is the
    caller's mistake, said as such, not a driver error."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise SearchError(f"{name}= {value!r}: {problem}")


def _asset_source(value: str | int) -> AssetSource:
    """An asset by id (an int, or a string of digits) or else by filename."""
    if _is_int(value):
        return AssetSource(asset_id=int(value))
    assert isinstance(value, str)
    text = value.strip()
    if text.isdigit():
        return AssetSource(asset_id=int(text))
    return AssetSource(filename=value)


def _space_of(catalog: Catalog, target: str, model: str) -> EmbeddingSpace | None:
    found = [s for s in catalog.spaces if s.target == target and s.model == model]
    return found[0] if found else None


def _checked_vector(vector: Sequence[float], dim: int) -> list[float]:
    """The translator's one check of a query vector (translator/bounds.py), as the API's error."""
    try:
        values: list[float] = check_query_vector(vector, dim)
    except QueryTypeError as error:
        raise SearchError(f"vector=: {error}") from None
    return values


def _embedder(model: str) -> Any:
    from pgsearch.loader.models import get_embedder  # cached per process

    return get_embedder(model)


def _embed_text(model: str, text: str) -> list[float]:
    if not text.strip():
        raise SearchError("the text prompt is empty")
    vector = _embedder(model).embed_texts([text])[0]
    return [float(v) for v in vector]


def _embed_file(model: str, path: Path) -> list[float]:
    from pgsearch.loader.images import open_image

    if not path.is_file():
        raise SearchError(f"{path}: no such file")
    vector = _embedder(model).embed_images([open_image(path)])[0]
    return [float(v) for v in vector]
