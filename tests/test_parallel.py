"""fit_many and SBC on executors: the same bits in-process, in a process pool and on a Dask cluster;
unsendable functions refused before any work; failed tasks named; interrupted SBC runs resumed exactly.

Functions sent to workers are defined at module level here: a process pool forks this process (the module
is already imported) and Dask's spawned workers inherit ``sys.path``, on which pytest put this folder.
"""
import os
import re
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest

import ppl
import ppl.distributions as dist
from ppl.core import fold_in
from ppl.errors import CheckpointError
from ppl.infer import ADVI, diagnostics, fit_many
from ppl.infer.parallel import TaskError
from ppl.optim import Adam


def normal_model(x):
    mu = ppl.sample("mu", dist.Normal(0.0, 10.0))
    sigma = ppl.sample("sigma", dist.HalfNormal(5.0))
    with ppl.plate("data", len(x)):
        ppl.observe("x", dist.Normal(mu, sigma), x)


def fit_normal(x, rng_seed):
    """A real fit per task: ADVI's posterior mean and a few draws (the seed drives both)."""
    result = ADVI(normal_model, "meanfield", Adam(0.1)).run(150, x, rng_seed=rng_seed, progress=False)
    return {"mean": result.mean, "draws": result.sample(5, rng_seed=rng_seed)}


def fail_on_three(item, rng_seed):
    if item == 3:
        raise ValueError("three is not allowed")
    return np.random.default_rng(rng_seed).normal(size=item)


PRIOR_SD, NOISE_SD, N = 2.0, 1.0, 5


def sbc_model():
    mu = ppl.sample("mu", dist.Normal(0.0, PRIOR_SD))
    with ppl.plate("data", N):
        ppl.observe("x", dist.Normal(mu, NOISE_SD), np.zeros(N))


def exact_posterior(data, rng_seed, num_draws=99):
    """The conjugate Normal-Normal posterior of ``mu``, drawn exactly: SBC ranks are uniform."""
    precision = 1 / PRIOR_SD ** 2 + N / NOISE_SD ** 2
    mean = np.sum(data["x"]) / NOISE_SD ** 2 / precision
    return {"mu": mean + np.random.default_rng(rng_seed).normal(size=num_draws) / np.sqrt(precision)}


class StopAfter:
    """Fits like ``exact_posterior`` but raises after ``k`` replications (an interrupted run, in-process)."""

    def __init__(self, k):
        self.k, self.calls = k, 0

    def __call__(self, data, rng_seed):
        self.calls += 1
        if self.calls > self.k:
            raise KeyboardInterrupt("stopped by the test") if self.k < 0 else RuntimeError("interrupted")
        return exact_posterior(data, rng_seed)


class DieOnSeed:
    """Kills the worker process running the replication with this seed (a crashed machine), a moment after
    it starts: the results that worker finished before are collected by then, so only this replication is
    lost with it (a result still held by a dying Dask worker is lost too, and Dask's executor then fails
    that other task with an error of its own)."""

    def __init__(self, seed):
        self.seed = seed

    def __call__(self, data, rng_seed):
        if rng_seed == self.seed:
            time.sleep(0.5)
            os._exit(3)
        return exact_posterior(data, rng_seed)


class CountingPool(ProcessPoolExecutor):
    submitted = 0

    def submit(self, *args, **kwargs):
        CountingPool.submitted += 1
        return super().submit(*args, **kwargs)


DATA = [np.random.default_rng(i).normal(1.0 + i, 2.0, size=30) for i in range(3)]


def assert_same_bits(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for key in ("mean", "draws"):
            assert x[key].keys() == y[key].keys()
            for site in x[key]:
                assert np.array_equal(x[key][site], y[key][site]), (key, site)


@pytest.fixture(scope="module")
def dask_executor():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None)
    client = Client(cluster)
    try:
        yield client.get_executor()
    finally:
        client.close()
        cluster.close()


@pytest.fixture(scope="module")
def in_process_sbc():
    return diagnostics.sbc(sbc_model, exact_posterior, num_simulations=40, bins=5, rng_seed=0)


def test_fit_many_is_bit_identical_in_process_in_a_pool_and_on_dask(dask_executor):
    seen = []
    local = fit_many(fit_normal, DATA, rng_seed=7, on_result=lambda i, r: seen.append(i))
    assert seen == [0, 1, 2]
    # the seeds are fold_in(rng_seed, i): task 2 alone gives the same fit
    assert_same_bits([local[2]], [fit_normal(DATA[2], fold_in(7, 2))])
    # a real fit: each mean within 3 posterior sds (2 / sqrt(30)) of its data's mean
    assert all(abs(fit["mean"]["mu"] - x.mean()) < 3 * 2 / np.sqrt(30) for fit, x in zip(local, DATA))
    with ProcessPoolExecutor(2) as pool:
        seen = []
        assert_same_bits(fit_many(fit_normal, DATA, executor=pool, rng_seed=7,
                                  on_result=lambda i, r: seen.append(i)), local)
        assert sorted(seen) == [0, 1, 2]
    with ThreadPoolExecutor(2) as threads:
        assert_same_bits(fit_many(fit_normal, DATA[:2], executor=threads, rng_seed=7), local[:2])
    assert_same_bits(fit_many(fit_normal, DATA, executor=dask_executor, rng_seed=7), local)
    # another seed, other draws
    assert not np.array_equal(fit_many(fit_normal, DATA[:1], rng_seed=8)[0]["draws"]["mu"], local[0]["draws"]["mu"])


def test_a_closure_under_a_process_pool_is_refused_before_any_work_starts():
    offset = 1.0

    def shifted_fit(x, rng_seed):  # a closure: pickled by name, which no worker can look up
        return fit_normal(x + offset, rng_seed)

    CountingPool.submitted = 0
    with CountingPool(2) as pool:
        with pytest.raises(TypeError, match=r"shifted_fit.*Define it at module level") as info:
            fit_many(shifted_fit, DATA, executor=pool)
        assert "test_parallel" in str(info.value)
        with pytest.raises(TypeError, match=r"<lambda>.*module level"):
            diagnostics.sbc(sbc_model, lambda d, s: exact_posterior(d, s), num_simulations=4, bins=5,
                            executor=pool)
        with pytest.raises(TypeError, match=r"item 2 .*cannot be sent"):
            fit_many(fail_on_three, [1, 2, lambda: 3], executor=pool)
    assert CountingPool.submitted == 0
    with ThreadPoolExecutor(1) as threads:  # threads share the process: a closure is fine there
        assert fit_many(shifted_fit, DATA[:1], executor=threads)[0]["mean"]["mu"] > 1.0


def test_a_raising_task_is_named_by_index_and_input_and_finished_results_are_kept():
    seen = {}
    with pytest.raises(TaskError, match=r"task 2 raised ValueError: three is not allowed") as info:
        fit_many(fail_on_three, [1, 2, 3, 4], rng_seed=1, on_result=seen.__setitem__)
    error = info.value
    assert error.index == 2 and error.item == "3" and "its input: 3" in str(error)
    assert isinstance(error.__cause__, ValueError)
    assert sorted(error.finished) == [0, 1] and sorted(seen) == [0, 1]
    assert np.array_equal(error.finished[1], np.random.default_rng(fold_in(1, 1)).normal(size=2))
    long_input = np.arange(5000.0)
    with pytest.raises(TaskError, match="task 0") as info:
        fit_many(fail_on_three, [long_input])
    assert len(info.value.item) < 400  # the input's repr is cut, not the whole array
    with ProcessPoolExecutor(2) as pool:
        with pytest.raises(TaskError, match=r"task 2 raised ValueError") as info:
            fit_many(fail_on_three, [1, 2, 3, 4], executor=pool, rng_seed=1)
    assert info.value.index == 2 and {0, 1} <= set(info.value.finished)


class LazyExecutor(Executor):
    """Runs only the first task it is given; the others stay pending and are never started nor notified of
    a cancel (as Dask's executor leaves a future whose task it lost): a waiter on those hangs."""

    def __init__(self):
        self.futures = []

    def submit(self, fn, *args):
        future = Future()
        if not self.futures:
            future.set_running_or_notify_cancel()
            try:
                future.set_result(fn(*args))
            except Exception as error:  # noqa: BLE001 - handed to the caller through the future
                future.set_exception(error)
        self.futures.append(future)
        return future


def test_a_failure_stops_the_run_without_waiting_on_tasks_that_never_started():
    executor = LazyExecutor()
    with pytest.raises(TaskError, match=r"task 0 raised ValueError"):
        fit_many(fail_on_three, [3, 1, 2], executor=executor)
    assert [f.cancelled() for f in executor.futures] == [False, True, True]


def test_sbc_on_a_process_pool_and_on_dask_equals_in_process(in_process_sbc, dask_executor):
    ranks = in_process_sbc.ranks["mu"]
    assert ranks.shape == (40, 1) and ranks.min() >= 0 and ranks.max() <= 99
    assert in_process_sbc.p_values["mu"] > 0.01  # exact posterior draws: calibrated
    with ProcessPoolExecutor(2) as pool:
        pooled = diagnostics.sbc(sbc_model, exact_posterior, num_simulations=40, bins=5, rng_seed=0, executor=pool)
    assert np.array_equal(pooled.ranks["mu"], ranks) and pooled.p_values == in_process_sbc.p_values
    on_dask = diagnostics.sbc(sbc_model, exact_posterior, num_simulations=40, bins=5, rng_seed=0,
                              executor=dask_executor)
    assert np.array_equal(on_dask.ranks["mu"], ranks)


def test_sbc_resumes_an_interrupted_run_with_identical_ranks(in_process_sbc, tmp_path):
    path = tmp_path / "sbc.npz"
    with pytest.raises(TaskError, match=r"sbc: task 13 raised RuntimeError: interrupted"):
        diagnostics.sbc(sbc_model, StopAfter(13), num_simulations=40, bins=5, rng_seed=0, path=path)
    with np.load(path) as saved:
        assert saved["done"].sum() == 13 and np.array_equal(saved["ranks_0"][:13], in_process_sbc.ranks["mu"][:13])
    rest = StopAfter(10 ** 6)
    resumed = diagnostics.sbc(sbc_model, rest, num_simulations=40, bins=5, rng_seed=0, path=path, resume=True)
    assert rest.calls == 27  # only the missing replications ran
    assert np.array_equal(resumed.ranks["mu"], in_process_sbc.ranks["mu"])
    assert resumed.p_values == in_process_sbc.p_values
    # a finished file: resuming runs nothing; another seed is another run and is refused
    nothing = StopAfter(0)
    assert np.array_equal(diagnostics.sbc(sbc_model, nothing, num_simulations=40, bins=5, rng_seed=0, path=path,
                                          resume=True).ranks["mu"], in_process_sbc.ranks["mu"])
    with pytest.raises(CheckpointError, match="another SBC run"):
        diagnostics.sbc(sbc_model, exact_posterior, num_simulations=40, bins=5, rng_seed=1, path=path, resume=True)
    # Ctrl-C in the middle: the same
    path2 = tmp_path / "sbc2.npz"
    with pytest.raises(KeyboardInterrupt):
        diagnostics.sbc(sbc_model, StopAfter(-1), num_simulations=40, bins=5, rng_seed=0, path=path2)
    assert not path2.exists()  # nothing finished, nothing written
    with pytest.raises(ValueError, match="path="):
        diagnostics.sbc(sbc_model, exact_posterior, num_simulations=40, bins=5, resume=True)


def test_sbc_resumes_after_a_worker_process_is_killed(in_process_sbc, tmp_path):
    path = tmp_path / "sbc.npz"
    killer = DieOnSeed(fold_in(0, "sbc", 20))
    with ProcessPoolExecutor(2) as pool:
        with pytest.raises(TaskError, match=r"sbc: task \d+ raised BrokenProcessPool"):
            diagnostics.sbc(sbc_model, killer, num_simulations=40, bins=5, rng_seed=0, path=path, executor=pool)
    with np.load(path) as saved:
        done = saved["done"]
        assert 0 < done.sum() < 40 and not done[20]
        assert np.array_equal(saved["ranks_0"][done], in_process_sbc.ranks["mu"][done])
    resumed = diagnostics.sbc(sbc_model, exact_posterior, num_simulations=40, bins=5, rng_seed=0, path=path,
                              resume=True)
    assert np.array_equal(resumed.ranks["mu"], in_process_sbc.ranks["mu"])


def test_sbc_on_dask_stops_clearly_when_a_worker_dies_and_resumes_exactly(tmp_path):
    """A replication that kills every worker that runs it: Dask restarts the worker and resubmits the task
    once, which kills again; the run stops with an error naming the task and KilledWorker, the finished
    ranks are on disk, and ``resume=True`` finishes the run with the uninterrupted ranks.

    The cluster lives in a child process (``dask_worker_kill.py``) with a timeout, so a hang fails this
    test instead of holding the suite."""
    import json
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(__file__), "dask_worker_kill.py")
    done = subprocess.run([sys.executable, script, str(tmp_path / "sbc.npz")], capture_output=True, text=True,
                          timeout=240, cwd=os.path.dirname(__file__))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert re.match(r"sbc: task 7 raised KilledWorker", report["error"]), report
    assert not report["task_7_done"] and 0 < report["done"] < 40 and report["saved_ranks_match"], report
    assert report["resumed_ranks_match"], report


def test_nuts_chains_on_dask_and_a_process_pool_equal_the_in_process_chains(dask_executor):
    from ppl.infer import NUTS

    x = DATA[0]
    run = dict(num_warmup=60, num_chains=2, rng_seed=4, progress=False)
    with pytest.warns(UserWarning):  # 60 draws: the ESS warning is expected and beside the point
        local = NUTS(normal_model).run(60, x, **run)
    with pytest.warns(UserWarning):
        on_dask = NUTS(normal_model).run(60, x, executor=dask_executor, **run)
    with pytest.warns(UserWarning), ProcessPoolExecutor(2) as pool:
        pooled = NUTS(normal_model).run(60, x, executor=pool, **run)
    for other in (on_dask, pooled):
        np.testing.assert_array_equal(local.positions, other.positions)
        for name in ("mu", "sigma"):
            np.testing.assert_array_equal(local.samples[name], other.samples[name])


def test_a_function_from_a_module_the_workers_cannot_import_is_refused_on_dask(dask_executor, tmp_path):
    import importlib.util

    source = tmp_path / "made_up.py"
    source.write_text("def fit(item, rng_seed):\n    return item\n")
    spec = importlib.util.spec_from_file_location("ppl_made_up_name", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(TypeError, match="'ppl_made_up_name'.*cannot be imported"):
        fit_many(module.fit, [1, 2], executor=dask_executor)
