"""Train several cached models at once on a CPU: one process per core, one torch thread each.

One thread per model makes its weights independent of the machine's core count; on the 2-core course machine
two single-thread workers trained 03's six shortcut models in about the time one two-thread process took
(75-84 s vs 75-87 s), so the gain there is reproducibility, not speed. :func:`warm_cache` runs recipe calls (functions
that train a model and cache it under a key, e.g. :func:`~medxai_lib.train.recipes.shortcut_classifier`)
in spawned worker processes; the caller then calls the same recipes again, and they load from the cache.
A recipe used this way must train with a fixed thread count (:func:`one_thread`), so that its weights are
the same whether it trained in a worker or in the notebook's own process.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import torch

Call = tuple[Callable[..., Any], dict[str, Any]]


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch uses one intra-op thread inside the block (float sums then do not depend on the core count);
    the previous count is restored on exit, also when the block raises."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run(fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    torch.set_num_threads(1)
    fn(**kwargs)          # trains and writes the checkpoint; the model itself is not sent back


def warm_cache(calls: Sequence[Call], workers: int = 2) -> int:
    """Run every ``fn(**kwargs)`` of ``calls`` in ``workers`` spawned processes (one torch thread each) so that
    the models they train are in the cache; returns how many calls ran in workers. With ``workers=1``, or a
    single call, nothing runs here (the caller's own calls then train the models, with the same weights).
    Functions and arguments must be picklable (module-level functions, plain values)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected an int >= 1, got {workers!r}")
    calls = list(calls)
    for k, call in enumerate(calls):
        if not (isinstance(call, tuple) and len(call) == 2 and callable(call[0]) and isinstance(call[1], dict)):
            raise ValueError(f"calls[{k}]: expected a (function, keyword-argument dict) pair, got {call!r}")
    if workers == 1 or len(calls) < 2:
        return 0
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(min(workers, len(calls)), mp_context=multiprocessing.get_context("spawn")) as pool:
        for future in [pool.submit(_run, fn, kwargs) for fn, kwargs in calls]:
            future.result()
    return len(calls)
