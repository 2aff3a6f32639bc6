"""SBC on executors: wall seconds of the same replications in-process, in a process pool and on a Dask cluster.

Simulation-based calibration of a normal model with unknown mean and sd
(mu ~ N(0, 2), sigma ~ HalfNormal(1), n observations), each replication a
real NUTS fit (one chain, Stan's warm-up, draws thinned to 99). The same
``diagnostics.sbc`` call runs with ``executor=None``, a
``ProcessPoolExecutor(workers)`` and a Dask ``LocalCluster`` (worker
processes, one thread each) through ``Client.get_executor()``.

Per executor: its start-up (pool or cluster), the SBC's wall seconds (the
prior simulation in this process included, the start-up not), the speed-up
over in-process, and the per-task overhead (``--noop-tasks`` tasks that do
nothing, through ``fit_many``: wall seconds / tasks). Replication i is seeded
by ``fold_in(rng_seed, "sbc", i)`` wherever it runs, so the ranks must be
identical across executors; the script checks it.

    python benchmarks/sbc.py [--replications 100] [--workers 2] [--warmup 150] [--thin 2] [--n 20]
                             [--noop-tasks 200] [--executors none process dask]
"""
import argparse
import contextlib
import functools
import os
import platform
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np

import ppl
import ppl.distributions as dist
from ppl.infer import NUTS, diagnostics, fit_many

NUM_POSTERIOR_SAMPLES = 99
LABELS = {"none": "in-process", "process": "process pool", "dask": "dask LocalCluster"}


def normal_model(n, x=None):
    """Unknown mean and sd; ``x=None`` lets the prior predictive simulate the data."""
    mu = ppl.sample("mu", dist.Normal(0.0, 2.0))
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    with ppl.plate("data", n):
        ppl.observe("x", dist.Normal(mu, sigma), np.zeros(n) if x is None else x)


def nuts_posterior(data, rng_seed, n, num_warmup, thin):
    """One replication's fit: a NUTS chain of ``99 * thin`` draws, every ``thin``-th kept.

    Thinning makes the kept draws nearly independent, which SBC's ranks assume. The sampler's own
    short-chain warnings (bulk ESS below 100 per chain) are expected at this length and silenced.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = NUTS(normal_model).run(NUM_POSTERIOR_SAMPLES * thin, n, data["x"], num_warmup=num_warmup,
                                        num_chains=1, rng_seed=rng_seed, progress=False)
    return {name: draws[0, ::thin] for name, draws in result.samples.items()}


def noop(item, rng_seed):
    """A task that does nothing: its wall time through an executor is the executor's own cost."""
    return item


@contextlib.contextmanager
def make_executor(kind, workers):
    """The executor of one row, started and closed here; yields (executor, start-up seconds)."""
    start = time.perf_counter()
    if kind == "none":
        yield None, 0.0
    elif kind == "process":
        with ProcessPoolExecutor(workers) as pool:
            # start the workers now, so their start-up is not charged to the first tasks
            list(pool.map(abs, range(workers)))
            yield pool, time.perf_counter() - start
    elif kind == "dask":
        from distributed import Client, LocalCluster

        # Dask's nanny gives each worker OMP/MKL/OPENBLAS_NUM_THREADS=1 (its pre-spawn-environ default)
        with LocalCluster(n_workers=workers, processes=True, threads_per_worker=1, dashboard_address=":0") as cluster, \
                Client(cluster) as client:
            client.wait_for_workers(workers)
            yield client.get_executor(), time.perf_counter() - start
    else:
        raise ValueError(f"unknown executor {kind!r}; choose from {list(LABELS)}")


def measure(kind, args):
    """SBC wall seconds and per-task overhead on one executor; returns (startup, seconds, overhead, result)."""
    infer = functools.partial(nuts_posterior, n=args.n, num_warmup=args.warmup, thin=args.thin)
    with make_executor(kind, args.workers) as (executor, startup):
        start = time.perf_counter()
        result = diagnostics.sbc(normal_model, infer, args.n, num_simulations=args.replications,
                                 num_posterior_samples=NUM_POSTERIOR_SAMPLES, rng_seed=args.seed, executor=executor)
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        fit_many(noop, range(args.noop_tasks), executor=executor)
        overhead = (time.perf_counter() - start) / args.noop_tasks
    return startup, seconds, overhead, result


def same_ranks(a, b):
    return list(a.ranks) == list(b.ranks) and all(np.array_equal(a.ranks[k], b.ranks[k]) for k in a.ranks)


def load_average():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replications", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=150, help="NUTS warm-up iterations per replication")
    parser.add_argument("--thin", type=int, default=2, help="NUTS draws per kept draw (99 kept)")
    parser.add_argument("--n", type=int, default=20, help="observations per simulated data set")
    parser.add_argument("--noop-tasks", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--executors", nargs="+", default=list(LABELS), choices=list(LABELS))
    args = parser.parse_args(argv)
    if args.executors[0] != "none":
        parser.error("--executors must start with none: the speed-ups are against the in-process run")
    print("# python benchmarks/sbc.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(f"# {platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} "
          f"{platform.python_version()}, numpy {np.__version__}, ppl {ppl.__version__}; {args.replications} "
          f"replications of NUTS ({args.warmup} warm-up, {NUM_POSTERIOR_SAMPLES} x {args.thin} draws, n = {args.n}), "
          f"{args.workers} workers; load average {load_average()}")
    print(f"{'executor':20s}{'start-up s':>11s}{'SBC s':>9s}{'s / rep':>9s}{'speed-up':>10s}{'ms / task':>11s}")
    results = {}
    for kind in args.executors:
        startup, seconds, overhead, results[kind] = measure(kind, args)
        if kind == "none":
            baseline = seconds
        print(f"{LABELS[kind]:20s}{startup:11.2f}{seconds:9.2f}{seconds / args.replications:9.3f}"
              f"{baseline / seconds:10.2f}{1e3 * overhead:11.3f}", flush=True)
    identical = all(same_ranks(results["none"], r) for r in results.values())
    print(f"# ranks identical across executors: {'yes' if identical else 'NO'}; SBC p-values "
          + ", ".join(f"{name} {p:.3f}" for name, p in results["none"].p_values.items())
          + f"; load average after {load_average()}")
    return {"results": results, "identical": identical}


if __name__ == "__main__":
    main()
