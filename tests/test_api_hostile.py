"""The Python API against a database that changes under it and against arguments of the wrong
kind: a long-lived client stays right, and every mistake is a pgsearch.PgsearchError whose
message names the argument (never a psycopg error, a TypeError, or a dead connection)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

import pgsearch
from pgsearch.api import Client, SearchError
from pgsearch.cli import cli
from pgsearch.demo_data import generate
from pgsearch.loader.pipeline import LoadOptions, load_folder


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path, Path]:
    return generate(tmp_path / "data", n=24, seed=5)


def _load(dsn: str, data: tuple[Path, Path, Path], *, annotations: bool = True) -> None:
    images, coco, metadata = data
    with pgsearch.db.connect(dsn) as conn:
        load_folder(
            conn,
            LoadOptions(
                root=str(images),
                dataset="x",
                annotations=str(coco) if annotations else None,
                format="coco" if annotations else None,
                metadata=str(metadata),
                model="pixels",
                workers=0,
            ),
        )


@pytest.fixture
def client(dsn: str) -> Iterator[Client]:
    with pgsearch.connect(dsn) as c:
        yield c


def _drop(dsn: str, name: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgsearch.drop_dataset(%s)", (name,))


# -- a catalog as it is now ---------------------------------------------------------------------


def test_a_dataset_dropped_and_loaded_again_is_seen(
    dsn: str, client: Client, data: tuple[Path, Path, Path]
) -> None:
    _load(dsn, data)
    first = client.query(dataset="x", limit=100)
    near = client.query(dataset="x", similar_to=first[0]["filename"], limit=3)
    assert len(first) == 24 and len(near) == 3

    _drop(dsn, "x")
    with pytest.raises(pgsearch.PgsearchError, match="no dataset named 'x'"):
        client.query(dataset="x")
    _load(dsn, data)

    again = client.query(dataset="x", limit=100)
    assert len(again) == 24 and {r["id"] for r in again}.isdisjoint({r["id"] for r in first})
    near = client.query(dataset="x", similar_to=again[0]["filename"], limit=3)
    assert len(near) == 3 and near[0]["id"] == again[0]["id"]
    assert client.query("car >= 0", dataset="x", shapes=False, limit=100)


def test_labels_and_keys_added_later_are_known(
    dsn: str, client: Client, data: tuple[Path, Path, Path]
) -> None:
    _load(dsn, data, annotations=False)
    assert client.query(dataset="x", limit=5)
    with pytest.raises(pgsearch.PgsearchError, match="neither a field nor a label"):
        client.query("car >= 1", dataset="x")
    _load(dsn, data)  # the same images, now with their annotations: labels appear
    with psycopg.connect(dsn) as conn:
        expected = conn.execute(
            "SELECT count(*) FROM pgsearch.assets WHERE (label_counts->>'car')::int >= 1"
        ).fetchone()
    assert expected is not None and expected[0] > 0
    assert len(client.query("car >= 1", dataset="x", limit=1000)) == expected[0]

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            'UPDATE pgsearch.assets SET metadata = metadata || \'{"reviewer": "ann"}\''
            " WHERE id = (SELECT min(id) FROM pgsearch.assets)"
        )
    rows = client.query('metadata.reviewer == "ann"', dataset="x")
    assert len(rows) == 1
    with pytest.raises(pgsearch.PgsearchError, match="unknown metadata key 'reviwer'"):
        client.query('metadata.reviwer == "ann"', dataset="x")


def test_catalog_refresh_still_works(dsn: str, client: Client, data: tuple[Path, Path, Path]) -> None:
    _load(dsn, data)
    before = client.catalog("x")
    assert client.catalog("x", refresh=True) == before
    _drop(dsn, "x")
    _load(dsn, data)
    assert client.catalog("x").dataset_id != before.dataset_id
    assert client.catalog("x", refresh=True).dataset_id != before.dataset_id


# -- one root for every error -------------------------------------------------------------------


def test_every_error_shares_the_exported_root() -> None:
    from pgsearch import errors
    from pgsearch.loader.errors import LoadInputError
    from pgsearch.translator import (
        QueryError,
        QueryLimitError,
        QuerySyntaxError,
        QueryTypeError,
        UnknownNameError,
    )

    for cls in (
        QueryError,
        QuerySyntaxError,
        UnknownNameError,
        QueryTypeError,
        QueryLimitError,
        SearchError,
        LoadInputError,
        errors.ConfigError,
        errors.NotFound,
        errors.SchemaError,
        errors.ServerError,
        errors.DatabaseUnavailable,
    ):
        assert issubclass(cls, pgsearch.PgsearchError), cls
    assert errors.PgsearchError is pgsearch.PgsearchError


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("width >", "line 1"),
        ("nosuch > 1", "neither a field nor a label"),
        ("filename > 3", None),
        ("(" * 200 + "width > 1" + ")" * 200, None),
    ],
)
def test_bad_queries_are_pgsearch_errors(
    dsn: str, client: Client, data: tuple[Path, Path, Path], query: str, message: str | None
) -> None:
    _load(dsn, data)
    with pytest.raises(pgsearch.PgsearchError, match=message):
        client.query(query, dataset="x")
    assert len(client.query(dataset="x", limit=2)) == 2


# -- arguments of the wrong kind ----------------------------------------------------------------

BAD_ARGUMENTS: list[tuple[dict[str, Any], str]] = [
    ({"similar_to": True}, "similar_to="),
    ({"similar_to": 1.5}, "similar_to="),
    ({"similar_to": ""}, "similar_to="),
    ({"similar_to_shape": "abc"}, "similar_to_shape="),
    ({"similar_to_shape": 1.0}, "similar_to_shape="),
    ({"similar_to_file": 7}, "similar_to_file="),
    ({"text": 5}, "text="),
    ({"vector": "0.1,0.2"}, "vector="),
    ({"vector": 3}, "vector="),
    ({"vector": [0.1, "a"]}, "vector="),
    ({"model": 1}, "model="),
    ({"dissimilar": "yes", "similar_to": 1}, "dissimilar="),
    ({"shapes": 1}, "shapes="),
    ({"limit": None}, "limit must be a whole number from 1 to 100000, not None"),
    ({"limit": "5"}, "limit must be a whole number from 1 to 100000, not '5'"),
    ({"limit": 2.0}, "limit must be a whole number from 1 to 100000, not 2.0"),
    ({"limit": True}, "limit must be a whole number from 1 to 100000, not True"),
    ({"limit": 0}, "limit must be a whole number from 1 to 100000, not 0"),
    ({"limit": -1}, "limit must be a whole number from 1 to 100000, not -1"),
    ({"limit": 100_001}, "limit must be a whole number from 1 to 100000, not 100001; page with offset"),
    ({"offset": -1}, "offset must be a whole number from 0"),
    ({"offset": "2"}, "offset must be a whole number from 0"),
    ({"dataset": None}, "dataset= must be a dataset name"),
    ({"dataset": ""}, "dataset= must be a dataset name"),
    ({"dataset": 3}, "dataset= must be a dataset name"),
    ({"similar": 1}, "unknown argument similar"),
]


@pytest.mark.parametrize(("arguments", "message"), BAD_ARGUMENTS)
def test_wrong_argument_types_name_the_argument(
    dsn: str, client: Client, data: tuple[Path, Path, Path], arguments: dict[str, Any], message: str
) -> None:
    _load(dsn, data)
    arguments = {"dataset": "x", **arguments}
    with pytest.raises(SearchError) as info:
        client.query(**arguments)
    assert message in str(info.value)
    # The connection is not left in a failed transaction.
    assert len(client.query(dataset="x", limit=2)) == 2


def test_a_query_that_is_not_a_string(dsn: str, client: Client, data: tuple[Path, Path, Path]) -> None:
    _load(dsn, data)
    with pytest.raises(SearchError, match="query= must be a string"):
        client.query(5, dataset="x")  # type: ignore[arg-type]


def test_numpy_numbers_are_accepted(dsn: str, client: Client, data: tuple[Path, Path, Path]) -> None:
    import numpy as np

    _load(dsn, data)
    first = client.query(dataset="x", limit=1)[0]
    rows = client.query(dataset="x", similar_to=np.int64(first["id"]), limit=np.int32(3))
    assert len(rows) == 3 and rows[0]["id"] == first["id"]


def test_limit_zero_from_the_cli_is_the_same_error(dsn: str, data: tuple[Path, Path, Path]) -> None:
    _load(dsn, data)
    result = CliRunner().invoke(cli, ["query", "-d", "x", "--limit", "0"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "limit" in result.output and "0" in result.output


def test_several_models_name_the_api_argument(
    dsn: str, client: Client, data: tuple[Path, Path, Path]
) -> None:
    _load(dsn, data)
    with psycopg.connect(dsn, autocommit=True) as conn:
        model = conn.execute(
            "INSERT INTO pgsearch.embedding_models (name, dim) VALUES ('second', 8) RETURNING id"
        ).fetchone()
        assert model is not None
        conn.execute(
            "SELECT pgsearch.ensure_embedding_space(d.id, %s, 'asset') FROM pgsearch.datasets d"
            " WHERE d.name = 'x'",
            (model[0],),
        )
    first = client.query(dataset="x", limit=1)[0]["id"]
    with pytest.raises(SearchError, match=r"several models \(pixels, second\); name one with model="):
        client.query(dataset="x", similar_to=first)
    assert len(client.query(dataset="x", similar_to=first, model="pixels", limit=2)) == 2


# -- results ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shapes", [False, True])
def test_an_empty_result_keeps_its_columns(
    dsn: str, client: Client, data: tuple[Path, Path, Path], shapes: bool
) -> None:
    pytest.importorskip("pandas")
    _load(dsn, data)
    full = client.query(dataset="x", shapes=shapes, limit=1)
    empty = client.query("area < 0" if shapes else "width < 0", dataset="x", shapes=shapes)
    assert len(empty) == 0
    frame = empty.to_dataframe()
    assert frame.shape == (0, len(full[0])) and list(frame.columns) == list(full[0]) == empty.columns
    assert list(full.to_dataframe().columns) == list(full[0])


def test_a_failed_statement_leaves_the_client_usable(
    dsn: str, client: Client, data: tuple[Path, Path, Path]
) -> None:
    _load(dsn, data)
    ids = [r["id"] for r in client.query(dataset="x", limit=3)]
    client.conn.execute("SET default_transaction_read_only = on")
    client.conn.commit()
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        client.add_to_group("x", ids, "picked")
    assert client.conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert [r["id"] for r in client.query(dataset="x", limit=3)] == ids
