"""Progress on stderr for the long commands: one tqdm line per stage, the previous one closed.

A Stages object is the progress factory the library functions take (`(stage, total, unit) -> bar`
with update() and close()), so the library never imports tqdm or decides where output goes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


class Stages:
    """A progress factory `(stage, total, unit) -> bar` (what the graph functions take): one tqdm
    line per stage on stderr, the previous one closed; nothing when quiet."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def __call__(self, name: str, total: int | None = None, unit: str = "item") -> Any:
        self.close()
        if not self.enabled:
            return NoBar()
        from tqdm import tqdm

        self.bar = tqdm(
            total=total or None,
            desc=name,
            file=sys.stderr,
            dynamic_ncols=True,
            leave=False,
            unit=unit,
            bar_format=None if total else "{desc}: {elapsed}",
            disable=None,  # off where stderr is not a terminal (logs, CI)
        )
        return self.bar

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class NoBar:
    """What a stage gets when nothing is shown: update() and close() do nothing."""

    def update(self, n: float = 1) -> None:
        pass

    def close(self) -> None:
        pass


def say_to_stderr(quiet: bool, stages: Stages | None = None) -> Callable[[str], None]:
    """The `say` the curation functions take for their notes: one line on stderr (after closing
    the progress line in the way), nothing when quiet."""

    def say(text: str) -> None:
        if stages is not None:
            stages.close()
        if not quiet:
            import click

            click.echo(text, err=True)

    return say
