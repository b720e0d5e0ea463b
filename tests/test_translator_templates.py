"""The SQL templates (translator/templates/statements.sql) and the sqlglot-free checks.

The statements they produce are pinned by the golden files and run by the differential tests;
these tests pin the template machinery itself: every template parses, its names and the
builder's agree, another schema is put in place of pgsearch, and the checks callers share."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from pgsearch.translator import (
    ASSET_COLUMNS,
    MAX_LIMIT,
    SHAPE_COLUMNS,
    AssetSource,
    Catalog,
    EmbeddingSpace,
    QueryLimitError,
    QueryTypeError,
    Similarity,
    check_paging,
    check_query_vector,
    column_names,
    compile_query,
    template,
)
from pgsearch.translator.generate import Params

WIDE = EmbeddingSpace(id=9, model="m", target="asset", dim=512, table="asset_embeddings_9")


def test_templates_ship_as_package_data() -> None:
    # pyproject.toml's package-data must carry translator/templates/*.sql into the wheel.
    assert resources.files("pgsearch.translator").joinpath("templates/statements.sql").is_file()


@pytest.mark.parametrize("name", sorted(template._sections()))
def test_every_template_parses_into_slots_and_parameters(name: str) -> None:
    prepared = template._prepared(name, template.SCHEMA, frozenset())
    text = template._sections()[name]
    code = "\n".join(line.split("--")[0] for line in text.splitlines())
    assert prepared.slot_names == set(re.findall(r"(?<!:):(\w+)", code))
    assert set(prepared.params) == set(re.findall(r"%\((\w+)\)s", code))


def test_fill_refuses_names_the_template_does_not_have() -> None:
    with pytest.raises(ValueError, match="template vector_of_shape"):
        template.fill("vector_of_shape", {}, Params(), {"source_shape": 1}, dim=4)
    with pytest.raises(ValueError, match="template vector_of_shape"):
        template.fill("vector_of_shape", {"partition": template.Rows(None)}, Params(), {}, dim=4)  # type: ignore[arg-type]


def test_another_schema_replaces_pgsearch_everywhere() -> None:
    catalog = Catalog(dataset_id=1, spaces=(WIDE,), schema="tenant_a")
    sim = Similarity(WIDE, AssetSource(filename="x.jpg"))
    compiled = compile_query('"g" in groups and width > 1', catalog, similarity=sim)
    assert "pgsearch." not in compiled.sql
    assert "tenant_a.group_members" not in compiled.sql  # two conditions: the asset rows
    assert "tenant_a.embedding_spaces" in compiled.sql and "tenant_a.assets" in compiled.sql
    assert compiled.params["sample_table"] == "tenant_a.assets"


def test_without_a_filter_the_route_and_its_conditions_are_left_out() -> None:
    catalog = Catalog(dataset_id=1, spaces=(WIDE,))
    compiled = compile_query(None, catalog, similarity=Similarity(WIDE, AssetSource(asset_id=3)))
    assert "route" not in compiled.sql and compiled.route_statement() is None
    assert "exact_rows" not in compiled.params


def test_output_columns_come_from_one_list() -> None:
    assert column_names("asset") == ASSET_COLUMNS
    assert column_names("shape", similarity=True) == (*SHAPE_COLUMNS, "distance")
    compiled = compile_query(None, Catalog(dataset_id=1), target="shape")
    assert compiled.columns == SHAPE_COLUMNS


def test_paging_bounds() -> None:
    check_paging(MAX_LIMIT, 0)
    for limit, offset in ((0, 0), (MAX_LIMIT + 1, 0), (True, 0), (10, -1), (10, 1.0)):
        with pytest.raises(QueryLimitError):
            check_paging(limit, offset)


def test_query_vector_check() -> None:
    assert check_query_vector([1, 0.5], 2) == [1.0, 0.5]
    for vector, message in (
        ([1.0], "1 dimensions; the space has 2"),
        ([True, 1.0], "item 0 is True"),
        (["1", 1.0], "item 0 is '1'"),
        ([float("nan"), 1.0], "finite"),
        ([0, 0.0], "all zeros"),
    ):
        with pytest.raises(QueryTypeError, match=re.escape(message)):
            check_query_vector(vector, 2)
