"""The curation results as fields of the query language (uniqueness, mislabel_score,
suggested_label, duplicate_group) and as columns of the views: the latest run of each tool wins,
the fields combine with every path of a similarity search, --add-to-group and --sql, a tool that
never ran is an error naming the command, and migration 0007 goes down to 0006 and back."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql
from translator_reference import (
    CURATION_FIELDS,
    CurationSpaces,
    Dataset,
    build_dataset,
    select_ids,
    write_curation_results,
)

from pgsearch.catalog import load_catalog
from pgsearch.cli import cli
from pgsearch.curate.results import write_results
from pgsearch.loader.spaces import Space, ensure_model, ensure_space
from pgsearch.search_settings import libpq_options
from pgsearch.translator import (
    Catalog,
    EmbeddingSpace,
    Similarity,
    UnknownNameError,
    VectorSource,
    compile_query,
)

ALL = 100_000
K = 20
WIDE_DIM = 256  # the exact path of an asset space this wide pre-ranks by sketch

ASSET_QUERIES = [
    "uniqueness > 0.9",
    "uniqueness > 0.5",
    "not (uniqueness > 0.5)",
    "duplicate_group != null",
    "duplicate_group == null",
    'suggested_label == "cat"',
    "suggested_label == null",
    "mislabel_score > 0.5 and uniqueness < 0.5",
    "mislabel_score == 0.123",  # every item's score in the earlier mislabels run: superseded
    'duplicate_group != null or suggested_label == "car"',
]
SHAPE_QUERIES = [
    'mislabel_score > 0.5 and label == "car"',
    "not (mislabel_score > 0.5)",
    "duplicate_group != null",
    "asset.uniqueness > 0.5 and uniqueness < 0.5",
    'suggested_label == "cat" and asset.duplicate_group == null',
]


class World:
    def __init__(self, data: Dataset, spaces: CurationSpaces, wide: Space, vectors: dict[str, np.ndarray]):
        self.data = data
        self.spaces = spaces
        self.wide = wide
        self.vectors = vectors  # "wide", "asset", "shape": float64 copies of the stored float16 vectors
        self.catalog: Catalog = Catalog(data.id)


def _vectors(conn: psycopg.Connection, space: Space, ids: list[int], rng: np.random.Generator) -> np.ndarray:
    # Clustered, as image embeddings are, so that sketches and the graph have structure to find.
    centres = rng.normal(size=(8, space.dim))
    vectors = (centres[rng.integers(0, 8, len(ids))] + 0.5 * rng.normal(size=(len(ids), space.dim))).astype(
        np.float16
    )
    parent = "asset_embeddings" if space.target == "asset" else "shape_embeddings"
    key = "asset_id" if space.target == "asset" else "shape_id"
    with conn.cursor().copy(
        sql.SQL("COPY {} (space_id, {}, embedding) FROM STDIN").format(
            sql.Identifier("pgsearch", parent), sql.Identifier(key)
        )
    ) as copy:
        for item_id, v in zip(ids, vectors, strict=True):
            copy.write_row([space.id, item_id, "[" + ",".join(repr(float(x)) for x in v) + "]"])
    conn.execute("SELECT pgsearch.build_embedding_index(%s)", (space.id,))
    return vectors.astype(np.float64)


@pytest.fixture
def world(conn: psycopg.Connection) -> World:
    data = build_dataset(conn, n_assets=300)
    spaces = write_curation_results(conn, data)
    rng = np.random.default_rng(4)
    wide = ensure_space(conn, data.id, ensure_model(conn, "ref-wide", WIDE_DIM, False, {}), "asset")
    asset_ids = [a["id"] for a in data.assets]
    shape_ids = [s["id"] for s in data.shapes]
    vectors = {
        "wide": _vectors(conn, wide, asset_ids, rng),
        "asset": _vectors(conn, spaces.asset, asset_ids, rng),
        "shape": _vectors(conn, spaces.shape, shape_ids, rng),
    }
    conn.execute("ANALYZE")
    conn.commit()
    w = World(data, spaces, wide, vectors)
    w.catalog = load_catalog(conn, "ref")
    return w


def _rows(world: World, target: str) -> list[dict[str, Any]]:
    return world.data.assets if target == "asset" else world.data.shapes


def _space(world: World, space: Space) -> EmbeddingSpace:
    found = [s for s in world.catalog.spaces if s.id == space.id]
    assert len(found) == 1
    return found[0]


# -- the catalog and the plain statement --------------------------------------------------------


def test_catalog_names_the_space_of_each_latest_run(world: World) -> None:
    spaces = world.spaces
    assert sorted(world.catalog.score_spaces) == sorted(
        [
            ("asset", "duplicates", spaces.asset.id),
            ("asset", "mislabels", spaces.asset.id),
            ("asset", "outliers", spaces.asset.id),  # not older_asset: its run came first
            ("shape", "duplicates", spaces.shape.id),
            ("shape", "mislabels", spaces.shape.id),
            ("shape", "outliers", spaces.shape.id),
        ]
    )
    assert world.catalog.score_space("asset", "outliers") == spaces.asset.id
    assert world.catalog.score_space("asset", "curate") is None


@pytest.mark.parametrize("target", ["asset", "shape"])
def test_fields_select_what_python_selects(conn: psycopg.Connection, world: World, target: str) -> None:
    rows = _rows(world, target)
    for text in ASSET_QUERIES if target == "asset" else SHAPE_QUERIES:
        compiled = compile_query(text, world.catalog, target=target, limit=ALL)
        expected = select_ids(text, world.catalog, rows, target)
        got = [r[0] for r in conn.execute(compiled.sql, compiled.params)]
        assert got == expected, f"{text!r}\n{compiled.inline()}"
        # --sql: the inlined statement runs as is, with the same answer.
        assert [r[0] for r in conn.execute(compiled.inline())] == got
        if text != "mislabel_score == 0.123":
            assert 0 < len(got) < len(rows), f"{text!r} selects {len(got)} of {len(rows)}: not a test"
        else:
            assert got == []  # the earlier run's scores are gone


def test_latest_run_wins_across_spaces(conn: psycopg.Connection, world: World) -> None:
    """outliers ran on another model's space first: its scores stay in their partition, unread."""
    older = conn.execute(
        sql.SQL("SELECT item_id, uniqueness FROM {}").format(
            sql.Identifier("pgsearch", f"uniqueness_{world.spaces.older_asset.id}")
        )
    ).fetchall()
    assert len(older) == len(world.data.assets)
    compiled = compile_query("uniqueness >= 0", world.catalog, limit=ALL)
    got = {r[0] for r in conn.execute(compiled.sql, compiled.params)}
    assert got == {a["id"] for a in world.data.assets if a["uniqueness"] is not None} != {r[0] for r in older}


# -- similarity: every path ---------------------------------------------------------------------


def _assert_topk(got: list[tuple[int, float]], dist: dict[int, float], k: int, descending: bool) -> None:
    assert len(got) == min(k, len(dist))
    ranked = sorted(dist.values(), reverse=descending)
    kth = ranked[len(got) - 1]
    for item_id, reported in got:
        assert item_id in dist, "a row outside the filter came back"
        assert abs(reported - dist[item_id]) < 2e-3
        assert dist[item_id] <= kth + 2e-3 if not descending else dist[item_id] >= kth - 2e-3
    distances = [d for _, d in got]
    assert distances == sorted(distances, reverse=descending)


def _similar_cases(world: World) -> list[tuple[str, str, str, bool]]:
    """(query, target, vectors, dissimilar)"""
    cases = []
    for text in ASSET_QUERIES[:8]:
        for vectors in ("wide", "asset"):
            cases += [(text, "asset", vectors, False), (text, "asset", vectors, True)]
    for text in SHAPE_QUERIES:
        cases += [(text, "shape", "shape", False), (text, "shape", "shape", True)]
    return cases


@pytest.mark.parametrize("session", ["tuned", "plain"])
def test_similarity_returns_the_true_top_k_in_every_path(dsn: str, world: World, session: str) -> None:
    """The route sends these small filtered sets to the exact path; forced to the walk (the route's
    thresholds set to 0), a tuned session answers from the HNSW walk and a plain one (no iterative
    scan) comes up short and falls back to the exact path. Sketched (256-d asset space) and plain
    exact paths, least similar too: always the true top k of the matching rows."""
    rng = np.random.default_rng(12)
    options: dict[str, Any] = {"options": libpq_options()} if session == "tuned" else {}
    walks = 0
    with psycopg.connect(dsn, **options) as conn:
        for text, target, name, dissimilar in _similar_cases(world):
            rows = _rows(world, target)
            space = {"wide": world.wide, "asset": world.spaces.asset, "shape": world.spaces.shape}[name]
            vectors = world.vectors[name]
            q = rng.normal(size=space.dim).astype(np.float16).astype(np.float64)
            sim = Similarity(_space(world, space), VectorSource(q.tolist()), dissimilar=dissimilar)
            compiled = compile_query(text, world.catalog, target=target, similarity=sim, limit=K)
            matching = set(select_ids(text, world.catalog, rows, target))
            qn = q / np.linalg.norm(q)
            all_dist = 1.0 - (vectors @ qn) / np.linalg.norm(vectors, axis=1)
            dist = {r["id"]: float(d) for r, d in zip(rows, all_dist, strict=True) if r["id"] in matching}
            variants = [compiled.params]
            if "exact_rows" in compiled.params:
                variants.append({**compiled.params, "exact_rows": 0, "exact_rows_max": 0})
            answers = []
            for n, params in enumerate(variants):
                answers.append([(r[0], r[-1]) for r in conn.execute(compiled.sql, params)])
                _assert_topk(answers[-1], dist, K, dissimilar)
                route = compiled.route_statement()
                if route is not None:
                    # The route sends these small sets to the exact path; forced, to the walk, whose
                    # statement (the filter and its joins) finds them all in a tuned session.
                    assert conn.execute(route, params).fetchone() == (n == 0,)
                    plan = [r[0] for r in conn.execute("EXPLAIN ANALYZE " + compiled.sql, params)]
                    found = re.search(r"actual time=\S+ rows=(\d+)", plan[plan.index("  CTE ann") + 1])
                    assert found, "\n".join(plan)
                    if session == "tuned" or n == 0:
                        assert int(found[1]) == (0 if n == 0 else min(K, len(dist))), "\n".join(plan)
                    walks += n
            inline = [(r[0], r[-1]) for r in conn.execute(compiled.inline())]
            assert [i for i, _ in inline] == [i for i, _ in answers[0]], text
    assert walks == sum(1 for *_, dissimilar in _similar_cases(world) if not dissimilar)


# -- the command line ---------------------------------------------------------------------------


def test_add_to_group_and_sql(dsn: str, world: World) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "query",
            "duplicate_group != null",
            "-d",
            "ref",
            "--add-to-group",
            "dups",
            "-n",
            "1000",
            "-f",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    expected = select_ids("duplicate_group != null", world.catalog, world.data.assets, "asset")
    with psycopg.connect(dsn) as conn:
        grouped = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM pgsearch.assets WHERE 'dups' = ANY(groups) ORDER BY id",
            )
        ]
    assert grouped == expected and grouped
    shapes = runner.invoke(
        cli, ["query", 'mislabel_score > 0.5 and label == "car"', "-d", "ref", "--shapes", "--sql"]
    )
    assert shapes.exit_code == 0, shapes.output
    with psycopg.connect(dsn) as conn:
        got = [r[0] for r in conn.execute(shapes.output)]
    assert (
        got
        == select_ids('mislabel_score > 0.5 and label == "car"', world.catalog, world.data.shapes, "shape")[
            :100
        ]
    )
    assert got


# -- a tool that never ran ----------------------------------------------------------------------


def test_a_tool_that_never_ran_names_the_command(conn: psycopg.Connection) -> None:
    ds = conn.execute("INSERT INTO pgsearch.datasets (name) VALUES ('new pets') RETURNING id").fetchone()[0]
    ids = [
        conn.execute(
            "INSERT INTO pgsearch.assets (dataset_id, filename) VALUES (%s, %s) RETURNING id",
            (ds, f"{i}.jpg"),
        ).fetchone()[0]
        for i in range(4)
    ]
    space = ensure_space(conn, ds, ensure_model(conn, "toy", 4, False, {}), "asset")
    conn.commit()
    catalog = load_catalog(conn, "new pets")
    assert catalog.score_spaces == ()
    with pytest.raises(UnknownNameError) as error:
        compile_query("not (uniqueness > 0.5)", catalog)
    assert "run `pgsearch outliers --dataset 'new pets'`" in str(error.value)
    assert error.value.column == 6
    with pytest.raises(UnknownNameError, match="pgsearch mislabels --dataset 'new pets' --shapes"):
        compile_query('suggested_label == "cat"', catalog, target="shape")
    with pytest.raises(UnknownNameError, match="no duplicates run on the assets"):
        compile_query("asset.duplicate_group != null", catalog, target="shape")

    write_results(
        conn,
        space,
        "outliers",
        [(i, 0.25 * n, 0.1, None) for n, i in enumerate(ids)],
        items=4,
        flagged=1,
        params={},
        started=0.0,
    )
    catalog = load_catalog(conn, "new pets")
    compiled = compile_query("uniqueness >= 0.5", catalog)
    assert [r[0] for r in conn.execute(compiled.sql, compiled.params)] == ids[2:]
    with pytest.raises(UnknownNameError, match="pgsearch mislabels"):
        compile_query("uniqueness >= 0.5 and mislabel_score > 0", catalog)
    result = CliRunner().invoke(cli, ["translate", "duplicate_group != null", "-d", "new pets"])
    assert result.exit_code == 1 and "pgsearch duplicates --dataset 'new pets'" in result.output
    assert "Traceback" not in result.output


# -- the views ----------------------------------------------------------------------------------


def _real(value: float | None) -> np.float32 | None:
    return None if value is None else np.float32(value)


def test_views_show_the_latest_results(conn: psycopg.Connection, world: World) -> None:
    for view, key, rows in (
        ("v_assets", "asset_id", world.data.assets),
        ("v_shapes", "shape_id", world.data.shapes),
    ):
        got = {
            r[0]: (_real(r[1]), _real(r[2]), r[3], r[4])
            for r in conn.execute(
                sql.SQL(
                    "SELECT {}, uniqueness, mislabel_score, suggested_label, duplicate_group FROM {}"
                    " WHERE dataset = 'ref'"
                ).format(sql.Identifier(key), sql.Identifier("pgsearch", view))
            )
        }
        expected = {
            r["id"]: (
                _real(r["uniqueness"]),
                _real(r["mislabel_score"]),
                r["suggested_label"],
                r["duplicate_group"],
            )
            for r in rows
        }
        assert got == expected, view
    # The new columns come last: the 0006 columns keep their names and order.
    columns = [
        r[0]
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'pgsearch.v_assets'::regclass AND attnum > 0"
            " ORDER BY attnum"
        )
    ]
    assert columns[-5:] == ["dataset_id", *CURATION_FIELDS]

    members = conn.execute(
        "SELECT target, duplicate_group, item_id, filename, representative, group_size, kind"
        " FROM pgsearch.v_duplicate_groups WHERE dataset = 'ref' ORDER BY target, item_id"
    ).fetchall()
    expected_members = []
    for target, rows in (("asset", world.data.assets), ("shape", world.data.shapes)):
        sizes: dict[int, int] = {}
        for r in rows:
            if r["duplicate_group"] is not None:
                sizes[r["duplicate_group"]] = sizes.get(r["duplicate_group"], 0) + 1
        for r in sorted(rows, key=lambda r: r["id"]):
            if r["duplicate_group"] is not None:
                filename = r["filename"] if target == "asset" else r["asset"]["filename"]
                group = r["duplicate_group"]
                expected_members.append((target, group, r["id"], filename, group == r["id"], sizes[group]))
    assert [m[:6] for m in members] == expected_members
    assert all(size >= 2 for *_, size in expected_members)
    assert len({(m[0], m[1], m[6]) for m in members}) == len(
        {(m[0], m[1]) for m in members}
    )  # one kind a group

    mislabels = conn.execute(
        "SELECT target, item_id, label, suggested_label, mislabel_score FROM pgsearch.v_mislabels"
        " WHERE dataset = 'ref' ORDER BY target, item_id"
    ).fetchall()
    expected_mislabels = [
        (target, r["id"], r["suggested_label"], np.float32(r["mislabel_score"]))
        for target, rows in (("asset", world.data.assets), ("shape", world.data.shapes))
        for r in sorted(rows, key=lambda r: r["id"])
        if r["mislabel_score"] is not None
    ]
    assert [(m[0], m[1], m[3], np.float32(m[4])) for m in mislabels] == expected_mislabels
    shape_labels = {s["id"]: s["label"] for s in world.data.shapes}
    assert all(m[2] == shape_labels[m[1]] for m in mislabels if m[0] == "shape")

    runs = conn.execute(
        "SELECT target, tool, model, is_latest, space_id FROM pgsearch.v_curation_runs"
        " WHERE dataset = 'ref' ORDER BY run_id"
    ).fetchall()
    assert len(runs) == 2 * 5  # outliers, outliers, mislabels, mislabels, duplicates per target
    latest = {(t, tool): space for t, tool, _, is_latest, space in runs if is_latest}
    assert latest == {(t, tool): space for t, tool, space in world.catalog.score_spaces}
    assert [r[2] for r in runs[:2]] == ["ref-dino", "ref-clip"]


# -- the migration ------------------------------------------------------------------------------


def _view_state(conn: psycopg.Connection) -> list[Any]:
    return conn.execute(
        """SELECT c.relname, pg_get_viewdef(c.oid), obj_description(c.oid, 'pg_class'), c.relacl::text[],
                  ARRAY(SELECT format('%s %s %s', a.attname, format_type(a.atttypid, a.atttypmod),
                                      col_description(c.oid, a.attnum))
                          FROM pg_attribute AS a WHERE a.attrelid = c.oid AND a.attnum > 0 ORDER BY a.attnum)
             FROM pg_class AS c
            WHERE c.relnamespace = 'pgsearch'::regnamespace AND c.relkind = 'v'
            ORDER BY c.relname"""
    ).fetchall()
