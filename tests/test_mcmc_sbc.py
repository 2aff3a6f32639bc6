"""Simulation-based calibration of NUTS on a small hierarchical model, and the power of that check (issue #15).

The model is the eight-schools shape with twelve groups, non-centred as users write it for weak data:
mu ~ N(0, 1), tau ~ HalfNormal(1) (the constrained site: NUTS samples log tau), z_j ~ N(0, 1),
y_j ~ N(mu + tau z_j, sigma_j) with known sigma_j from 1 to 2. Every replication of ``diagnostics.sbc`` draws
(mu, tau, z, y) from the prior and fits y with a short single NUTS chain; if NUTS, its warm-up and the
constrained-space transform are right, the rank of each true value among the posterior draws is uniform.

Settings, chosen for power per CPU second (each replication is one NUTS fit, 138 iterations of 12-15
leapfrog steps, about 1.7 s of one core here):

- 20 replications. The twelve z_j pool 240 ranks per run, which is where the power lies; a scalar site
  alone (mu, tau) needs far more replications to see a 30% error, and with four groups ~60 would be
  needed (idealized ranks, binomial given the truth's quantile). Subsampling 96 replications of four
  such runs (seeds 0-3, 24 each) as runs of n: the 30%-too-narrow posterior below is rejected at
  p < 0.01 in 91% of runs of 12, 97.6% of 16, 99.5% of 20, while NUTS's own draws are rejected (any of
  the three sites) in about 3%, the chance rate of three tests at 0.01. The full 96 give p-values
  mu 0.17, tau 0.83, z 0.35 for NUTS and z 1e-45 for the narrowed posterior. A grosser bug is caught
  outright: NUTS with tau's log-Jacobian lost (emulated by a factor -log tau) gives tau p = 5e-30 at these
  settings, every tau rank in the top bin but one.
- 19 kept draws, 10 bins: ranks 0..19, two per bin. Few draws per fit cost little resolution here.
- 100 warm-up iterations (Stan's windows shrunk to 15 / 75 / 10 %), then 38 draws thinned by 2: tau,
  the slowest site, has lag-1 autocorrelation 0.2-0.4 in the raw chain, about half that at lag 2, and
  SBC's ranks assume the kept draws are nearly independent.
- Two worker processes through ``executor=``, since the fits are independent: the functions they run are
  defined at module level. The 20 fits take ~34 s of CPU in all, so ~20 s wall on 2 idle cores.

The one-chain warnings NUTS gives at this length (R-hat, bulk ESS below 100) are expected and silenced;
divergences are not silenced away but counted and asserted rare.
"""
import functools
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import ppl
import ppl.distributions as dist
from ppl.infer import NUTS, diagnostics

SIGMA = np.linspace(1.0, 2.0, 12)
SITES = ("mu", "tau", "z")
NUM_SIMULATIONS = 20
NUM_POSTERIOR_SAMPLES = 19
BINS = 10
NUM_WARMUP = 100
THIN = 2
RNG_SEED = 0
THRESHOLD = 0.01
NARROWING = 0.7  # posterior sds 30% too small: a bug-sized error, as of a sampler that explores too little


def hierarchical(sigma, y=None):
    """Non-centred hierarchical normal: group effects theta_j = mu + tau z_j, observed with known sds."""
    mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    tau = ppl.sample("tau", dist.HalfNormal(1.0))
    with ppl.plate("groups", len(sigma)):
        z = ppl.sample("z", dist.Normal(0.0, 1.0))
        ppl.observe("y", dist.Normal(mu + tau * z, sigma), np.zeros(len(sigma)) if y is None else y)


def fit_path(store, rng_seed):
    return Path(store) / f"fit_{rng_seed}.npz"


def nuts_posterior(data, rng_seed, store):
    """One replication: a NUTS chain of ``NUM_POSTERIOR_SAMPLES * THIN`` draws, every ``THIN``-th kept.

    The fit is also written to ``store`` (keyed by the replication's seed, with its data and divergence
    count), so the miscalibrated run reuses it: the fits run in worker processes, out of reach of an
    in-memory cache.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="NUTS: (R-hat above|bulk ESS below)")
        result = NUTS(hierarchical).run(NUM_POSTERIOR_SAMPLES * THIN, SIGMA, data["y"], num_warmup=NUM_WARMUP,
                                        num_chains=1, rng_seed=rng_seed, progress=False)
    draws = {name: result.samples[name][0, ::THIN] for name in SITES}
    np.savez(fit_path(store, rng_seed), y=data["y"], divergences=result.divergences, **draws)
    return draws


def narrowed_posterior(data, rng_seed, store, factor=NARROWING):
    """The stored NUTS draws of this replication shrunk about their mean by ``factor``: the right centre
    with every posterior sd ``factor`` times too small."""
    path = fit_path(store, rng_seed)
    if not path.exists():
        raise FileNotFoundError(f"narrowed_posterior: no stored NUTS fit {path}; the calibrated SBC run makes them")
    with np.load(path) as fit:
        if not np.array_equal(fit["y"], data["y"]):
            raise ValueError(f"narrowed_posterior: {path} was fitted to other data than replication seed {rng_seed}")
        return {name: shrunk(fit[name], factor) for name in SITES}


def shrunk(draws, factor):
    centre = np.mean(draws, axis=0)
    return centre + factor * (draws - centre)


def rank_counts(ranks):
    return np.histogram(ranks.ravel(), bins=BINS, range=(0, NUM_POSTERIOR_SAMPLES + 1))[0]


def run_sbc(infer_fn, executor=None):
    return diagnostics.sbc(hierarchical, infer_fn, SIGMA, num_simulations=NUM_SIMULATIONS,
                           num_posterior_samples=NUM_POSTERIOR_SAMPLES, bins=BINS, rng_seed=RNG_SEED,
                           executor=executor)


@pytest.fixture(scope="module")
def nuts_sbc(tmp_path_factory):
    """The calibrated SBC run, NUTS fits in two worker processes; returns (result, the fits' folder)."""
    store = tmp_path_factory.mktemp("nuts_fits")
    with ProcessPoolExecutor(2) as pool:
        result = run_sbc(functools.partial(nuts_posterior, store=store), executor=pool)
    return result, store


def test_nuts_passes_sbc_on_a_hierarchical_model(nuts_sbc):
    """Every site's ranks are uniform by the chi-square test (p above 0.01, seed fixed), the histograms are
    well formed, and the sampler was healthy (divergences rare), so the pass is not of a broken chain."""
    result, store = nuts_sbc
    assert list(result.ranks) == list(SITES)
    for name, width in (("mu", 1), ("tau", 1), ("z", len(SIGMA))):
        ranks = result.ranks[name]
        assert ranks.shape == (NUM_SIMULATIONS, width), name
        assert ranks.min() >= 0 and ranks.max() <= NUM_POSTERIOR_SAMPLES, (name, ranks.min(), ranks.max())
        assert rank_counts(ranks).sum() == ranks.size
        assert result.p_values[name] > THRESHOLD, (name, result.p_values, rank_counts(ranks))
    # the 240 pooled z ranks: uniform ranks fill every bin (24 expected in each) and centre on L / 2
    z = result.ranks["z"]
    assert np.all(rank_counts(z) > 0), rank_counts(z)
    standard_error = np.sqrt(((NUM_POSTERIOR_SAMPLES + 1) ** 2 - 1) / 12 / z.size)
    assert abs(z.mean() - NUM_POSTERIOR_SAMPLES / 2) < 3 * standard_error, (z.mean(), standard_error)
    fits = sorted(Path(store).glob("fit_*.npz"))
    assert len(fits) == NUM_SIMULATIONS, fits
    divergences = 0
    for path in fits:
        with np.load(path) as fit:
            divergences += int(fit["divergences"])
    assert divergences <= 0.01 * NUM_SIMULATIONS * NUM_POSTERIOR_SAMPLES * THIN, divergences


def test_sbc_rejects_a_posterior_30_percent_too_narrow(nuts_sbc):
    """The same SBC (replications, bins, threshold) on the same NUTS fits with every posterior sd 30% too
    small fails: some site's p-value falls below 0.01, and the rank histogram of z is U-shaped, as an
    overconfident posterior makes it (truths land in the tails of the draws: ~18.5% of ranks in each outer
    bin instead of 10%). This is the test's power: a bug of that size in NUTS would not pass it."""
    _, store = nuts_sbc
    bad = run_sbc(functools.partial(narrowed_posterior, store=store))
    assert min(bad.p_values.values()) < THRESHOLD, bad.p_values
    counts = rank_counts(bad.ranks["z"])
    expected_outer = 2 * bad.ranks["z"].size / BINS
    assert counts[0] + counts[-1] > 1.4 * expected_outer, counts
