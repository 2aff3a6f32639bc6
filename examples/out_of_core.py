"""Minibatch ADVI on a data set that the process never holds in memory at once.

The data live in a ``numpy.memmap`` on disk: a Bayesian linear regression
with ``--rows`` rows (default 4 million, 160 MB of float32 features and
targets). The model takes the whole array-like and reads only the rows of
each step's minibatch, ``np.asarray(x[idx])``, so the same code runs on any
array indexed per step: a memmap, a Dask array, a zarr array.

    python examples/out_of_core.py [--rows 4000000] [--batch 1024] [--steps 3000] [--dir /tmp]

It prints the fitted coefficients against the true ones, and the process's
own (anonymous) memory beside the size of the data on disk: the memmap's
pages are file-backed, read on demand and dropped by the OS under pressure,
so they are not memory the process keeps.
"""
import argparse
import os
import resource
import sys
import tempfile

import numpy as np

import ppl
import ppl.distributions as dist
from ppl.infer import ADVI
from ppl.optim import Adam

FEATURES = 8
TRUE_BETA = np.linspace(-1.0, 1.0, FEATURES)
TRUE_SIGMA = 0.5


def regression(x, y, batch_size):
    """y_n ~ Normal(x_n . beta, sigma) for the rows n of a minibatch; ``x`` and ``y`` may live on disk."""
    beta = ppl.sample("beta", dist.Normal(np.zeros(x.shape[1]), 1.0).to_event(1))
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    with ppl.plate("data", len(y), subsample_size=batch_size) as idx:
        rows = np.sort(idx)  # sorted reads are sequential on disk
        x_batch, y_batch = np.asarray(x[rows], dtype=float), np.asarray(y[rows], dtype=float)
        ppl.observe("y", dist.Normal(x_batch @ beta, sigma), y_batch)


def write_data(folder, rows, rng_seed=0, chunk=500_000):
    """Simulate the data chunk by chunk straight into two memmaps (the whole never sits in memory)."""
    rng = np.random.default_rng(rng_seed)
    x = np.lib.format.open_memmap(os.path.join(folder, "x.npy"), "w+", np.float32, (rows, FEATURES))
    y = np.lib.format.open_memmap(os.path.join(folder, "y.npy"), "w+", np.float32, (rows,))
    for start in range(0, rows, chunk):
        stop = min(start + chunk, rows)
        x_part = rng.standard_normal((stop - start, FEATURES)).astype(np.float32)
        x[start:stop] = x_part
        y[start:stop] = x_part @ TRUE_BETA + TRUE_SIGMA * rng.standard_normal(stop - start)
    x.flush(), y.flush()
    del x, y
    return (np.load(os.path.join(folder, "x.npy"), mmap_mode="r"),
            np.load(os.path.join(folder, "y.npy"), mmap_mode="r"))


def fit(x, y, batch_size, steps, rng_seed=0):
    return ADVI(regression, "meanfield", Adam(0.02)).run(steps, x, y, batch_size, rng_seed=rng_seed)


def anonymous_memory_mb():
    """The process's own memory (heap, arrays), not the file pages a memmap maps in: RssAnon on Linux."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # elsewhere: the peak, an upper bound


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--dir", default=None, help="where to write the memmaps (default: a temporary folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        x, y = write_data(folder, args.rows)
        on_disk = (x.nbytes + y.nbytes) / 2**20
        result = fit(x, y, args.batch, args.steps)
        print(f"# python examples/out_of_core.py {' '.join(sys.argv[1:] if argv is None else argv)}".rstrip())
        print(f"data on disk: {args.rows} rows, {on_disk:.0f} MiB; the process's own memory after the fit: "
              f"{anonymous_memory_mb():.0f} MiB")
        print("coefficient  true     fitted mean  fitted sd")
        for j, (b, m, s) in enumerate(zip(TRUE_BETA, result.mean["beta"], result.std["beta"])):
            print(f"beta[{j + 1}]      {b:+.3f}   {m:+.4f}      {s:.4f}")
        print(f"sigma        {TRUE_SIGMA:+.3f}   {float(result.mean['sigma']):+.4f}      "
              f"{float(result.std['sigma']):.4f}")
        return result


if __name__ == "__main__":
    main()
