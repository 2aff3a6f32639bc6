"""Did inference work? Pareto-smoothed importance sampling, simulation-based calibration, MCMC convergence.

- ``psis_khat``: fit a generalized Pareto to the tail of the importance
  ratios p(x, z) / q(z) of a fitted guide (Vehtari et al., "Pareto smoothed
  importance sampling"; Yao et al. 2018, "Yes, but did it work?"). k-hat
  below 0.5 is good, 0.5-0.7 usable, above 0.7 the guide is not to be trusted.
- ``sbc``: simulation-based calibration (Talts et al. 2018): with parameters
  drawn from the prior and data from the model, the rank of the true
  parameter among posterior draws is uniform exactly when inference is
  calibrated.
- ``r_hat``, ``ess``, ``mcse``, ``summary``: convergence of Markov chains, rank-normalized split R-hat and
  bulk/tail effective sample sizes (Vehtari et al. 2021), as the R package ``posterior`` computes them.
"""
import functools
import os
from dataclasses import dataclass, field

import numpy as np

from ..core import fold_in, sum_all
from ..distributions.special import logsumexp
from .elbo import (_log_weight, is_aux, max_batch_ndim, particle_reducer, run_guide_and_model, take_particle,
                   vectorized_or_looped)
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
    if quartile <= 0:  # most of the tail ties at the cutoff and one weight stands alone: no tail to fit, the worst
        return np.inf, np.nan
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
    """PSIS diagnostic of a fitted guide: ``num_samples`` draws in one vectorized run of guide and model
    (a loop with the same draws for a model that does not broadcast)."""
    plain = run_guide_and_model(model, guide, params, rng_seed, args, kwargs)
    nd = max_batch_ndim(*plain)
    shapes = {n: np.shape(s.value) for n, s in plain[0].items() if s.is_latent and not is_aux(s)}
    seed = fold_in(rng_seed, "psis")

    def vectorized():
        guide_trace, model_trace = run_guide_and_model(model, guide, params, seed, args, kwargs, num_samples,
                                                       -(nd + 1))
        log_w = np.broadcast_to(np.asarray(_log_weight(guide_trace, model_trace, particle_reducer(num_samples, nd))),
                                (num_samples,))
        # every guide latent carries the particle axis first: fold it back to (num_samples,) + the site's shape
        return log_w, {n: np.reshape(np.asarray(guide_trace[n].value), (num_samples,) + shape)
                       for n, shape in shapes.items()}

    def looped():
        log_w, draws = np.empty(num_samples), {n: np.empty((num_samples,) + shape) for n, shape in shapes.items()}
        for k in range(num_samples):
            with take_particle(k, num_samples, -(nd + 1)):
                guide_trace, model_trace = run_guide_and_model(model, guide, params, seed, args, kwargs)
            log_w[k] = _log_weight(guide_trace, model_trace, sum_all)
            for n in shapes:
                draws[n][k] = guide_trace[n].value
        return log_w, draws

    log_w, draws = vectorized_or_looped(model, vectorized, looped, "importance samples")
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


def _sbc_replication(infer_fn, latent, num_posterior_samples, simulation, rng_seed):
    """One SBC replication: fit the simulated data, rank each true value among the posterior draws."""
    data, truth = simulation
    draws = infer_fn(data, rng_seed)
    ranks = {}
    for name in latent:
        sample = np.asarray(draws[name])[:num_posterior_samples]
        if len(sample) != num_posterior_samples:
            raise ValueError(f"sbc: infer_fn gave {len(sample)} draws of {name!r}, expected {num_posterior_samples}")
        ranks[name] = np.sum(sample < truth[name], axis=0).ravel()
    return ranks


def _sbc_fingerprint(num_posterior_samples, truth):
    """What a saved SBC run must share with the one resuming it: the draw count and the simulated truths
    (a digest of the prior draws, so a changed model, argument or seed is caught)."""
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    for name, values in truth.items():
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(values, dtype=float).tobytes())
    return f"L={num_posterior_samples};{digest.hexdigest()}"


def _load_sbc_progress(path, fingerprint, ranks, done):
    """Fill ``ranks`` and ``done`` from a saved run at ``path``, after checking it is the same run."""
    from ..errors import CheckpointError

    with np.load(path, allow_pickle=False) as saved:
        if "fingerprint" not in saved.files or str(saved["fingerprint"]) != fingerprint:
            raise CheckpointError(f"sbc: {path} holds another SBC run (other model, arguments, seed, "
                                  f"num_simulations or num_posterior_samples); resume=True needs the same ones")
        for k, name in enumerate(ranks):
            ranks[name][...] = saved[f"ranks_{k}"]
        done[...] = saved["done"]


def _save_sbc_progress(path, fingerprint, ranks, done):
    from .svi import save_npz_atomic

    arrays = {f"ranks_{k}": r for k, r in enumerate(ranks.values())}
    save_npz_atomic(path, dict(arrays, done=done, fingerprint=np.array(fingerprint), sites=np.array(list(ranks))))


def sbc(model, infer_fn, *args, num_simulations=100, num_posterior_samples=99, sites=None, rng_seed=0, bins=10,
        executor=None, path=None, resume=False, **kwargs):
    """Simulation-based calibration of ``infer_fn(data, rng_seed) -> {site: draws of shape (L,) + site shape}``.

    The prior and the data are drawn in one vectorized Predictive run;
    ``data`` is the dict of the model's observed sites for one simulation.
    Ranks of all components of a site are pooled into ``bins`` bins and
    tested for uniformity with a chi-square test.

    Replications are independent fits, run through ``fit_many``'s engine: ``executor`` (a process pool, a
    Dask cluster's executor) runs them in its workers, with ``infer_fn`` defined at module level.
    Replication i is seeded by ``fold_in(rng_seed, "sbc", i)`` whatever ran it, so the ranks do not depend
    on the executor. With ``path``, the ranks are saved atomically as each replication finishes;
    ``resume=True`` loads that file and runs only the replications it lacks, giving the ranks an
    uninterrupted run gives.
    """
    if (num_posterior_samples + 1) % bins:
        raise ValueError(f"sbc: bins={bins} must divide num_posterior_samples + 1 = {num_posterior_samples + 1}")
    if resume and path is None:
        raise ValueError("sbc: resume=True needs the path= of the saved ranks")
    prior = Predictive(model, num_samples=num_simulations)(rng_seed, *args, **kwargs)
    from ..handlers import seed, trace
    from .parallel import run_tasks

    tr = trace(seed(model, rng_seed)).get_trace(*args, **kwargs)
    observed = [n for n, s in tr.items() if s.type == "sample" and s.is_observed]
    latent = [n for n, s in tr.items() if s.is_latent] if sites is None else list(sites)
    truth = {name: np.asarray(prior[name]) for name in latent}
    ranks = {name: np.full((num_simulations, int(np.prod(truth[name].shape[1:]))), -1, dtype=np.int64)
             for name in latent}
    done = np.zeros(num_simulations, dtype=bool)
    fingerprint = _sbc_fingerprint(num_posterior_samples, truth)
    if resume and os.path.exists(path):
        _load_sbc_progress(path, fingerprint, ranks, done)

    def record(i, replication_ranks):
        for name, r in replication_ranks.items():
            ranks[name][i] = r
        done[i] = True
        if path is not None:
            _save_sbc_progress(path, fingerprint, ranks, done)

    todo = [int(i) for i in np.flatnonzero(~done)]
    simulations = [({name: prior[name][i] for name in observed}, {name: truth[name][i] for name in latent})
                   for i in todo]
    replication = functools.partial(_sbc_replication, infer_fn, latent, num_posterior_samples)
    run_tasks(replication, todo, simulations, [fold_in(rng_seed, "sbc", i) for i in todo], executor,
              on_result=record, caller="sbc")
    from scipy.stats import chisquare  # imported on use: scipy.stats alone takes about a second to import

    p_values = {}
    for name, r in ranks.items():
        counts = np.histogram(r.ravel(), bins=bins, range=(0, num_posterior_samples + 1))[0]
        p_values[name] = float(chisquare(counts).pvalue)
    return SBCResult(ranks, p_values, num_posterior_samples, bins)


# ---------------------------------------------------------------------------------------------------------------
# Convergence of Markov chains: rank-normalized split R-hat and effective sample size
# (Vehtari, Gelman, Simpson, Carpenter, Bürkner 2021, "Rank-normalization, folding, and localization: an improved
# R-hat for assessing convergence of MCMC"), computed as the R package ``posterior`` computes them (its rhat,
# ess_bulk, ess_tail, ess_mean, mcse_mean), so that numbers can be compared with Stan's and posteriordb's.
# Every function takes draws of shape (chains, draws) or (chains, draws, *shape) and works on all entries at once.

def _as_chains(draws, fn):
    """``draws`` as a float array (chains, draws, K) with the entries' shape, checked."""
    x = np.asarray(draws, dtype=float)
    if x.ndim < 2:
        raise ValueError(f"{fn}: draws must have shape (chains, draws, *shape), got shape {x.shape}")
    if x.shape[1] < 4:
        raise ValueError(f"{fn}: {x.shape[1]} draws per chain are too few (need at least 4), shape {x.shape}")
    return x.reshape(x.shape[:2] + (-1,)), x.shape[2:]


def _split_chains(x):
    """Each chain cut into its first and second half (the middle draw dropped when the count is odd).

    Split chains make R-hat and ESS see a chain that drifts within itself, which whole chains would not.
    """
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half:]], axis=0)


def _average_ranks(x):
    """Ranks 1..S of all draws of each entry (axis 0 of a (S, K) array), ties given their average rank."""
    s = x.shape[0]
    order = np.argsort(x, axis=0, kind="stable")
    sorted_x = np.take_along_axis(x, order, axis=0)
    position = np.arange(s)[:, None] * np.ones(x.shape[1:], dtype=int)
    new_run = np.ones(sorted_x.shape, dtype=bool)
    new_run[1:] = sorted_x[1:] != sorted_x[:-1]
    run_start = np.maximum.accumulate(np.where(new_run, position, 0), axis=0)
    ends_run = np.ones(sorted_x.shape, dtype=bool)
    ends_run[:-1] = new_run[1:]
    run_end = np.flip(np.minimum.accumulate(np.flip(np.where(ends_run, position, s), axis=0), axis=0), axis=0)
    ranks = np.empty(x.shape)
    np.put_along_axis(ranks, order, (run_start + run_end) / 2.0 + 1.0, axis=0)
    return ranks


def _z_scale(x):
    """Rank-normalization: each draw replaced by Phi^-1((r - 3/8) / (S + 1/4)), r its rank among all S draws.

    Blom's normal scores make R-hat and ESS well defined for heavy tails (no finite variance needed)
    and invariant to monotone transforms of the parameter.
    """
    from scipy.special import ndtri

    c, n, k = x.shape
    ranks = _average_ranks(x.reshape(c * n, k))
    return ndtri((ranks - 0.375) / (c * n + 0.25)).reshape(x.shape)


def _fold(x):
    """|x - median|: R-hat of the folded draws sees chains that differ in scale (their tails), not location."""
    return np.abs(x - np.median(x.reshape(-1, x.shape[2]), axis=0))


def _degenerate(x):
    """Entries for which the diagnostics are undefined: non-finite draws, or all draws equal."""
    flat = x.reshape(-1, x.shape[2])
    return ~np.all(np.isfinite(flat), axis=0) | np.all(flat == flat[:1], axis=0)


def _rhat_basic(x):
    """Classic potential scale reduction sqrt(((n-1)/n W + B/n) / W) of chains x (C, n, K)."""
    n = x.shape[1]
    within = np.mean(np.var(x, axis=1, ddof=1), axis=0)
    between = n * np.var(np.mean(x, axis=1), axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + n - 1) / n)


def _autocovariance(x):
    """Biased autocovariances (1/n sum_t y_t y_{t+k}) of each chain at lags 0..n-1, by FFT (zero-padded, so
    the correlation is linear, not circular)."""
    from scipy.fft import irfft, next_fast_len, rfft

    n = x.shape[1]
    centred = x - np.mean(x, axis=1, keepdims=True)
    size = next_fast_len(2 * n)
    spectrum = rfft(centred, n=size, axis=1)
    return irfft(spectrum * np.conj(spectrum), n=size, axis=1)[:, :n] / n


def _ess_basic(x):
    """ESS of chains x (C, n, K): C n / tau, tau = -1 + 2 sum_t rho_t by Geyer's initial monotone sequence.

    rho_t combines within-chain autocovariance and between-chain variance (Stan's estimator); sums of
    adjacent pairs rho_2m + rho_2m+1 are positive for a reversible chain, so the sum stops at the first
    non-positive pair and the pairs are made non-increasing. The loop of the reference implementation is
    written here as masks and a running minimum over all entries at once.
    """
    c, n, k = x.shape
    acov = _autocovariance(x)
    mean_var = np.mean(acov[:, 0], axis=0) * n / (n - 1)
    var_plus = mean_var * (n - 1) / n
    if c > 1:
        var_plus = var_plus + np.var(np.mean(x, axis=1), axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var - np.mean(acov, axis=0)) / var_plus  # (n, K)
    rho[0] = 1.0  # by definition; the formula gives 1 - W / ((n - 1) var_plus) there
    num_pairs = n // 2
    pairs = rho[0:2 * num_pairs:2] + rho[1:2 * num_pairs:2]  # (num_pairs, K)
    # pair m is examined while the previous pair was positive and 2 (m - 1) < n - 5, as in posterior's loop
    last_allowed = max(0, min(num_pairs - 1, int(np.ceil((n - 5) / 2.0))))  # 0 for chains of 5 draws or fewer
    stops = ~(pairs[:last_allowed] > 0)
    first_stop = np.argmax(stops, axis=0) if last_allowed else np.zeros(k, dtype=int)
    last = np.where(stops.any(axis=0), first_stop, last_allowed)  # index of the last pair examined
    entries = np.arange(k)
    rho_last_even = rho[2 * last, entries]
    rho_last_even = np.where((rho_last_even > 0) | (pairs[last, entries] >= 0), rho_last_even, 0.0)
    monotone = np.minimum.accumulate(pairs, axis=0)
    used = np.arange(num_pairs)[:, None] < last[None, :]
    tau = -1.0 + 2.0 * np.sum(np.where(used, monotone, 0.0), axis=0) + rho_last_even
    tau = np.maximum(tau, 1.0 / np.log10(c * n))  # bounds ESS for antithetic chains
    return c * n / tau


def _reshape(values, shape):
    values = np.asarray(values, dtype=float)
    return float(values[0]) if shape == () else values.reshape(shape)


def _undefined_to_nan(values, x):
    return np.where(_degenerate(x), np.nan, values)


def r_hat(draws):
    """Rank-normalized split R-hat: the larger of bulk R-hat (of rank-normalized split chains) and tail R-hat
    (the same, of the draws folded about their median). Near 1 when chains agree; above 1.01 is a warning.

    ``draws``: (chains, draws) or (chains, draws, *shape); returns a float or an array of ``shape``.
    NaN for an entry whose draws are all equal or not finite.

        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> bool(r_hat(rng.normal(size=(4, 1000))) < 1.01)
        True
        >>> bool(r_hat(rng.normal(size=(4, 1000)) + np.arange(4)[:, None]) > 1.5)
        True
    """
    x, shape = _as_chains(draws, "r_hat")
    split = _split_chains(x)
    bulk = _rhat_basic(_z_scale(split))
    tail = _rhat_basic(_z_scale(_fold(split)))
    return _reshape(_undefined_to_nan(np.maximum(bulk, tail), x), shape)


def _tail_indicator_ess(x, prob):
    """ESS of the indicator x <= q_prob (q the type-7 quantile of all draws): how well that quantile is known."""
    q = np.quantile(x.reshape(-1, x.shape[2]), prob, axis=0)
    indicator = (x <= q).astype(float)
    ess = _ess_basic(_split_chains(indicator))
    return np.where(_degenerate(indicator), np.nan, ess)


ESS_KINDS = ("bulk", "tail", "mean")


def ess(draws, kind="bulk"):
    """Effective sample size of ``draws`` (chains, draws, *shape), as the R package ``posterior`` computes it.

    - ``"bulk"``: ESS of the rank-normalized split chains; how well the centre of the distribution is known.
    - ``"tail"``: the smaller ESS of the indicators of the 5% and 95% quantiles; how well the tails are known.
    - ``"mean"``: ESS of the split chains themselves; the one behind the Monte Carlo error of the mean.

    Autocorrelations by FFT, truncated and made monotone by Geyer's initial monotone sequence. Returns a
    float or an array of ``shape``; NaN where the draws are all equal or not finite.

        >>> import numpy as np
        >>> draws = np.random.default_rng(0).normal(size=(4, 1000))
        >>> bool(3500 < ess(draws) < 4500)
        True
    """
    if kind not in ESS_KINDS:
        raise ValueError(f"ess: kind must be one of {ESS_KINDS}, got {kind!r}")
    x, shape = _as_chains(draws, "ess")
    if kind == "bulk":
        values = _ess_basic(_z_scale(_split_chains(x)))
    elif kind == "mean":
        values = _ess_basic(_split_chains(x))
    else:
        values = np.fmin(_tail_indicator_ess(x, 0.05), _tail_indicator_ess(x, 0.95))
    return _reshape(_undefined_to_nan(values, x), shape)


def mcse(draws):
    """Monte Carlo standard error of the mean of ``draws``: sd / sqrt(ESS of the mean)."""
    x, shape = _as_chains(draws, "mcse")
    sd = np.std(x.reshape(-1, x.shape[2]), axis=0, ddof=1)
    values = sd / np.sqrt(_ess_basic(_split_chains(x)))
    return _reshape(_undefined_to_nan(values, x), shape)


def _stan_names(site, shape):
    """Stan's names of a site's entries, 1-based and row-major: ``beta[1]``, ``L[2,1]``; a scalar keeps its name."""
    if shape == ():
        return [site]
    return [f"{site}[{','.join(str(i + 1) for i in index)}]" for index in np.ndindex(*shape)]


class Summary:
    """A table of posterior summaries, one row per entry of each site (Stan's ``beta[1]`` naming).

    ``columns`` are the statistics' names, ``names`` the rows', ``values`` a (rows, columns) array;
    ``summary["beta[1]"]`` is one row as a dict, ``summary.column("r_hat")`` one column as an array.
    ``str(summary)`` (or ``print``) gives the aligned table.
    """

    def __init__(self, names, columns, values):
        self.names = list(names)
        self.columns = list(columns)
        self.values = np.asarray(values, dtype=float).reshape(len(self.names), len(self.columns))

    def __len__(self):
        return len(self.names)

    def __getitem__(self, name):
        try:
            row = self.values[self.names.index(name)]
        except ValueError:
            raise KeyError(f"Summary: no row {name!r}; rows are {self.names}") from None
        return dict(zip(self.columns, row.tolist()))

    def column(self, name):
        if name not in self.columns:
            raise KeyError(f"Summary: no column {name!r}; columns are {self.columns}")
        return self.values[:, self.columns.index(name)]

    def to_dict(self):
        return {name: self[name] for name in self.names}

    def __str__(self):
        def cell(column, value):
            if np.isnan(value):
                return "nan"
            if column.startswith("ess"):
                return f"{value:.0f}"
            return f"{value:.2f}" if column == "r_hat" else f"{value:#.3g}"

        table = [[""] + self.columns] + [[name] + [cell(c, v) for c, v in zip(self.columns, row)]
                                         for name, row in zip(self.names, self.values)]
        widths = [max(len(row[j]) for row in table) for j in range(len(table[0]))]
        return "\n".join(" ".join(text.ljust(w) if j == 0 else text.rjust(w) for j, (text, w) in
                                  enumerate(zip(row, widths))) for row in table)

    __repr__ = __str__


def summary(samples, prob=0.9):
    """Posterior summary of ``samples`` {site: (chains, draws, *shape)}: per entry its mean, sd, the central
    ``prob`` interval's ends and median, ess_bulk, ess_tail, r_hat and the MCSE of the mean.

        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> table = summary({"mu": rng.normal(size=(4, 500)), "beta": rng.normal(size=(4, 500, 2))})
        >>> table.names, table.columns[:5]
        (['mu', 'beta[1]', 'beta[2]'], ['mean', 'sd', '5%', '50%', '95%'])
    """
    if not 0 < prob < 1:
        raise ValueError(f"summary: prob must be in (0, 1), got {prob}")
    low = (1 - prob) / 2
    quantiles = (low, 0.5, 1 - low)
    columns = ["mean", "sd"] + [f"{100 * q:.4g}%" for q in quantiles] + ["ess_bulk", "ess_tail", "r_hat", "mcse"]
    names, blocks = [], []
    for site, draws in samples.items():
        x = np.asarray(draws, dtype=float)
        if x.ndim < 2:
            raise ValueError(f"summary: site {site!r} has shape {x.shape}; expected (chains, draws, *shape)")
        flat = x.reshape(x.shape[0] * x.shape[1], -1)
        names += _stan_names(site, x.shape[2:])
        blocks.append(np.column_stack([
            np.mean(flat, axis=0), np.std(flat, axis=0, ddof=1), *np.quantile(flat, quantiles, axis=0),
            np.ravel(ess(x, "bulk")), np.ravel(ess(x, "tail")), np.ravel(r_hat(x)), np.ravel(mcse(x))]))
    return Summary(names, columns, np.concatenate(blocks) if blocks else np.empty((0, len(columns))))
