"""Hostile input to `pgsearch load` (issue 15, items 5 and 6).

Values: hypothesis writes COCO, YOLO, VOC and CSV / JSONL metadata files full of what PostgreSQL
refuses (NUL, lone surrogates, control characters, NaN and Infinity, deep nesting, bytes that are
not UTF-8) and every load must either stop with `Error: ...` naming one of those files, the
database unchanged, or complete with every image loaded: never a traceback, never a part.

Files: links out of the folder, links to devices, FIFOs, undecodable names, oversized files: the
load finishes promptly, reporting each, and reads none of them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from imagegen import make_folder
from psycopg.types.json import Jsonb

from pgsearch.cli import cli
from pgsearch.loader import images
from pgsearch.loader.annotations import json_problem, text_problem
from pgsearch.loader.scan import SYMLINK_OUTSIDE, FileRefused, read_regular, scan

# --- helpers ------------------------------------------------------------------------------------

TABLES = ("datasets", "assets", "shapes", "labels", "group_members")


def counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM pgsearch.{t}").fetchone()[0] for t in TABLES}


def load(*args: str) -> Result:
    # catch_exceptions: a traceback becomes result.exception, which the checks below report.
    return CliRunner().invoke(cli, ["load", *args, "--workers", "0", "--no-embed", "--json"])


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail, instead of hanging the suite, if a FIFO or /dev/zero is read after all."""

    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def check_outcome(dsn: str, before: dict[str, int], result: Result, dataset: str, files: list[str]) -> None:
    """Either `Error: ...` naming one of `files` and nothing written, or every image loaded."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        raise AssertionError(
            "".join(traceback.format_exception(result.exception)) + f"\noutput: {result.output}"
        )
    event("refused" if result.exit_code else "loaded")
    if result.exit_code != 0:
        assert result.exit_code == 1, result.output
        assert result.output.startswith("Error: ") and "Traceback" not in result.output, result.output
        assert any(name in result.output for name in files), (files, result.output)
        assert counts(dsn) == before, result.output
        return
    summary = json.loads(result.stdout)
    assert summary["assets"]["new"] == len(IMAGES) and summary["assets"]["failed"] == 0, summary
    with psycopg.connect(dsn) as conn:
        n = conn.execute(
            "SELECT count(*) FROM pgsearch.assets a JOIN pgsearch.datasets d ON d.id = a.dataset_id"
            " WHERE d.name = %s AND a.load_error IS NULL",
            (dataset,),
        ).fetchone()[0]
    assert n == len(IMAGES)


# Shared by every example: 3 tiny images, made once.
IMAGES = ("img_0000.png", "img_0001.png", "img_0002.png")
W, H = 16, 12


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile-images")
    folder = make_folder(root, len(IMAGES), sizes=((W, H),), formats=("PNG",))
    assert tuple(folder.filenames) == IMAGES
    return root


class Names:
    """A fresh dataset name and file folder per example (hypothesis reuses the test's fixtures)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.n = 0

    def next(self) -> tuple[str, Path]:
        self.n += 1
        folder = self.base / f"ex{self.n}"
        folder.mkdir()
        return f"h{self.n}", folder


@pytest.fixture
def names(tmp_path: Path) -> Names:
    return Names(tmp_path)


# --- strategies ---------------------------------------------------------------------------------

# Text with what PostgreSQL refuses (NUL, lone surrogates), what it keeps (other control
# characters, line separators) and plain text, which must load.
hostile_text = st.one_of(
    st.text(max_size=8),
    st.text(st.characters(categories=["Cc", "Cs", "Zl", "Zp", "Co"]), max_size=4),
    st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udce9", "\u2028", "\r\n", "\x1b[31m", "n" * 1200, "cat"]),
)
plain_label = st.sampled_from(["cat", "dog", "bird"])
label = st.one_of(plain_label, plain_label, hostile_text)

# Numbers a JSON file may hold, NaN, Infinity and 1e400 (read as Infinity) among them.
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.sampled_from([10**400, -(10**30), 0, 1, 1e300]),
)


class Deep:
    """A list nested `depth` levels deep, written as text (json.dumps itself would recurse)."""

    def __init__(self, depth: int) -> None:
        self.depth = depth


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, hostile_text),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(hostile_text, children, max_size=3),
    max_leaves=8,
) | st.sampled_from([Deep(70), Deep(5000)])


def dumps(value: Any) -> str:
    """JSON text with NaN / Infinity allowed and lone surrogates escaped (the file stays UTF-8)."""
    deep: list[Deep] = []

    def default(obj: Any) -> Any:
        if isinstance(obj, Deep):
            deep.append(obj)
            return f"@@deep{len(deep) - 1}@@"
        raise TypeError(type(obj))

    text = json.dumps(value, default=default, allow_nan=True)
    for i, d in enumerate(deep):
        text = text.replace(f'"@@deep{i}@@"', "[" * d.depth + "]" * d.depth)
    return text


def number_text(v: Any) -> str:
    return repr(v) if not isinstance(v, int) or abs(v) < 10**50 else "1e400"


coordinate = st.one_of(st.floats(0, 10), st.floats(0, 10), numbers)
bbox = st.one_of(
    st.tuples(st.floats(0, 8), st.floats(0, 6), st.floats(0, 8), st.floats(0, 6)).map(list),
    st.lists(coordinate, min_size=4, max_size=4),
)
image_ref = st.one_of(st.sampled_from(IMAGES), st.sampled_from(IMAGES), hostile_text)
skip_bad = st.booleans()

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


# --- values: the property tests -----------------------------------------------------------------


@SETTINGS
@given(
    categories=st.lists(label, min_size=1, max_size=3),
    images_=st.lists(st.tuples(image_ref, st.one_of(st.just(W), numbers)), min_size=1, max_size=3),
    annotations=st.lists(
        st.tuples(
            st.integers(0, 3),
            st.integers(0, 3),
            bbox,
            st.one_of(st.none(), json_values),
            st.one_of(st.none(), numbers),
        ),
        max_size=4,
    ),
    skip=skip_bad,
)
def test_coco_with_hostile_values(
    dsn: str, image_root: Path, names: Names, categories: Any, images_: Any, annotations: Any, skip: bool
) -> None:
    dataset, folder = names.next()
    doc: dict[str, Any] = {
        "categories": [{"id": i, "name": n} for i, n in enumerate(categories)],
        "images": [{"id": i, "file_name": f, "width": w, "height": H} for i, (f, w) in enumerate(images_)],
        "annotations": [],
    }
    for image_id, category_id, box, attributes, score in annotations:
        ann: dict[str, Any] = {"image_id": image_id, "category_id": category_id, "bbox": box}
        if attributes is not None:
            ann["attributes"] = attributes if isinstance(attributes, dict) else {"v": attributes}
        if score is not None:
            ann["score"] = score
        doc["annotations"].append(ann)
    (folder / "coco.json").write_text(dumps(doc))
    before = counts(dsn)
    args = [str(image_root), "-d", dataset, "-a", str(folder / "coco.json"), "--format", "coco"]
    result = load(*args, *(["--skip-bad-annotations"] if skip else []))
    check_outcome(dsn, before, result, dataset, ["coco.json"])


@SETTINGS
@given(
    classes=st.lists(label, min_size=1, max_size=3),
    raw_classes=st.sampled_from([False, False, False, True]),  # a classes.txt that is not UTF-8
    lines=st.lists(
        st.lists(
            st.one_of(st.integers(0, 3).map(str), coordinate.map(number_text), hostile_text),
            min_size=1,
            max_size=7,
        ),
        max_size=4,
    ),
    skip=skip_bad,
)
def test_yolo_with_hostile_values(
    dsn: str, image_root: Path, names: Names, classes: Any, raw_classes: bool, lines: Any, skip: bool
) -> None:
    dataset, folder = names.next()
    labels = folder / "labels"
    labels.mkdir()
    text = "\n".join(classes) + "\n"
    # surrogatepass writes a lone surrogate as the bytes of one: not UTF-8, as the file would be
    data = text.encode("utf-8", "surrogatepass")
    (labels / "classes.txt").write_bytes(data + (b"caf\xe9\n" if raw_classes else b""))
    body = "\n".join(" ".join(tokens) for tokens in lines) + "\n"
    (labels / "img_0000.txt").write_bytes(body.encode("utf-8", "surrogatepass"))
    (labels / "img_0001.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    before = counts(dsn)
    args = [str(image_root), "-d", dataset, "-a", str(labels), "--format", "yolo"]
    result = load(*args, *(["--skip-bad-annotations"] if skip else []))
    check_outcome(dsn, before, result, dataset, ["classes.txt", "img_0000.txt", "img_0001.txt"])


def _xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@SETTINGS
@given(
    objects=st.lists(
        st.tuples(
            label, st.lists(coordinate.map(number_text) | hostile_text, min_size=4, max_size=4), hostile_text
        ),
        max_size=3,
    ),
    as_reference=st.booleans(),
    skip=skip_bad,
)
def test_voc_with_hostile_values(
    dsn: str, image_root: Path, names: Names, objects: Any, as_reference: bool, skip: bool
) -> None:
    dataset, folder = names.next()
    xml = folder / "xml"
    xml.mkdir()
    parts = [
        f"<annotation><filename>img_0000.png</filename><size><width>{W}</width><height>{H}</height></size>"
    ]
    for name, (x0, y0, x1, y1), pose in objects:
        # Character references for half the names: &#0; and &#xD800; are what a careful writer emits.
        written = "".join(f"&#{ord(c)};" for c in name) if as_reference else _xml_text(name)
        parts.append(
            f"<object><name>{written}</name><pose>{_xml_text(pose)}</pose><difficult>{_xml_text(pose)}</difficult>"
            f"<bndbox><xmin>{_xml_text(x0)}</xmin><ymin>{_xml_text(y0)}</ymin><xmax>{_xml_text(x1)}</xmax>"
            f"<ymax>{_xml_text(y1)}</ymax></bndbox></object>"
        )
    parts.append("</annotation>")
    (xml / "img_0000.xml").write_bytes("".join(parts).encode("utf-8", "surrogatepass"))
    before = counts(dsn)
    args = [str(image_root), "-d", dataset, "-a", str(xml), "--format", "voc"]
    result = load(*args, *(["--skip-bad-annotations"] if skip else []))
    check_outcome(dsn, before, result, dataset, ["img_0000.xml"])


@SETTINGS
@given(
    columns=st.lists(
        st.one_of(st.sampled_from(["status", "groups", "note", "n"]), hostile_text), max_size=3, unique=True
    ),
    rows=st.lists(
        st.tuples(
            image_ref, st.lists(st.one_of(hostile_text, numbers.map(number_text)), min_size=3, max_size=3)
        ),
        max_size=3,
        unique_by=lambda row: row[0],
    ),
    skip=skip_bad,
)
def test_csv_metadata_with_hostile_values(
    dsn: str, image_root: Path, names: Names, columns: Any, rows: Any, skip: bool
) -> None:
    dataset, folder = names.next()
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(["filename", *columns])
    for ref, cells in rows:
        out.writerow([ref, *cells[: len(columns)]])
    (folder / "meta.csv").write_bytes(buf.getvalue().encode("utf-8", "surrogatepass"))
    before = counts(dsn)
    args = [str(image_root), "-d", dataset, "--metadata", str(folder / "meta.csv")]
    result = load(*args, *(["--skip-bad-annotations"] if skip else []))
    check_outcome(dsn, before, result, dataset, ["meta.csv"])


# Rows keyed by distinct, mostly real file names, so that most examples get as far as the values.
jsonl_rows = st.lists(
    st.tuples(
        image_ref,
        st.fixed_dictionaries(
            {},
            optional={
                "status": st.one_of(hostile_text, plain_label),
                "groups": st.lists(st.one_of(hostile_text, plain_label), max_size=2),
                "metadata": st.dictionaries(hostile_text, json_values, max_size=2),
                "note": json_values,
                "n": numbers,
            },
        ),
        st.dictionaries(hostile_text, json_values, max_size=2),
    ),
    max_size=3,
    unique_by=lambda row: row[0],
)


@SETTINGS
@given(rows=jsonl_rows, skip=skip_bad)
def test_jsonl_metadata_with_hostile_values(
    dsn: str, image_root: Path, names: Names, rows: Any, skip: bool
) -> None:
    dataset, folder = names.next()
    text = "".join(dumps({"filename": ref, **extra, **record}) + "\n" for ref, record, extra in rows)
    (folder / "meta.jsonl").write_text(text)
    before = counts(dsn)
    args = [str(image_root), "-d", dataset, "--metadata", str(folder / "meta.jsonl")]
    result = load(*args, *(["--skip-bad-annotations"] if skip else []))
    check_outcome(dsn, before, result, dataset, ["meta.jsonl"])


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
)
@given(value=json_values.filter(lambda v: not isinstance(v, Deep)), text=hostile_text)
def test_what_the_checks_pass_postgres_stores(dsn: str, value: Any, text: str) -> None:
    """The checks against the database itself: what they let through, jsonb and text accept.
    (They may refuse more: the depth and size limits keep a margin.)"""
    with psycopg.connect(dsn) as conn:
        if json_problem(value) is None:
            conn.execute("SELECT %s::jsonb", (Jsonb(value),))
        if text_problem(text) is None:
            conn.execute("SELECT %s::text", (text,))


# --- files --------------------------------------------------------------------------------------


def _summary(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks, FIFOs and /dev are POSIX")
def test_links_fifos_and_devices_are_reported_not_read(dsn: str, tmp_path: Path) -> None:
    root = tmp_path / "images"
    make_folder(root, 2, sizes=((W, H),), formats=("PNG",))
    os.symlink("/etc/passwd", root / "passwd.jpg")
    os.symlink("/dev/zero", root / "zero.png")
    os.symlink("../outside.png", root / "dotdot.png")  # relative, out of the folder
    (tmp_path / "outside.png").write_bytes((root / "img_0000.png").read_bytes())
    os.symlink("img_0000.png", root / "alias.png")  # inside: loaded
    (root / "sub").mkdir()
    os.symlink("../img_0001.png", root / "sub" / "up.png")  # inside, through ..: loaded
    os.mkfifo(root / "pipe.jpg")
    os.mkdir(root / "folder.png")  # a folder with an image name: os.walk lists it as a folder
    with deadline(60):
        summary = _summary(load(str(root), "-d", "d"))
    failed = {f["filename"]: f["reason"] for f in summary["failed"]}
    assert failed == {
        "passwd.jpg": SYMLINK_OUTSIDE,
        "zero.png": SYMLINK_OUTSIDE,
        "dotdot.png": SYMLINK_OUTSIDE,
        "pipe.jpg": "not a regular file (a FIFO (named pipe))",
    }
    with psycopg.connect(dsn) as conn:
        rows = {
            f: (h, n, ok)
            for f, h, n, ok in conn.execute(
                "SELECT filename, content_hash, size, load_error IS NULL FROM pgsearch.assets"
            )
        }
    # Nothing of /etc/passwd was read: no size, no hash.
    assert rows["passwd.jpg"] == (None, None, False)
    assert rows["alias.png"] == rows["img_0000.png"] and rows["alias.png"][2] is True
    assert rows["sub/up.png"] == rows["img_0001.png"]
    # The load can be run again: the same report, nothing new.
    with deadline(60):
        again = _summary(load(str(root), "-d", "d"))
    assert {f["filename"] for f in again["failed"]} == set(failed)


def test_scan_resolves_links_inside_and_keeps_links_outside(tmp_path: Path) -> None:
    root = tmp_path / "images"
    root.mkdir()
    (root / "a.png").write_bytes(b"x")
    (tmp_path / "out.png").write_bytes(b"y")
    os.symlink("a.png", root / "in.png")
    os.symlink(tmp_path / "out.png", root / "out.png")
    paths = {f.filename: f.path for f in scan(root)}
    assert paths["in.png"] == os.path.realpath(root / "a.png")
    assert paths["out.png"] == str(root / "out.png")  # the link: the worker refuses to follow it
    followed = {f.filename: f.path for f in scan(root, follow_symlinks=True)}
    assert followed["out.png"] == os.path.realpath(tmp_path / "out.png")


def test_read_regular_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with deadline(10):
        with pytest.raises(FileRefused, match="FIFO"):
            read_regular(str(fifo), 100)
        with pytest.raises(FileRefused, match="character device"):
            read_regular("/dev/zero", 100)
    with pytest.raises(FileRefused, match="a folder"):
        read_regular(str(tmp_path), 100)
    (tmp_path / "big").write_bytes(b"x" * 101)
    with pytest.raises(FileRefused, match="file too large"):
        read_regular(str(tmp_path / "big"), 100)
    assert read_regular(str(tmp_path / "big"), 101) == b"x" * 101
    os.symlink(tmp_path / "big", tmp_path / "link")
    assert read_regular(str(tmp_path / "link"), 101) == b"x" * 101
    with pytest.raises(FileRefused, match="symbolic link"):
        read_regular(str(tmp_path / "link"), 101, follow_symlinks=False)


def test_an_image_over_the_size_limit_is_reported_not_read(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "images"
    make_folder(root, 2, sizes=((W, H),), formats=("PNG",))
    monkeypatch.setattr(images, "MAX_FILE_BYTES", 64)
    summary = _summary(load(str(root), "-d", "d"))
    assert summary["assets"]["failed"] == 2
    assert all(f["reason"].startswith("file too large") for f in summary["failed"])


def test_annotation_and_metadata_fifos_are_refused(dsn: str, tmp_path: Path) -> None:
    root = tmp_path / "images"
    make_folder(root, 2, sizes=((W, H),), formats=("PNG",))
    os.mkfifo(tmp_path / "meta.csv")
    os.mkfifo(tmp_path / "coco.json")
    before = counts(dsn)
    with deadline(60):
        result = load(str(root), "-d", "d", "--metadata", str(tmp_path / "meta.csv"))
        assert result.exit_code == 1 and "meta.csv: cannot read (not a regular file (a FIFO" in result.output
        result = load(str(root), "-d", "d", "-a", str(tmp_path / "coco.json"), "--format", "coco")
        assert result.exit_code == 1 and "coco.json: cannot read (not a regular file (a FIFO" in result.output
    assert counts(dsn) == before


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse names that are not UTF-8")
def test_a_file_name_that_is_not_utf8_stops_the_load_before_writing(dsn: str, tmp_path: Path) -> None:
    root = tmp_path / "images"
    make_folder(root, 2, sizes=((W, H),), formats=("PNG",))
    bad = os.path.join(os.fsencode(root), b"caf\xe9.png")
    with open(bad, "wb") as fh:
        fh.write((root / "img_0000.png").read_bytes())
    before = counts(dsn)
    result = load(str(root), "-d", "d")
    assert result.exit_code == 1, result.output
    assert "Error: caf\\xe9.png: the name is not valid UTF-8" in result.output, result.output
    assert counts(dsn) == before


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--group", "a\x00b"), ("--status", "re\udcffview"), ("--dataset", "d\x00s"), ("--group", "g" * 1200)],
)
def test_command_line_values_are_checked_before_anything_is_written(
    dsn: str, tmp_path: Path, flag: str, value: str
) -> None:
    """What a user types goes into the same columns and index keys as the files' values."""
    root = tmp_path / "cli-values"
    make_folder(root, 2)
    args = ["load", str(root), "--model", "pixels", "--workers", "0", flag, value]
    if flag != "--dataset":
        args += ["--dataset", "ok"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert flag.lstrip("-") in result.output
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pgsearch.datasets").fetchone() == (0,)


@pytest.mark.parametrize("argument", ["dataset", "similar_to", "text", "query"])
def test_api_strings_postgres_cannot_hold_are_clear_errors(dsn: str, argument: str) -> None:
    import pgsearch
    from pgsearch.errors import PgsearchError

    options = {"dataset": "x"}
    options[argument] = "a\x00b"
    with pgsearch.connect(dsn) as client, pytest.raises(PgsearchError) as caught:
        client.query(options.pop("query", None), **options)
    assert "NUL" in str(caught.value) or "\\x00" in str(caught.value)


def test_group_names_the_api_refuses_match_the_loaders_limit(dsn: str, tmp_path: Path) -> None:
    import pgsearch
    from pgsearch.errors import PgsearchError

    root = tmp_path / "groups"
    make_folder(root, 2)
    assert (
        CliRunner()
        .invoke(cli, ["load", str(root), "-d", "g", "--model", "pixels", "--workers", "0"])
        .exit_code
        == 0
    )
    with pgsearch.connect(dsn) as client:
        for bad in ("a\x00b", "x\udcff", "g" * 1200):
            with pytest.raises(PgsearchError, match="group"):
                client.add_to_group("g", [1], bad)


def test_follow_symlinks_loads_a_folder_of_links_into_a_shared_store(dsn: str, tmp_path: Path) -> None:
    store, farm = tmp_path / "store", tmp_path / "farm"
    folder = make_folder(store, 3)
    farm.mkdir()
    for name in folder.filenames:
        (farm / name).symlink_to(store / name)
    refused = CliRunner().invoke(
        cli, ["load", str(farm), "-d", "links", "--model", "pixels", "--workers", "0"]
    )
    assert refused.exit_code == 0 and "--follow-symlinks follows it" in refused.output
    followed = CliRunner().invoke(
        cli, ["load", str(farm), "-d", "links2", "--model", "pixels", "--workers", "0", "--follow-symlinks"]
    )
    assert followed.exit_code == 0, followed.output
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT a.load_error, a.path FROM pgsearch.assets a JOIN pgsearch.datasets d ON d.id = a.dataset_id"
            " WHERE d.name = 'links2'"
        ).fetchall()
    assert len(rows) == 3 and all(error is None for error, _ in rows)
    assert all(path.startswith(str(store)) for _, path in rows)  # the link's target, read as a file
