"""Did inference work? Pareto-smoothed importance sampling and simulation-based calibration.

- ``psis_khat``: fit a generalized Pareto to the tail of the importance
  ratios p(x, z) / q(z) of a fitted guide (Vehtari et al., "Pareto smoothed
  importance sampling"; Yao et al. 2018, "Yes, but did it work?"). k-hat
  below 0.5 is good, 0.5-0.7 usable, above 0.7 the guide is not to be trusted.
- ``sbc``: simulation-based calibration (Talts et al. 2018): with parameters
  drawn from the prior and data from the model, the rank of the true
  parameter among posterior draws is uniform exactly when inference is
  calibrated.
"""
from dataclasses import dataclass, field

import numpy as np

from ..core import fold_in
from ..distributions.special import logsumexp
from .elbo import _log_weight, is_aux, max_batch_ndim, particle_reducer, run_guide_and_model
from .predictive import Predictive


def fit_generalized_pareto(x):
    """(k, sigma) of a generalized Pareto fitted to exceedances ``x`` > 0 (Zhang & Stephens 2009).

    An empirical-Bayes estimate: a grid of the parameter theta = -k / sigma,
    each weighted by its profile likelihood, then k at the posterior mean
    of theta. k is then shrunk towards 0.5 by a weak prior (as in PSIS).
    """
    x = np.sort(np.asarray(x, dtype=float))
    n = len(x)
    m = 30 + int(np.sqrt(n))
    quartile = x[int(n / 4 + 0.5) - 1]
    theta = 1.0 / x[-1] + (1.0 - np.sqrt(m / (np.arange(1, m + 1) - 0.5))) / (3.0 * quartile)
    k = np.mean(np.log1p(-theta[:, None] * x), axis=1)  # k(theta), in the common sign convention
    profile = n * (np.log(-theta / k) - k - 1.0)
    weights = np.exp(profile - logsumexp(profile))
    theta_hat = np.sum(theta * weights)
    k_hat = np.mean(np.log1p(-theta_hat * x))
    sigma = -k_hat / theta_hat
    return (n * k_hat + 10 * 0.5) / (n + 10), sigma


def _gpd_quantile(p, k, sigma):
    return sigma * np.expm1(-k * np.log1p(-p)) / k if abs(k) > 1e-12 else -sigma * np.log1p(-p)


def pareto_smooth(log_weights):
    """PSIS: replace the largest ratios by the expected order statistics of the fitted tail.

    Returns ``(smoothed normalized log weights, k_hat)``.
    """
    lw = np.asarray(log_weights, dtype=float) - np.max(log_weights)
    s = len(lw)
    tail = int(min(0.2 * s, 3 * np.sqrt(s)))
    if tail < 5:
        raise ValueError(f"pareto_smooth: {s} samples are too few to fit a tail (need at least 25)")
    order = np.argsort(lw)
    cutoff = lw[order[-tail - 1]]
    exceed = np.exp(lw[order[-tail:]]) - np.exp(cutoff)
    if exceed.max() < 1e-10:  # equal weights up to rounding (q is the posterior): no tail to fit
        return lw - logsumexp(lw), -np.inf
    k, sigma = fit_generalized_pareto(exceed)
    smoothed = lw.copy()
    if np.isfinite(k) and sigma > 0:
        quantiles = _gpd_quantile((np.arange(tail) + 0.5) / tail, k, sigma) + np.exp(cutoff)
        smoothed[order[-tail:]] = np.minimum(np.log(quantiles), 0.0)  # never above the largest raw weight
    return smoothed - logsumexp(smoothed), k


@dataclass
class PSISResult:
    """k-hat with its reading, the raw and smoothed log weights, and the guide's draws they weigh."""

    khat: float
    reading: str
    log_weights: np.ndarray
    smoothed_log_weights: np.ndarray
    draws: dict = field(repr=False)

    def importance_mean(self, site):
        """The importance-corrected posterior mean of ``site``: sum_s w_s z_s with the smoothed weights."""
        weights = np.exp(self.smoothed_log_weights)
        values = self.draws[site]
        return np.tensordot(weights, values, axes=(0, 0))


def reading(khat):
    return "good" if khat < 0.5 else ("ok" if khat <= 0.7 else "bad")


def psis_khat(model, guide, params, *args, num_samples=1000, rng_seed=0, **kwargs):
    """PSIS diagnostic of a fitted guide: ``num_samples`` draws in one vectorized run of guide and model."""
    plain = run_guide_and_model(model, guide, params, rng_seed, args, kwargs)
    nd = max_batch_ndim(*plain)
    shapes = {n: np.shape(s.value) for n, s in plain[0].items() if s.is_latent and not is_aux(s)}
    guide_trace, model_trace = run_guide_and_model(model, guide, params, fold_in(rng_seed, "psis"), args, kwargs,
                                                   num_samples, -(nd + 1))
    log_w = np.broadcast_to(np.asarray(_log_weight(guide_trace, model_trace, particle_reducer(num_samples, nd))),
                            (num_samples,))
    # every guide latent carries the particle axis first: fold it back to (num_samples,) + the site's shape
    draws = {n: np.reshape(np.asarray(guide_trace[n].value), (num_samples,) + shape) for n, shape in shapes.items()}
    smoothed, khat = pareto_smooth(log_w)
    return PSISResult(float(khat), reading(khat), np.array(log_w), smoothed, draws)


@dataclass
class SBCResult:
    """Ranks of the true values among ``num_posterior_samples`` draws, per site (simulations x components)."""

    ranks: dict
    p_values: dict
    num_posterior_samples: int
    bins: int

    def plot(self, path):
        """Rank histograms, one panel per site, written atomically to ``path`` (PNG)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ..files import atomic_write

        fig, axes = plt.subplots(1, len(self.ranks), figsize=(3.2 * len(self.ranks), 2.6), squeeze=False)
        for ax, (name, ranks) in zip(axes[0], self.ranks.items()):
            ax.hist(ranks.ravel(), bins=self.bins, range=(0, self.num_posterior_samples + 1), color="0.6")
            ax.axhline(ranks.size / self.bins, color="C3")
            ax.set_title(f"{name}: p = {self.p_values[name]:.3f}")
        with atomic_write(path, ".png.tmp") as f:
            fig.savefig(f, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        return path


def sbc(model, infer_fn, *args, num_simulations=100, num_posterior_samples=99, sites=None, rng_seed=0, bins=10,
        **kwargs):
    """Simulation-based calibration of ``infer_fn(data, rng_seed) -> {site: draws of shape (L,) + site shape}``.

    The prior and the data are drawn in one vectorized Predictive run;
    ``data`` is the dict of the model's observed sites for one simulation.
    Ranks of all components of a site are pooled into ``bins`` bins and
    tested for uniformity with a chi-square test.
    """
    if (num_posterior_samples + 1) % bins:
        raise ValueError(f"sbc: bins={bins} must divide num_posterior_samples + 1 = {num_posterior_samples + 1}")
    prior = Predictive(model, num_samples=num_simulations)(rng_seed, *args, **kwargs)
    from ..handlers import seed, trace

    tr = trace(seed(model, rng_seed)).get_trace(*args, **kwargs)
    observed = [n for n, s in tr.items() if s.type == "sample" and s.is_observed]
    latent = [n for n, s in tr.items() if s.is_latent] if sites is None else list(sites)
    ranks = {name: [] for name in latent}
    for i in range(num_simulations):  # one inference per simulated data set: the loop is over runs, not data
        data = {name: prior[name][i] for name in observed}
        draws = infer_fn(data, fold_in(rng_seed, "sbc", i))
        for name in latent:
            sample = np.asarray(draws[name])[:num_posterior_samples]
            if len(sample) != num_posterior_samples:
                raise ValueError(f"sbc: infer_fn gave {len(sample)} draws of {name!r}, "
                                 f"expected {num_posterior_samples}")
            ranks[name].append(np.sum(sample < prior[name][i], axis=0).ravel())
    ranks = {name: np.stack(r) for name, r in ranks.items()}
    from scipy.stats import chisquare  # imported on use: scipy.stats alone takes about a second to import

    p_values = {}
    for name, r in ranks.items():
        counts = np.histogram(r.ravel(), bins=bins, range=(0, num_posterior_samples + 1))[0]
        p_values[name] = float(chisquare(counts).pvalue)
    return SBCResult(ranks, p_values, num_posterior_samples, bins)
