"""Choosing the latent dimension of PPCA by its evidence bound, the course's second use of the ELBO.

Data come from PPCA with d = 5 and a known k = 2. For k = 1..4 we fit
mean-field ADVI and report the ELBO, the importance-weighted bound (IWAE)
from the fitted guide, and the exact log marginal likelihood
log N(x; 0, W W' + sigma^2 I) at the maximum-likelihood W (Tipping & Bishop).
The likelihood at the ML W can only grow with k; the bounds, which pay for
every extra axis through the prior on w, peak at the true k.

The fits for the k's are independent: ``ppl.infer.fit_many`` runs them in
this process (the default), in a process pool (``--executor process``) or on
a Dask cluster (``--executor dask``, a LocalCluster of ``--workers``
processes), with the same numbers on each, since fit k is seeded by
``fold_in(seed, k's index)`` wherever it runs.

    python examples/model_selection.py [--num-datapoints 300] [--steps 1500] [--out figures]
                                       [--executor {none,process,dask}] [--workers 2]
"""
import argparse
import os
import sys

import numpy as np
import scipy.stats as st

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ppca import ml_solution, probabilistic_pca  # noqa: E402  (the same plain model)

from ppl import condition, seed  # noqa: E402
from ppl.core import fold_in  # noqa: E402
from ppl.infer import ADVI, Trace_ELBO, fit_many, log_evidence  # noqa: E402
from ppl.infer.parallel import make_executor  # noqa: E402
from ppl.files import atomic_write
from ppl.optim import Adam  # noqa: E402


def exact_log_likelihood(x, w, sigma):
    """log p(x | W) with z integrated out: x_n ~ N(0, W W' + sigma^2 I)."""
    cov = w @ w.T + sigma**2 * np.eye(x.shape[0])
    return float(st.multivariate_normal(np.zeros(x.shape[0]), cov).logpdf(x.T).sum())


def score(task, rng_seed):
    """One k of the sweep, ``task = (x, k, args)``: fit ADVI, then its ELBO, IWAE and the exact ML likelihood.

    At module level so that a process pool or a Dask worker can run it (a closure could not be sent).
    """
    x, k, args = task
    sizes = (x.shape[0], k, x.shape[1], args.stddv)
    model = condition(probabilistic_pca, {"x": x})
    result = ADVI(model, "meanfield", Adam(args.lr), num_particles=args.particles, init_scale_raw=-2.0).run(
        args.steps, *sizes, rng_seed=rng_seed, progress=False)
    elbo = float(np.mean(Trace_ELBO(args.eval_particles).elbo_particles(
        fold_in(rng_seed, "elbo"), result.params, model, result.guide, *sizes)))
    iwae = log_evidence(model, result.guide, result.params, *sizes, num_samples=args.iwae_samples,
                        rng_seed=fold_in(rng_seed, "iwae"))
    return elbo, iwae, exact_log_likelihood(x, ml_solution(x, k, args.stddv)[0], args.stddv)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-datapoints", type=int, default=300)
    parser.add_argument("--data-dim", type=int, default=5)
    parser.add_argument("--true-k", type=int, default=2)
    parser.add_argument("--max-k", type=int, default=4)
    parser.add_argument("--stddv", type=float, default=0.5)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--particles", type=int, default=4)
    parser.add_argument("--eval-particles", type=int, default=500)
    parser.add_argument("--iwae-samples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="figures")
    parser.add_argument("--executor", choices=["none", "process", "dask"], default="none",
                        help="where the fits run: this process, a process pool, or a Dask LocalCluster")
    parser.add_argument("--workers", type=int, default=2, help="workers of the process pool or Dask cluster")
    args = parser.parse_args(argv)

    x, (w_true, _) = seed(probabilistic_pca, args.seed)(args.data_dim, args.true_k, args.num_datapoints, args.stddv)
    ks = list(range(1, args.max_k + 1))
    with make_executor(args.executor, args.workers) as executor:
        rows = fit_many(score, [(x, k, args) for k in ks], executor=executor, rng_seed=args.seed)
    print(f"PPCA, d = {args.data_dim}, N = {args.num_datapoints}, true k = {args.true_k}")
    print(f"{'k':>3s}{'ELBO':>14s}{'IWAE':>14s}{'log p(x | W_ML)':>18s}")
    for k, (elbo, iwae, ml) in zip(ks, rows):
        print(f"{k:3d}{elbo:14.2f}{iwae:14.2f}{ml:18.2f}")
    best_elbo = ks[int(np.argmax([r[0] for r in rows]))]
    best_iwae = ks[int(np.argmax([r[1] for r in rows]))]
    print(f"chosen k: ELBO -> {best_elbo}, IWAE -> {best_iwae} (true {args.true_k})")
    figure = save_figure(args.out, ks, rows)
    print(f"figure: {figure}")
    return {"ks": ks, "rows": rows, "best_elbo": best_elbo, "best_iwae": best_iwae, "figure": figure}


def save_figure(out, ks, rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 3.4))
    rows = np.asarray(rows)
    for column, label in enumerate(["ELBO", "IWAE", "log p(x | W_ML)"]):
        ax.plot(ks, rows[:, column], "o-", label=label)
    ax.set_xlabel("latent dimension k")
    ax.set_ylabel("nats")
    ax.set_xticks(ks)
    ax.legend()
    path = os.path.join(out, "ppca_model_selection.png")
    with atomic_write(path, ".png.tmp") as f:  # a reader never sees half a file
        fig.savefig(f, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


if __name__ == "__main__":
    main(sys.argv[1:])
