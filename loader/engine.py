"""Decoding in worker processes, overlapped with the model's forward pass in this process.

Chunks of work items go to a process pool a few chunks ahead (bounded, so memory stays flat
however many files there are); results come back in order and their images and crops are
embedded in batches. With workers=0 everything runs inline (debugging, tiny loads).
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from pgsearch.loader.models import Embedder
from pgsearch.loader.work import WorkItem, WorkResult, process_many
from pgsearch.progress import NoBar

T = TypeVar("T")


def die_with_parent() -> None:
    """A decode worker's first act (Linux): have the kernel kill it when the process that started
    it dies, so a load killed with -9 leaves no worker behind blocked on its pipe."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL))
    except (OSError, AttributeError):
        return  # no prctl: the worker ends when its pipe closes, as before
    if os.getppid() == 1:  # the parent died before the request took effect
        os._exit(0)


def default_workers() -> int:
    """One decoding process per spare core (at least one, at most 8): the model has the rest."""
    cores = os.cpu_count() or 1
    return max(1, min(8, cores - 1))


@dataclass
class Embedded(Generic[T]):
    tag: T
    results: list[WorkResult]
    asset_vectors: list[np.ndarray | None]
    crop_vectors: list[list[np.ndarray | None]]


@dataclass
class EngineStats:
    model_seconds: float = 0.0
    wait_seconds: float = 0.0
    images_embedded: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Engine:
    def __init__(self, embedder: Embedder | None, workers: int | None = None, batch_size: int = 32) -> None:
        self.embedder = embedder
        self.workers = default_workers() if workers is None else max(0, workers)
        self.batch_size = max(1, batch_size)
        self.stats = EngineStats()
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Engine:
        """Starts the workers; they import while the caller builds its model."""
        if self.workers > 0 and self._pool is None:
            # spawn, not fork: the parent holds torch's thread pools, which do not survive a fork
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent
            )
            for _ in range(self.workers):
                self._pool.submit(process_many, [])
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def run(self, chunks: Iterable[tuple[T, list[WorkItem]]]) -> Iterator[Embedded[T]]:
        window = max(2, self.workers * 2)
        pending: collections.deque[tuple[T, list[WorkItem], Future[list[WorkResult]] | None]] = (
            collections.deque()
        )
        source = iter(chunks)
        exhausted = False
        while True:
            while not exhausted and len(pending) < window:
                try:
                    tag, items = next(source)
                except StopIteration:
                    exhausted = True
                    break
                future = self._pool.submit(process_many, items) if self._pool is not None else None
                pending.append((tag, items, future))
            if not pending:
                return
            tag, items, future = pending.popleft()
            started = time.perf_counter()
            results = self._result(items, future)
            self.stats.wait_seconds += time.perf_counter() - started
            yield self._embed(tag, results)

    def _result(self, items: list[WorkItem], future: Future[list[WorkResult]] | None) -> list[WorkResult]:
        if future is None:
            return process_many(items)
        try:
            return future.result()
        except BrokenProcessPool:
            # Workers could not start (e.g. a __main__ that spawn cannot re-import, such as a script
            # piped to python) or died; decoding here is slower but loses nothing.
            print(
                "warning: decoding worker processes failed; decoding in this process instead", file=sys.stderr
            )
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            return process_many(items)

    def _embed(self, tag: T, results: list[WorkResult]) -> Embedded[T]:
        asset_vectors: list[np.ndarray | None] = [None] * len(results)
        crop_vectors: list[list[np.ndarray | None]] = [[None] * len(r.crops) for r in results]
        inputs: list[tuple[int, int, np.ndarray]] = []  # (result index, crop index or -1, pixels)
        for i, r in enumerate(results):
            if r.asset_pixels is not None:
                inputs.append((i, -1, r.asset_pixels))
                r.asset_pixels = None
            for j, c in enumerate(r.crops):
                if isinstance(c, np.ndarray):
                    inputs.append((i, j, c))
                    r.crops[j] = None
        if inputs and self.embedder is not None:
            started = time.perf_counter()
            for start in range(0, len(inputs), self.batch_size):
                part = inputs[start : start + self.batch_size]
                vectors = self.embedder.embed_arrays(np.stack([p[2] for p in part]))
                for (i, j, _), vec in zip(part, vectors, strict=True):
                    if j < 0:
                        asset_vectors[i] = vec
                    else:
                        crop_vectors[i][j] = vec
            self.stats.model_seconds += time.perf_counter() - started
            self.stats.images_embedded += len(inputs)
        return Embedded(tag, results, asset_vectors, crop_vectors)


def progress_bar(total: int, enabled: bool, model: str | None) -> Any:
    """The images-per-second bar of `pgsearch load` and `pgsearch embed` (tqdm on stderr)."""
    if not enabled:
        return NoBar()
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit="img",
        desc="load" + (f" [{model}]" if model else ""),
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
    )
