"""Probabilistic PCA with ppl, reproducing the course end to end.

The model is a plain function; nothing in it knows about inference:

    w ~ Normal(0, 2)      shape (d, k)   principal axes
    z ~ Normal(0, 1)      shape (k, N)   latent coordinates
    x ~ Normal(w z, sigma)               data

We draw data from the model under ``seed``, fit it by MAP (energy = -log
joint, Adam 0.05, 200 steps from ones) and by mean-field ADVI
(softplus(-4) scales, Adam 0.05, 100 steps), criticise both by running the
model forward with its latents ``replace``-d by the fitted values, and
check the answers against the closed-form maximum-likelihood solution of
Tipping and Bishop (1999).

    python examples/ppca.py [--num-datapoints 5000] [--map-steps 200] [--out figures]
"""
import argparse
import os
import sys
import time

import numpy as np

import ppl
import ppl.distributions as dist
from ppl import condition, replace, sample, seed
from ppl.infer import ADVI, MAP, Predictive, predictive_check
from ppl.files import atomic_write
from ppl.optim import Adam


def probabilistic_pca(data_dim, latent_dim, num_datapoints, stddv_datapoints):
    w = sample("w", dist.Normal(np.zeros([data_dim, latent_dim]), 2.0 * np.ones([data_dim, latent_dim])))
    z = sample("z", dist.Normal(np.zeros([latent_dim, num_datapoints]), np.ones([latent_dim, num_datapoints])))
    x = sample("x", dist.Normal(w @ z, stddv_datapoints * np.ones([data_dim, num_datapoints])))
    return x, (w, z)


def ml_solution(x, latent_dim, sigma):
    """Tipping & Bishop's maximum-likelihood W = U_k (L_k - sigma^2 I)^(1/2), up to rotation.

    Also returns the eigenvalues of S = X X' / N (the model has zero mean).
    """
    eigvals, eigvecs = np.linalg.eigh(x @ x.T / x.shape[1])
    order = np.argsort(eigvals)[::-1]
    eigvals, eigvecs = eigvals[order], eigvecs[:, order]
    return eigvecs[:, :latent_dim] * np.sqrt(np.maximum(eigvals[:latent_dim] - sigma**2, 0.0)), eigvals


def map_length(eigval, num_datapoints, sigma, prior_scale=2.0):
    """|w| where joint MAP over w and every z settles (k = 1): |w|^2 = tau sqrt(N lambda_1) - sigma^2.

    Profiling out each z_n = w'x_n / (|w|^2 + sigma^2) leaves
    -|w|^2/(2 tau^2) + |w|^2 N lambda_1 / (2 sigma^2 (|w|^2 + sigma^2)), maximised there.
    """
    return np.sqrt(prior_scale * np.sqrt(num_datapoints * eigval) - sigma**2)


def angle(a, b):
    """The angle in degrees between the column spaces' first directions, sign-free."""
    a, b = np.ravel(a), np.ravel(b)
    cos = abs(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.degrees(np.arccos(np.clip(cos, 0.0, 1.0))))


def sample_covariance(x):
    """The test statistic of the predictive check: the entries of X X' / N."""
    return (x @ x.T / x.shape[-1]).ravel()


def fit(x_train, args):
    sizes = (args.data_dim, args.latent_dim, args.num_datapoints, args.stddv)
    model = condition(probabilistic_pca, {"x": x_train})
    ones = {"w": np.ones((args.data_dim, args.latent_dim)), "z": np.ones((args.latent_dim, args.num_datapoints))}
    # Each use of randomness gets its own seed: seed(model, s) keys draws by (s, site name), so reusing the
    # data's seed for inference would reuse the very noise that made the data.
    map_result = MAP(model, Adam(args.map_lr, betas=(0.9, args.map_b2)), init_loc_fn=ones).run(
        args.map_steps, *sizes, rng_seed=args.seed + 1)
    advi = ADVI(model, "meanfield", Adam(args.advi_lr), num_particles=args.advi_particles, init_loc_fn=ones,
                init_scale_raw=-4.0, entropy="mc")
    advi_result = advi.run(args.advi_steps, *sizes, rng_seed=args.seed + 2)
    return map_result, advi_result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-datapoints", type=int, default=5000)
    parser.add_argument("--data-dim", type=int, default=2)
    parser.add_argument("--latent-dim", type=int, default=1)
    parser.add_argument("--stddv", type=float, default=0.5, help="sigma, the noise scale (known)")
    parser.add_argument("--map-steps", type=int, default=200)
    parser.add_argument("--map-lr", type=float, default=0.05)
    parser.add_argument("--map-b2", type=float, default=0.999, help="Adam's beta2 for MAP (0.99 converges faster)")
    parser.add_argument("--advi-steps", type=int, default=100)
    parser.add_argument("--advi-lr", type=float, default=0.05)
    parser.add_argument("--advi-particles", type=int, default=1)
    parser.add_argument("--no-figures", dest="figures", action="store_false")
    parser.add_argument("--ppc-samples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="figures", help="folder for the PNG figures")
    args = parser.parse_args(argv)
    sizes = (args.data_dim, args.latent_dim, args.num_datapoints, args.stddv)
    np.set_printoptions(precision=4, suppress=True)
    start = time.perf_counter()

    # Data: run the model forward under a seed.
    x_train, (actual_w, actual_z) = seed(probabilistic_pca, args.seed)(*sizes)
    print("Principal axes:")
    print(actual_w)

    map_result, advi_result = fit(x_train, args)
    w_map, z_map = map_result.values["w"], map_result.values["z"]
    w_mean, w_std = advi_result.mean["w"], advi_result.std["w"]
    print("\nMAP-estimated axes:")
    print(w_map)
    print("\nInferred axes (ADVI):")
    print(w_mean)
    print("Standard Deviation:")
    print(w_std)

    # Criticism: the model run forward with its latents replaced by fitted values.
    x_map, _ = seed(replace(probabilistic_pca, {"w": w_map, "z": z_map}), args.seed + 3)(*sizes)
    x_advi, _ = seed(replace(probabilistic_pca, {"w": w_mean, "z": advi_result.mean["z"]}), args.seed + 3)(*sizes)

    # Posterior predictive check: replicated data sets from the ADVI posterior.
    replicated = Predictive(probabilistic_pca, guide=advi_result.guide, params=advi_result.params,
                            num_samples=args.ppc_samples, return_sites=["x"])(args.seed + 4, *sizes)["x"]
    t_obs, t_rep, p_values = predictive_check(sample_covariance, x_train, replicated)

    # Ground truth and the closed-form answer.
    w_ml, eigvals = ml_solution(x_train, args.latent_dim, args.stddv)
    predicted = map_length(eigvals[0], args.num_datapoints, args.stddv)
    rows = [("truth", actual_w), ("MAP", w_map), ("ADVI mean", w_mean), ("ML (closed form)", w_ml)]
    print(f"\n{'':18s}{'axis':>22s}{'angle to truth':>16s}{'length':>9s}")
    for label, w in rows:
        print(f"{label:18s}{np.array2string(np.ravel(w), precision=4):>22s}{angle(w, actual_w):>14.2f} deg"
              f"{np.linalg.norm(w):>9.3f}")
    print(f"\nJoint MAP over w and every z heads for |w| = sqrt(tau sqrt(N lambda_1) - sigma^2) = {predicted:.3f}, "
          f"not the ML length {np.linalg.norm(w_ml):.3f}: the N latent z's shrink towards 0 and w grows to "
          f"compensate; after {args.map_steps} steps MAP's |w| = {np.linalg.norm(w_map):.3f}, on its way there.")
    print(f"\nPosterior predictive check (statistic: entries of X X'/N, {args.ppc_samples} replications):")
    print(f"  observed {np.array2string(t_obs, precision=3)}; p-values {np.array2string(p_values, precision=2)}")

    figures = []
    if args.figures:
        figures = save_figures(args.out, x_train, x_map, x_advi, map_result.losses, advi_result.losses, t_obs, t_rep)
        print(f"\nfigures: {', '.join(figures)}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return {"actual_w": actual_w, "w_map": w_map, "w_mean": w_mean, "w_std": w_std, "w_ml": w_ml,
            "predicted_map_length": predicted, "p_values": p_values, "figures": figures,
            "map": map_result, "advi": advi_result, "x_train": x_train}


def save_figures(out, x_train, x_map, x_advi, energy, neg_elbo, t_obs, t_rep):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out, exist_ok=True)
    paths = []

    def save(fig, name):
        path = os.path.join(out, name)
        with atomic_write(path, ".png.tmp") as f:  # a reader never sees half a file
            fig.savefig(f, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)

    for name, curve, label in [("ppca_map_energy.png", energy, "energy = -log joint"),
                               ("ppca_advi_elbo.png", -np.asarray(neg_elbo), "ELBO")]:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot(curve)
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        save(fig, name)
    for name, generated, title in [("ppca_map_criticism.png", x_map, "MAP"),
                                   ("ppca_advi_criticism.png", x_advi, "ADVI posterior mean")]:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.scatter(x_train[0], x_train[1], s=2, alpha=0.4, label="actual data")
        ax.scatter(generated[0], generated[1], s=2, alpha=0.4, label=f"generated ({title})")
        ax.legend(markerscale=5)
        ax.set_title(f"criticism: {title}")
        save(fig, name)
    d = int(round(np.sqrt(t_rep.shape[1])))
    entries = [(i, j) for i in range(d) for j in range(i, d)]  # S is symmetric
    fig, axes = plt.subplots(1, len(entries), figsize=(3 * len(entries), 2.8), squeeze=False)
    for ax, (i, j) in zip(axes[0], entries):
        ax.hist(t_rep[:, i * d + j], bins=30, color="0.7")
        ax.axvline(t_obs[i * d + j], color="C3")
        ax.set_title(f"S[{i},{j}] = (X X'/N)[{i},{j}]")
    fig.suptitle("posterior predictive check (red: observed data)", y=1.04)
    save(fig, "ppca_ppc.png")
    return paths


if __name__ == "__main__":
    main(sys.argv[1:])
