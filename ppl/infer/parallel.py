"""Independent fits on any ``concurrent.futures.Executor``, with results that do not depend on it.

``fit_many(fn, items, executor, rng_seed)`` runs ``fn(item, fold_in(rng_seed, i))`` for each item ``i``:
the seed of a task is fixed by its index alone, never by which worker ran it or when, so the results are
bit-identical in-process, in a ``ProcessPoolExecutor`` or on a Dask ``distributed`` cluster
(``Client.get_executor()``). No scheduler is written here: the executor is the seam.

Two failures are made loud and early or late but never silent:

- a function that cannot be sent to a worker (a lambda, a closure) is refused before any task starts,
  with its name and the fix (define it at module level);
- a task that raises stops the run with a ``TaskError`` naming its index and input; tasks not yet
  started are cancelled, those started finish and are handed to ``on_result`` (a caller saves as it goes).
"""
import contextlib
import functools
import pickle
import reprlib
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait

from ..core import fold_in
from ..errors import PPLError


class TaskError(PPLError, RuntimeError):
    """A task of ``fit_many`` raised. ``index`` is its position, ``item`` a (truncated) repr of its input,
    ``finished`` the results of the tasks that did finish ({index: result}); the task's own exception is
    ``__cause__``."""

    def __init__(self, message, index, item, finished):
        super().__init__(message)
        self.index = index
        self.item = item
        self.finished = finished


_REPR = reprlib.Repr()
_REPR.maxother = _REPR.maxstring = 160
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = 6


def short_repr(value, limit=300):
    """``repr(value)`` cut to about ``limit`` characters (numpy already summarises large arrays)."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _is_in_process(executor):
    """Threads share the process: nothing is pickled, so any function runs."""
    return executor is None or isinstance(executor, ThreadPoolExecutor)


def _dumps_for(executor):
    """The serializer the executor will use: Dask sends functions with cloudpickle (which sends a lambda
    by value), a process pool with the standard pickle (which sends a function by its module and name)."""
    if type(executor).__module__.split(".")[0] == "distributed":
        import cloudpickle

        return cloudpickle.dumps
    return pickle.dumps


def _describe(obj):
    name = getattr(obj, "__qualname__", None)
    if name is None:
        return short_repr(obj, 120)
    code = getattr(obj, "__code__", None)
    where = f" (module {getattr(obj, '__module__', '?')}" + (f", line {code.co_firstlineno})" if code else ")")
    return f"{name!r}{where}"


def _unpicklable_part(obj, dumps):
    """The innermost piece of ``obj`` that ``dumps`` refuses (looking inside ``functools.partial``), or None."""
    try:
        dumps(obj)
        return None
    except Exception:  # pickle raises PicklingError, AttributeError or TypeError depending on the object
        pass
    if isinstance(obj, functools.partial):
        for part in (obj.func, *obj.args, *obj.keywords.values()):
            culprit = _unpicklable_part(part, dumps)
            if culprit is not None:
                return culprit
    return obj


def _unimportable(module):
    import importlib.util

    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def check_sendable(fn, items, executor, caller="fit_many"):
    """Raise a clear ``TypeError`` before any work starts if ``fn`` or an item cannot reach the workers."""
    if _is_in_process(executor):
        return
    dumps = _dumps_for(executor)
    culprit = _unpicklable_part(fn, dumps)
    if culprit is not None:
        local = "<lambda>" in str(getattr(culprit, "__qualname__", "")) or "<locals>" in str(
            getattr(culprit, "__qualname__", ""))
        why = ("a lambda or a function defined inside another function is sent by its name and the workers "
               "cannot find it" if local else "it cannot be pickled")
        raise TypeError(f"{caller}: the function {_describe(culprit)} cannot be sent to the workers of "
                        f"{type(executor).__name__}: {why}. Define it at module level (def in an importable "
                        f"module) and pass that, or run with executor=None or a ThreadPoolExecutor.")
    module = getattr(fn, "__module__", None)
    if dumps is not pickle.dumps and module not in (None, "__main__") and _unimportable(module):
        # Dask tries the standard pickle first, which sends fn by module and name: a worker that cannot import
        # the module dies unpacking the task, again and again, and the run never ends
        raise TypeError(f"{caller}: the function {_describe(fn)} lives in module {module!r}, which cannot be "
                        f"imported by name (it was loaded from a file under another name?), so the workers of "
                        f"{type(executor).__name__} cannot find it. Put it in an importable module, or in the "
                        "script you run.")
    for i, item in enumerate(items):
        try:
            dumps(item)
        except Exception as error:
            raise TypeError(f"{caller}: item {i} ({short_repr(item, 120)}) cannot be sent to the workers of "
                            f"{type(executor).__name__}: {type(error).__name__}: {error}") from error


def _task_error(caller, index, item, error, finished, total):
    return TaskError(f"{caller}: task {index} raised {type(error).__name__}: {error}\n  its input: "
                     f"{short_repr(item)}\n  {len(finished)} of {total} tasks finished before the run stopped",
                     index, short_repr(item), finished)


def run_tasks(fn, indices, items, seeds, executor=None, on_result=None, caller="fit_many"):
    """``[fn(item, seed) ...]`` in input order; task k is reported by ``indices[k]`` (to ``on_result`` and in
    errors). The engine of ``fit_many``, also for callers whose seeds are not ``fold_in(rng_seed, k)``
    (SBC keeps each replication's seed when it resumes a subset)."""
    items = list(items)
    check_sendable(fn, items, executor, caller)
    results = [None] * len(items)
    finished = {}

    def deliver(k, result):
        results[k] = finished[indices[k]] = result
        if on_result is not None:
            on_result(indices[k], result)

    if executor is None:
        for k, (item, seed) in enumerate(zip(items, seeds)):
            try:
                result = fn(item, seed)
            except Exception as error:
                raise _task_error(caller, indices[k], item, error, finished, len(items)) from error
            deliver(k, result)
        return results

    pending = {executor.submit(fn, item, seed): k for k, (item, seed) in enumerate(zip(items, seeds))}
    failure = None
    try:
        while pending:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in sorted(done, key=pending.get):  # a stable order of callbacks within one wake-up
                k = pending.pop(future)
                if future.cancelled():
                    continue
                error = future.exception()
                if error is None:
                    deliver(k, future.result())
                elif failure is None:
                    failure = (k, error)
                    _drop_unstarted(pending)  # tasks a pool has started still finish and are kept
    finally:
        for other in pending:  # an interrupt or a raising on_result: start nothing more
            other.cancel()
    if failure is not None:
        k, error = failure
        raise _task_error(caller, indices[k], items[k], error, finished, len(items)) from error
    return results


def _drop_unstarted(pending):
    """Cancel the tasks that have not started and forget them: ``wait`` counts a cancelled future as done
    only once its executor notices (Dask's executor may never do so), so waiting on one can hang."""
    for future in [f for f in pending if f.cancel()]:
        del pending[future]


def fit_many(fn, items, executor=None, rng_seed=0, on_result=None):
    """Run ``fn(item, fold_in(rng_seed, i))`` for every item ``i``; return the results in input order.

    ``executor``: None runs in this process, one task after another; any ``concurrent.futures.Executor``
    (a ``ProcessPoolExecutor``, a Dask cluster's ``Client.get_executor()``) runs the tasks in its workers.
    Seeds depend on the index alone, so the results are the same, bit for bit, on every executor. Under a
    process-based executor ``fn`` and the items must be picklable: a lambda or closure is refused before any
    task starts. ``on_result(i, result)`` is called in this process as each task finishes (in completion
    order), so a caller can save results as they come; if a task raises, the tasks not yet started are
    cancelled and the run stops with a ``TaskError`` naming its index and input once the started ones are
    done (their results still reach ``on_result`` and ``TaskError.finished``; Dask's executor never marks
    a task as started, so there every unfinished task is cancelled and the run stops at once).

        >>> import numpy as np
        >>> def mean_of_draws(n, rng_seed):
        ...     return np.random.default_rng(rng_seed).normal(size=n).mean()
        >>> a = fit_many(mean_of_draws, [10, 1000], rng_seed=1)
        >>> b = fit_many(mean_of_draws, [10, 1000], rng_seed=1)
        >>> a == b, bool(abs(a[1]) < 0.2)
        (True, True)
    """
    items = list(items)
    return run_tasks(fn, list(range(len(items))), items, [fold_in(rng_seed, i) for i in range(len(items))],
                     executor, on_result)


@contextlib.contextmanager
def make_executor(kind="none", workers=2):
    """``None`` (this process), a ``ProcessPoolExecutor``, or a Dask ``LocalCluster``'s executor, closed on exit.

    ``kind`` is ``"none"``, ``"process"`` or ``"dask"`` (the extra ``distributed``): what the examples' and
    benchmarks' ``--executor`` options mean.
    """
    if kind == "none":
        yield None
    elif kind == "process":
        with ProcessPoolExecutor(workers) as pool:
            yield pool
    elif kind == "dask":
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=workers, processes=True, threads_per_worker=1, dashboard_address=":0") as cluster, \
                Client(cluster) as client:
            yield client.get_executor()
    else:
        raise ValueError(f"make_executor: kind must be 'none', 'process' or 'dask', got {kind!r}")
