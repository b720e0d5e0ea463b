"""`pgsearch load`: images, annotations, metadata and embeddings into a dataset."""

from __future__ import annotations

import sys

import click

from pgsearch.loader.defaults import DEFAULT_MODEL
from pgsearch.options import dsn_option, json_option


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=True, dir_okay=True))
@click.option(
    "--dataset", "-d", required=True, metavar="NAME", help="Dataset to load into (created if missing)."
)
@click.option(
    "--annotations",
    "-a",
    metavar="FILE",
    help="Annotation file (COCO JSON) or folder (YOLO labels, VOC XML).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["coco", "yolo", "voc", "folders"]),
    help="Annotation format; 'folders' labels each image by its first sub-folder (a 'tag' shape).",
)
@click.option(
    "--metadata", "-m", metavar="FILE", help="CSV or JSONL keyed by filename: status, groups, other columns."
)
@click.option(
    "--group",
    "-g",
    "groups",
    multiple=True,
    metavar="G",
    help="Add every loaded asset to group G (repeatable).",
)
@click.option(
    "--status", metavar="S", help="Annotation status of every loaded asset (e.g. annotated, review)."
)
@click.option(
    "--model",
    metavar="SPEC",
    help="Embedding model: openclip:ARCH[:PRETRAINED|:FILE|:random], timm:NAME, or pixels. "
    f"Default: the dataset's model, else {DEFAULT_MODEL}.",
)
@click.option(
    "--embed/--no-embed",
    default=True,
    show_default=True,
    help="Compute embeddings now (--no-embed: later, with `pgsearch embed`).",
)
@click.option(
    "--embed-shapes/--no-embed-shapes", default=True, show_default=True, help="Embed shape crops too."
)
@click.option(
    "--embeddings",
    metavar="FILE",
    help="Precomputed vectors, no model runs: X.npy (N x D) with X.txt beside it (N filenames, one "
    "per line, in row order); X.npz with arrays `filenames` and `embeddings`; X.parquet with columns "
    "`filename` and `embedding` (a list of numbers).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 4096),
    default=32,
    show_default=True,
    help="Images (and crops) per model batch and per transaction.",
)
@click.option(
    "--workers",
    type=click.IntRange(0, 64),
    default=None,
    help="Decoding processes (default: CPU cores - 1; 0 decodes in this process).",
)
@click.option(
    "--skip-bad-annotations",
    is_flag=True,
    help="Drop malformed annotation / metadata entries and report them instead of refusing the load.",
)
@click.option(
    "--follow-symlinks",
    is_flag=True,
    help="Follow symbolic links that lead outside PATH too (a folder of links into a shared image "
    "store). Without it such a link is recorded as a failed file and never read.",
)
@click.option(
    "--prune",
    is_flag=True,
    help="Delete the assets loaded earlier from under PATH whose file is gone (with their shapes and "
    "vectors); without it they are kept and listed.",
)
@click.option(
    "--max-megapixels",
    type=click.FloatRange(0.01, 10000),
    default=100.0,
    show_default=True,
    help="Refuse larger images (decompression-bomb guard); they are recorded as failed.",
)
@click.option(
    "--quiet", "-q", is_flag=True, help="No progress bar and no summary (errors still go to stderr)."
)
@json_option
@dsn_option
def load(
    path: str,
    dataset: str,
    annotations: str | None,
    fmt: str | None,
    metadata: str | None,
    groups: tuple[str, ...],
    status: str | None,
    model: str | None,
    embed: bool,
    embed_shapes: bool,
    embeddings: str | None,
    batch_size: int,
    workers: int | None,
    skip_bad_annotations: bool,
    follow_symlinks: bool,
    prune: bool,
    max_megapixels: float,
    quiet: bool,
    as_json: bool,
    dsn: str | None,
) -> None:
    """Load the images under PATH (recursively) into a dataset, with their annotations and embeddings.

    Loading again is incremental: unchanged files (same content hash) are skipped, changed files
    are updated with their shapes and embeddings replaced, and a load that was interrupted (even
    killed) picks up where it stopped. Files that cannot be decoded are recorded with the reason
    and their embedding marked failed; the load goes on. Annotation and metadata files are checked
    completely before anything is written.

    Example:

    \b
        pgsearch load ./images --dataset birds --annotations instances.json --format coco --group train
        pgsearch load ./flowers --dataset flowers --format folders --model pixels --json
    """
    from pgsearch.db import open_database
    from pgsearch.loader.pipeline import LoadOptions, load_folder
    from pgsearch.output import load_text, print_report

    if annotations and not fmt:
        raise click.UsageError("--annotations needs --format coco|yolo|voc")
    if fmt in ("coco", "yolo", "voc") and not annotations:
        raise click.UsageError(f"--format {fmt} needs --annotations FILE")
    options = LoadOptions(
        root=path,
        dataset=dataset,
        annotations=annotations,
        format=fmt,
        metadata=metadata,
        groups=list(groups),
        status=status,
        model=model,
        embed=embed,
        embed_shapes=embed_shapes,
        embeddings=embeddings,
        batch_size=batch_size,
        workers=workers,
        skip_bad_annotations=skip_bad_annotations,
        max_pixels=int(max_megapixels * 1_000_000),
        progress=not quiet and not as_json and sys.stderr.isatty(),
        prune=prune,
        follow_symlinks=follow_symlinks,
    )
    with open_database(dsn) as conn:
        summary = load_folder(conn, options)
    if as_json or not quiet:
        print_report(summary.to_dict(), as_json, load_text)
