"""bench/maintenance: what the loader's post-load VACUUM (ANALYZE) costs on a big server after a
small load. Loads N assets (with a group) into a new dataset through the loader's writer, then
times `VACUUM (ANALYZE) pgsearch.assets, pgsearch.group_members` twice (after the load, and with
nothing changed) and ANALYZE alone, and drops the dataset again.

    python bench/maintenance.py --dsn postgresql://...   # e.g. the server of a bench/query.py load
"""

from __future__ import annotations

import argparse
import time

from pgsearch import db as database
from pgsearch.datasets import ensure_dataset
from pgsearch.loader import writer
from pgsearch.loader.rows import AssetRow

DATASET = "bench-maintenance"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--n", type=int, default=2000, help="assets to load (default 2000)")
    args = parser.parse_args()
    with database.connect(args.dsn) as conn:
        conn.execute("SELECT pgsearch.drop_dataset(%s)", (DATASET,))
        dataset = ensure_dataset(conn, DATASET)
        ids = writer.reserve_ids(conn, "assets", args.n)
        rows = [
            AssetRow(
                i, dataset.id, f"m{i}.jpg", None, None, 64, 48, None, None, "new", ["train"], {"k": 1}, None
            )
            for i in ids
        ]
        writer.insert_assets(conn, rows)
        conn.commit()
        total = conn.execute("SELECT count(*) FROM pgsearch.assets").fetchone()[0]
        conn.commit()
        conn.autocommit = True
        timings = []
        for label, statement in (
            (
                f"VACUUM (ANALYZE) after loading {args.n:,}",
                "VACUUM (ANALYZE) pgsearch.assets, pgsearch.group_members",
            ),
            ("VACUUM (ANALYZE), nothing changed", "VACUUM (ANALYZE) pgsearch.assets, pgsearch.group_members"),
            ("ANALYZE alone", "ANALYZE pgsearch.assets, pgsearch.group_members"),
        ):
            started = time.perf_counter()
            conn.execute(statement)
            timings.append((label, time.perf_counter() - started))
        conn.execute("SELECT pgsearch.drop_dataset(%s)", (DATASET,))
    print(f"server: {total:,} assets in all")
    print(f"{'step':45} {'seconds':>8}")
    for label, seconds in timings:
        print(f"{label:45} {seconds:8.2f}")


if __name__ == "__main__":
    main()
