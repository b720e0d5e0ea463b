"""The catalog the translator is handed: keys collected on small datasets, accepted on large ones."""

from __future__ import annotations

import psycopg
import pytest

from pgsearch import catalog
from pgsearch.translator import UnknownNameError, compile_query


def _dataset(conn: psycopg.Connection, rows: int) -> None:
    d = conn.execute("INSERT INTO pgsearch.datasets (name) VALUES ('d') RETURNING id").fetchone()[0]
    for i in range(rows):
        conn.execute(
            "INSERT INTO pgsearch.assets (dataset_id, filename, metadata) VALUES (%s, %s, %s)",
            (d, f"{i}.jpg", psycopg.types.json.Jsonb({"camera": "a", f"k{i % 3}": i})),
        )


def test_keys_are_collected_on_a_small_dataset(conn: psycopg.Connection) -> None:
    _dataset(conn, 9)
    cat = catalog.load_catalog(conn, "d")
    assert cat.metadata_keys == {"camera", "k0", "k1", "k2"}
    assert cat.attribute_keys == frozenset()
    with pytest.raises(UnknownNameError, match="camra.*did you mean.*camera"):
        compile_query("metadata.camra == 'a'", cat)


def test_keys_are_not_collected_past_the_bound(
    conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    _dataset(conn, 9)
    monkeypatch.setattr(catalog, "KEY_SCAN_ROWS", 8)
    cat = catalog.load_catalog(conn, "d")
    assert cat.metadata_keys is None
    compile_query("metadata.camra == 'a'", cat)  # accepted: matches nothing
    monkeypatch.setattr(catalog, "KEY_SCAN_ROWS", 9)
    assert catalog.load_catalog(conn, "d").metadata_keys == {"camera", "k0", "k1", "k2"}
