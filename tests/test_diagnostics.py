"""PSIS k-hat and simulation-based calibration, on cases whose answer is known."""
import numpy as np
import pytest
import scipy.stats as st

import ppl.distributions as dist
from ppl import observe, param, plate, sample
from ppl.infer import ADVI, diagnostics
from ppl.optim import Adam

DATA = np.array([0.9, 1.7, 0.3, 2.2, 1.1, 1.4])


def normal_normal(data):
    mu = sample("mu", dist.Normal(0.0, 2.0))
    with plate("data", len(data)):
        observe("x", dist.Normal(mu, 1.0), data)


def posterior(data):
    precision = 1 / 4 + len(data)
    return data.sum() / precision, np.sqrt(1 / precision)


def test_generalized_pareto_fit_against_scipy():
    for k_true in (0.2, 0.7, 1.2):
        x = st.genpareto(k_true, scale=2.0).rvs(2000, random_state=np.random.default_rng(0))
        k, sigma = diagnostics.fit_generalized_pareto(x)
        k_scipy = st.genpareto.fit(x, floc=0)[0]
        assert abs(k - k_true) < 0.1 and abs(k - k_scipy) < 0.1 and abs(sigma / 2.0 - 1) < 0.15


def test_khat_small_for_exact_posterior_guide():
    mean, sd = posterior(DATA)

    def guide(data):
        sample("mu", dist.Normal(param("loc", mean), sd))

    result = diagnostics.psis_khat(normal_normal, guide, {"loc": mean}, DATA, num_samples=2000, rng_seed=1)
    assert result.khat < 0.5 and result.reading == "good"
    assert np.allclose(result.log_weights, result.log_weights[0])  # exact posterior: all ratios equal p(x)
    assert result.draws["mu"].shape == (2000,)


def test_khat_large_for_narrow_guide_on_heavy_tails():
    def model():
        sample("x", dist.StudentT(2.0, 0.0, 1.0))

    def guide():
        sample("x", dist.Normal(param("loc", 0.0), 0.3))

    result = diagnostics.psis_khat(model, guide, {"loc": 0.0}, num_samples=4000, rng_seed=0)
    assert result.khat > 0.7 and result.reading == "bad"


def test_importance_corrected_mean_beats_a_shifted_guide():
    mean, sd = posterior(DATA)

    def guide(data):
        sample("mu", dist.Normal(param("loc", mean + 0.5 * sd), 1.3 * sd))

    result = diagnostics.psis_khat(normal_normal, guide, {"loc": mean + 0.5 * sd}, DATA, num_samples=4000)
    assert abs(result.importance_mean("mu") - mean) < 0.1 * sd
    assert abs(np.exp(result.smoothed_log_weights).sum() - 1) < 1e-12


def regression(x, y=None):
    beta = sample("beta", dist.Normal(np.zeros(2), 1.0).to_event(1))
    with plate("data", len(x)):
        observe("y", dist.Normal(np.sum(x * beta, -1), 0.5), np.zeros(len(x)) if y is None else y)


X = np.random.default_rng(0).normal(size=(8, 2))


FITS = {}


def fullrank_advi(data, rng_seed, widen=1.0):
    """Full-rank ADVI (the exact family here); ``widen=0.5`` halves the posterior scale on purpose."""
    key = (data["y"].tobytes(), rng_seed)
    if key not in FITS:  # the miscalibrated run reuses the same fits: the same budget, half the time
        result = ADVI(regression, "fullrank", Adam(0.1), num_particles=8).run(100, X, data["y"], rng_seed=rng_seed,
                                                                              progress=False)
        FITS[key] = (result.mean["beta"], result.sample(99, rng_seed=rng_seed)["beta"])
    centre, draws = FITS[key]
    return {"beta": centre + widen * (draws - centre)}


def test_sbc_passes_for_fullrank_advi_and_fails_when_miscalibrated(tmp_path):
    good = diagnostics.sbc(regression, fullrank_advi, X, num_simulations=30, bins=5, rng_seed=0)
    bad = diagnostics.sbc(regression, lambda d, s: fullrank_advi(d, s, widen=0.5), X, num_simulations=30, bins=5,
                          rng_seed=0)
    assert good.ranks["beta"].shape == (30, 2)
    # over seeds 0-3 the calibrated p-values run 0.04-0.64 and the miscalibrated ones 3e-5 to 2e-4
    assert good.p_values["beta"] > 0.01
    assert bad.p_values["beta"] < 0.001
    path = good.plot(tmp_path / "ranks.png")
    assert (tmp_path / "ranks.png").stat().st_size > 1000 and str(path).endswith("ranks.png")


@pytest.mark.parametrize("n", [4, 5, 6, 9])
def test_short_chains_give_an_ess_within_its_bounds(n):
    """Split chains of 2-4 draws leave no autocorrelation pair to examine: tau is rho_0 = 1, bounded below
    by 1 / log10(C n) as posterior's loop does, never an error."""
    x = np.random.default_rng(n).normal(size=(2, n))
    split_draws = 2 * (n // 2) * 2
    for kind in ("bulk", "tail", "mean"):
        value = diagnostics.ess(x, kind)
        assert 0 < value <= split_draws * np.log10(split_draws) + 1e-9, (kind, value)
