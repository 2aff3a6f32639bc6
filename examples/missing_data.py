"""PPCA with missing data, the other use of PPCA the course names.

We hide 20% of the entries of x at random, fit mean-field ADVI with the
``mask`` handler dropping the hidden entries' log-likelihood terms (the model
itself is unchanged), recover the principal axes, and impute the hidden
entries by their posterior predictive mean. The imputation error is
compared with filling each hidden entry by its row's observed mean.

    python examples/missing_data.py [--num-datapoints 2000] [--missing 0.2] [--steps 1000]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ppca import angle, probabilistic_pca  # noqa: E402

from ppl import condition, mask, seed  # noqa: E402
from ppl.infer import ADVI, Predictive  # noqa: E402
from ppl.optim import Adam  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-datapoints", type=int, default=2000)
    parser.add_argument("--data-dim", type=int, default=5)
    parser.add_argument("--latent-dim", type=int, default=2)
    parser.add_argument("--stddv", type=float, default=0.5)
    parser.add_argument("--missing", type=float, default=0.2, help="fraction of entries hidden")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=200, help="posterior predictive draws")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = (args.data_dim, args.latent_dim, args.num_datapoints, args.stddv)

    x, (w_true, _) = seed(probabilistic_pca, args.seed)(*sizes)
    hidden = np.random.default_rng(args.seed + 1).random(x.shape) < args.missing
    x_seen = np.where(hidden, 0.0, x)  # any finite filler: masked terms are not scored

    model = mask(condition(probabilistic_pca, {"x": x_seen}), {"x": ~hidden})
    result = ADVI(model, "meanfield", Adam(0.05), num_particles=2).run(args.steps, *sizes, rng_seed=args.seed + 1)
    draws = Predictive(probabilistic_pca, guide=result.guide, params=result.params, num_samples=args.samples,
                       return_sites=["x"])(args.seed + 2, *sizes)["x"]
    imputed = draws.mean(0)

    row_means = np.nanmean(np.where(hidden, np.nan, x), axis=1, keepdims=True)
    rmse = float(np.sqrt(np.mean((imputed - x)[hidden] ** 2)))
    baseline = float(np.sqrt(np.mean((np.broadcast_to(row_means, x.shape) - x)[hidden] ** 2)))
    w_mean = result.mean["w"]
    # The axes are identified up to rotation: compare the subspaces by their principal angle.
    subspace_angle = float(np.degrees(np.max(_principal_angles(w_mean, w_true))))
    print(f"PPCA d = {args.data_dim}, k = {args.latent_dim}, N = {args.num_datapoints}; "
          f"{hidden.mean():.1%} of the entries hidden")
    print(f"largest principal angle between fitted and true axes: {subspace_angle:.2f} deg")
    print(f"imputation RMSE on hidden entries: posterior predictive mean {rmse:.4f}; row-mean baseline {baseline:.4f}")
    return {"rmse": rmse, "baseline": baseline, "subspace_angle": subspace_angle,
            "first_axis_angle": angle(w_mean[:, :1], w_true[:, :1])}


def _principal_angles(a, b):
    qa, _ = np.linalg.qr(a)
    qb, _ = np.linalg.qr(b)
    return np.arccos(np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), -1.0, 1.0))


if __name__ == "__main__":
    main(sys.argv[1:])
