"""`pgsearch status`: embedding state of a dataset, per model."""

from __future__ import annotations

import json
from typing import Any

import click

from pgsearch.options import dataset_option, dsn_option, json_option


@click.command()
@dataset_option()
@json_option
@dsn_option
def status(dataset: str, as_json: bool, dsn: str | None) -> None:
    """Show, per embedding model, how many assets and shapes are embedded, pending or failed (with reasons).

    Example:

    \b
        pgsearch status --dataset birds
        pgsearch status --dataset birds --json
    """
    from pgsearch.db import open_database
    from pgsearch.loader.embed import status as dataset_status

    with open_database(dsn) as conn:
        info = dataset_status(conn, dataset)
    click.echo(json.dumps(info, indent=2) if as_json else format_status(info))


def format_status(info: dict[str, Any]) -> str:
    lines = [
        f"dataset {info['dataset']}: {info['assets']} assets ({info['unreadable_assets']} unreadable), "
        f"{info['shapes']} shapes"
    ]
    if not info["models"]:
        lines.append("  no embedding model yet: `pgsearch embed --dataset NAME --model SPEC` activates one")
    for m in info["models"]:
        lines.append(f"  model {m['model']} ({m['dim']} dims{', text search' if m['has_text'] else ''})")
        for key in ("assets", "shapes"):
            c = m[key]
            if c is None:
                continue
            index = "indexed" if c["indexed"] else "not indexed"
            lines.append(
                f"    {key}: {c['done']} done, {c['pending']} pending, {c['failed']} failed "
                f"of {c['total']} ({index})"
            )
            for r in c["reasons"]:
                examples = ", ".join(e["filename"] for e in r["examples"])
                lines.append(f"      {r['count']} x {r['reason']}  (e.g. {examples})")
    return "\n".join(lines)
