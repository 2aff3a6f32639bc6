"""NUTS and HMC against exact posteriors, and the properties of the run (reproducible, executor-independent)."""
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as st_h

import ppl
import ppl.distributions as dist
from ppl import observe, plate, sample
from ppl.infer import diagnostics
from ppl.infer.mcmc import HMC, NUTS, _logaddexp, _NUTSKernel, run_chains, window_schedule
from ppl.infer.potential import Potential
from test_potential import eight_schools as eight_schools_centered  # the centred parameterization

X = np.array([0.9, 1.7, 0.3, 2.2, 1.1, 1.4])


def normal_normal(data):
    mu = sample("mu", dist.Normal(0.0, 2.0))
    with plate("data", len(data)):
        observe("x", dist.Normal(mu, 1.0), data)


def normal_posterior(data, prior_scale=2.0, noise=1.0):
    precision = 1 / prior_scale**2 + len(data) / noise**2
    return data.sum() / noise**2 / precision, np.sqrt(1 / precision)


def assert_mean_within_mcse(draws, mean, z=4.0):
    """|sample mean - exact| within z Monte Carlo standard errors (from the draws' own ESS)."""
    draws = np.asarray(draws)
    error = abs(draws.mean() - mean)
    assert error < z * diagnostics.mcse(draws), (draws.mean(), mean, diagnostics.mcse(draws))


def run_quiet(sampler, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sampler.run(*args, progress=False, **kwargs)


def test_window_schedule_is_stans():
    collect, ends = window_schedule(1000)
    assert sorted(ends) == [99, 149, 249, 449, 949]
    assert not collect[74] and collect[75] and collect[949] and not collect[950]
    collect, ends = window_schedule(120)  # too short for 75/25/50: 15% / 75% / 10%
    assert sorted(ends) == [18 + 90 - 1] and collect[18] and not collect[17] and not collect[108]


def test_nuts_recovers_conjugate_normal():
    result = run_quiet(NUTS(normal_normal), 1000, X, num_warmup=500, num_chains=2)
    mean, sd = normal_posterior(X)
    assert result.samples["mu"].shape == (2, 1000)
    assert_mean_within_mcse(result.samples["mu"], mean)
    assert result.std["mu"] == pytest.approx(sd, rel=0.08)
    assert result.divergences == 0 and 0.6 < result.stats["accept_prob"].mean() < 0.98


def beta_bernoulli(data):
    p = sample("p", dist.Beta(2.0, 3.0))
    with plate("data", len(data)):
        observe("x", dist.Bernoulli(probs=p), data)


def test_nuts_recovers_beta_bernoulli_through_the_logit_transform():
    data = np.array([1.0, 0, 1, 1, 0, 1, 1, 1])
    result = run_quiet(NUTS(beta_bernoulli), 1000, data, num_warmup=500, num_chains=2)
    exact = st.beta(2 + data.sum(), 3 + len(data) - data.sum())
    draws = result.samples["p"]
    assert np.all((draws > 0) & (draws < 1))
    assert_mean_within_mcse(draws, exact.mean())
    assert result.std["p"] == pytest.approx(exact.std(), rel=0.08)
    assert np.quantile(draws, 0.9) == pytest.approx(exact.ppf(0.9), abs=0.03)


def linear_regression(features, targets):
    beta = sample("beta", dist.Normal(np.zeros(features.shape[1]), 1.5).to_event(1))
    with plate("data", len(targets)):
        observe("y", dist.Normal(np.sum(features * beta, -1), 0.8), targets)


def test_nuts_recovers_bayesian_linear_regression_mean_and_covariance():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(12, 3))
    features[:, 2] = features[:, 1] + 0.3 * rng.normal(size=12)  # correlated coefficients
    targets = features @ np.array([1.0, -0.5, 0.7]) + 0.8 * rng.normal(size=12)
    precision = np.eye(3) / 1.5**2 + features.T @ features / 0.8**2
    cov = np.linalg.inv(precision)
    mean = cov @ features.T @ targets / 0.8**2
    result = run_quiet(NUTS(linear_regression), 1000, features, targets, num_warmup=500, num_chains=2)
    draws = result.samples["beta"]
    for i in range(3):
        assert_mean_within_mcse(draws[..., i], mean[i])
    np.testing.assert_allclose(np.cov(draws.reshape(-1, 3).T), cov, rtol=0.15, atol=0.1 * np.sqrt(
        np.outer(np.diag(cov), np.diag(cov))).max())


D = 100


def correlated_gaussian(scale_tril):
    sample("x", dist.MultivariateNormal(np.zeros(D), scale_tril=scale_tril))


def test_dense_mass_mixes_a_correlated_gaussian_in_far_fewer_steps():
    """Equicorrelated (rho = 0.95): the mean of x has sd ~ 0.975, along an axis a diagonal metric cannot see."""
    cov = 0.05 * np.eye(D) + 0.95 * np.ones((D, D))
    scale_tril = np.linalg.cholesky(cov)
    long_axis_sd = np.sqrt(0.95 + 0.05 / D)
    # depth 6 caps the identity-metric iterations of early warm-up at 64 steps (the test's budget)
    dense = run_quiet(NUTS(correlated_gaussian, dense_mass=True, max_tree_depth=6), 60, scale_tril,
                      num_warmup=500, num_chains=1)
    dense_steps = dense.stats["num_steps"].sum()
    assert np.std(dense.samples["x"].mean(axis=-1)) == pytest.approx(long_axis_sd, rel=0.35)
    # the diagonal metric, given more leapfrog steps than the dense one took, has not explored the long axis
    diagonal = run_quiet(NUTS(correlated_gaussian, max_tree_depth=6), 150, scale_tril, num_warmup=150,
                         num_chains=1)
    assert diagonal.stats["num_steps"].sum() > dense_steps
    assert np.std(diagonal.samples["x"].mean(axis=-1)) < 0.6 * long_axis_sd


SCHOOLS = (np.array([28.0, 8, -3, 7, -1, 1, 18, 12]), np.array([15.0, 10, 16, 11, 9, 11, 10, 18]))


REGRESSION = (np.random.default_rng(0).normal(size=(12, 3)), np.random.default_rng(1).normal(size=12))


@pytest.mark.parametrize("dense", [False, True])
def test_vectorized_and_sequential_chains_give_identical_draws(dense):
    """Chains whose potential requests are batched (each chain at its own point of its own tree) and chains
    run one at a time give the same draws: the batch's rows are the single evaluations."""
    vectorized = run_quiet(NUTS(linear_regression, dense_mass=dense), 60, *REGRESSION, num_warmup=60, num_chains=3,
                           rng_seed=5)
    sequential = run_quiet(NUTS(linear_regression, dense_mass=dense), 60, *REGRESSION, num_warmup=60, num_chains=3,
                           rng_seed=5, vectorize_chains=False)
    assert vectorized.potential.vectorized  # the chains did run batched
    depths = vectorized.stats["tree_depth"]
    assert np.any(depths != depths[:1])  # trees of different depths: the chains were at different steps
    np.testing.assert_array_equal(vectorized.positions, sequential.positions)
    for name in vectorized.stats:
        np.testing.assert_array_equal(vectorized.stats[name], sequential.stats[name])
    if dense:
        return
    again = run_quiet(NUTS(linear_regression), 60, *REGRESSION, num_warmup=60, num_chains=3, rng_seed=5)
    np.testing.assert_array_equal(vectorized.positions, again.positions)
    other = run_quiet(NUTS(linear_regression), 60, *REGRESSION, num_warmup=60, num_chains=3, rng_seed=6)
    assert not np.array_equal(vectorized.positions, other.positions)


class CountingPotential(Potential):
    """A potential that counts its evaluations (one per batch of chains)."""

    calls = 0

    def value_and_grad(self, flat):
        self.calls += 1
        return super().value_and_grad(flat)


def test_batched_chains_cost_as_many_evaluations_as_their_longest_chain():
    """No chain waits for another's tree: the batched run makes exactly as many evaluations as the chain that
    needs most, alone (a lockstep per tree would make about twice as many here)."""
    def evaluations(chains):
        potential = CountingPotential(linear_regression, REGRESSION)
        run = run_chains(potential, _NUTSKernel(10), chains, 5, 60, 60)
        return potential.calls, run["stats"]["num_steps"]

    together, steps = evaluations([0, 1, 2])
    alone = [evaluations([c])[0] for c in range(3)]
    assert together == max(alone) and together < sum(alone) / 2
    assert np.any(steps.sum(axis=1) != steps.sum(axis=1)[0])  # the chains did take different numbers of steps


@settings(max_examples=200, deadline=None)
@given(st_h.floats(allow_nan=True, allow_infinity=True, width=64),
       st_h.floats(allow_nan=True, allow_infinity=True, width=64))
def test_the_single_chain_logaddexp_is_numpys_bit_for_bit(a, b):
    expected = np.logaddexp(a, b)
    with np.errstate(all="ignore"):
        got = _logaddexp(a, b)
    assert got == expected or np.isnan(got) and np.isnan(expected)
    assert _logaddexp(1.5, 1.5) == np.logaddexp(1.5, 1.5) and _logaddexp(-np.inf, -np.inf) == -np.inf


def test_process_pool_gives_the_same_draws():
    local = run_quiet(NUTS(normal_normal), 50, X, num_warmup=50, num_chains=2, rng_seed=3)
    with ProcessPoolExecutor(2) as pool:
        remote = run_quiet(NUTS(normal_normal), 50, X, num_warmup=50, num_chains=2, rng_seed=3, executor=pool)
    np.testing.assert_array_equal(local.positions, remote.positions)
    np.testing.assert_array_equal(local.samples["mu"], remote.samples["mu"])


def test_centered_eight_schools_diverges_and_says_so():
    with pytest.warns(UserWarning, match="divergent"):
        result = NUTS(eight_schools_centered, target_accept=0.7).run(150, *SCHOOLS, num_warmup=150, num_chains=4,
                                                                     progress=False)
    assert result.divergences > 0
    assert result.divergences == int(result.stats["diverging"].sum())
    assert result.samples["theta"].shape == (4, 150, 8) and np.all(result.samples["tau"] > 0)


def test_hmc_recovers_conjugate_normal():
    result = run_quiet(HMC(normal_normal, step_size=0.3, num_steps=8), 1500, X, num_warmup=200, num_chains=2)
    mean, sd = normal_posterior(X)
    assert_mean_within_mcse(result.samples["mu"], mean)
    assert result.std["mu"] == pytest.approx(sd, rel=0.08)
    assert 0.8 < result.stats["accept_prob"].mean() <= 1.0
    assert np.all(result.stats["num_steps"] == 8)
    alone = run_quiet(HMC(normal_normal, step_size=0.3, num_steps=8), 1500, X, num_warmup=200, num_chains=2,
                      vectorize_chains=False)
    np.testing.assert_array_equal(result.positions, alone.positions)  # batched chains draw what lone ones do


def test_result_summary_sample_and_deterministic_sites():
    def model(data):
        mu = sample("mu", dist.Normal(0.0, 2.0))
        ppl.deterministic("twice", 2 * mu)
        with plate("data", len(data)):
            observe("x", dist.Normal(mu, 1.0), data)

    result = run_quiet(NUTS(model), 200, X, num_warmup=200, num_chains=2)
    np.testing.assert_allclose(result.samples["twice"], 2 * result.samples["mu"])
    table = result.summary()
    assert table["mu"]["mean"] == pytest.approx(result.mean["mu"])
    assert table["mu"]["r_hat"] < 1.05 and table["mu"]["ess_bulk"] > 100
    picked = result.sample(50, rng_seed=1)
    assert picked["mu"].shape == (50,) and np.all(np.isin(picked["mu"], result.samples["mu"]))
    assert set(result.stats) >= {"accept_prob", "tree_depth", "num_steps", "diverging", "energy", "lp"}
    assert result.stats["tree_depth"].shape == (2, 200)


def test_bad_arguments_name_the_culprit():
    with pytest.raises(ValueError, match="target_accept"):
        NUTS(normal_normal, target_accept=1.5)
    with pytest.raises(ValueError, match="num_chains"):
        NUTS(normal_normal).run(10, X, num_chains=0)
    with pytest.raises(ValueError, match="init"):
        NUTS(normal_normal, init="middle").run(10, X, progress=False)


# ---------------------------------------------------------------- the Laplace start and the metric's units

YEARS = 3952.0 + np.arange(20.0)  # kilpisjarvi's predictor: intercept and slope correlate at -0.99998


def ridge_regression(x, y):
    alpha = sample("alpha", dist.Normal(0.0, 100.0))
    beta = sample("beta", dist.Normal(0.0, 0.1))
    with plate("data", len(y)):
        observe("y", dist.Normal(alpha + beta * x, 1.0), y)


def ridge_posterior(x, y):
    """The exact Gaussian posterior of (alpha, beta): prior precision plus X^T X (noise sd 1)."""
    features = np.stack([np.ones_like(x), x], 1)
    cov = np.linalg.inv(np.diag([100.0 ** -2, 0.1 ** -2]) + features.T @ features)
    return cov @ features.T @ y, cov


RIDGE = (YEARS, 9.0 + 0.02 * (YEARS - YEARS.mean()) + np.random.default_rng(2).normal(size=20))


def test_laplace_start_uses_the_posterior_covariance_and_finds_the_ridge_at_once():
    """A Gaussian posterior on a ridge: the Laplace covariance is exact, so the warm-up starts from the right
    metric and a short one suffices (a handful of steps per draw, exact moments). From Stan's uniform start
    and identity metric the same 150 warm-up iterations leave a metric 10^6 too narrow along the ridge:
    537 steps per draw and 410 s, against 9 steps and 7 s (measured once; too slow to run here)."""
    mean, cov = ridge_posterior(*RIDGE)
    assert abs(cov[0, 1]) / np.sqrt(cov[0, 0] * cov[1, 1]) > 0.9999
    start = run_quiet(NUTS(ridge_regression, dense_mass=True, init="laplace"), 5, *RIDGE, num_warmup=0,
                      num_chains=2)
    np.testing.assert_allclose(start.inverse_mass[0], cov, rtol=1e-5)
    # the chains start apart (draws of the Laplace Gaussian), so R-hat can still compare them
    assert not np.allclose(start.positions[0, 0], start.positions[1, 0])
    result = run_quiet(NUTS(ridge_regression, dense_mass=True, init="laplace"), 1000, *RIDGE, num_warmup=150,
                       num_chains=2)
    assert result.stats["num_steps"].mean() < 15  # 9 measured; from a uniform start: 537
    draws = np.stack([result.samples["alpha"], result.samples["beta"]], -1)
    for i in range(2):
        assert_mean_within_mcse(draws[..., i], mean[i])
    np.testing.assert_allclose(np.cov(draws.reshape(-1, 2).T), cov, rtol=0.2)


def test_laplace_start_on_a_funnel_warns_and_starts_uniformly():
    """Centred eight schools has no strict mode (the density grows without bound as tau -> 0)."""
    with pytest.warns(UserWarning, match="init='laplace' found no strict mode"):
        result = NUTS(eight_schools_centered, init="laplace").run(20, *SCHOOLS, num_warmup=20, num_chains=2,
                                                                  progress=False)
    assert result.samples["tau"].shape == (2, 20)


@pytest.mark.parametrize("dense", [False, True])
def test_the_metric_estimate_does_not_depend_on_the_units_of_a_coordinate(dense):
    """Rescaling coordinate i by s_i rescales the regularised (co)variance by s_i s_j (Stan's 1e-3 I would
    not: it is in absolute units); where the scales are 1 it is Stan's estimate."""
    from ppl.infer.mcmc import _Welford

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3)) @ np.array([[1.0, 0.5, 0], [0, 1.0, 0.3], [0, 0, 1.0]])
    scales = np.array([1e4, 1.0, 1e-5])

    def estimate(rows):
        welford = _Welford(3, dense)
        for row in rows:
            welford.add(row)
        return welford.regularized()

    plain, scaled = estimate(x), estimate(x * scales)
    expected = plain * (np.outer(scales, scales) if dense else scales ** 2)
    np.testing.assert_allclose(scaled, expected, rtol=1e-9)
    unit = x / x.std(axis=0, ddof=1)  # unit variances: the target 1e-3 diag is Stan's 1e-3 I
    np.testing.assert_allclose(estimate(unit), (30 / 35 * np.cov(unit.T) + 1e-3 * 5 / 35 * np.eye(3)) if dense
                               else np.diag(30 / 35 * np.cov(unit.T)) + 1e-3 * 5 / 35, rtol=1e-12)


def test_a_closure_model_under_a_process_pool_is_refused_before_any_chain_runs():
    offset = 1.0

    def shifted(data):  # a closure: a process pool cannot send it
        normal_normal(data + offset)

    with ProcessPoolExecutor(2) as pool:
        with pytest.raises(TypeError, match=r"NUTS.run: the function 'test_a_closure.*shifted'.*module level"):
            NUTS(shifted).run(10, X, num_warmup=10, num_chains=2, executor=pool, progress=False)
