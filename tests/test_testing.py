"""ppl.testing: its oracles against brute-force integration, its assertions against wrong answers,
and the handler laws over generated models."""
import numpy as np
import pytest
import scipy.integrate as integrate
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hst

import ppl.distributions as dist
from ppl import log_joint, param, sample, testing
from ppl.infer import ADVI
from ppl.optim import Adam


def _grid_check(case, site, low, high):
    """log evidence and posterior mean of a scalar site by quadrature of the log joint."""
    joint = log_joint(case.model)
    shift = case.log_evidence
    density = lambda v: np.exp(float(joint({site: v}, *case.args)) - shift)  # noqa: E731
    mass = integrate.quad(density, low, high, limit=200, points=[case.posterior[site].mean])[0]
    mean = integrate.quad(lambda v: v * density(v), low, high, limit=200, points=[case.posterior[site].mean])[0]
    return np.log(mass) + shift, mean / mass


@given(case=testing.conjugate_models(kinds=["normal_normal", "beta_bernoulli", "gamma_poisson"]))
@settings(max_examples=15)
def test_conjugate_oracles_match_numerical_integration(case):
    site = next(iter(case.posterior))
    exact = case.posterior[site]
    sd = float(np.sqrt(exact.variance))
    if case.name == "beta_bernoulli":
        low, high = 0.0, 1.0
    elif case.name == "gamma_poisson":
        low, high = 0.0, float(exact.mean + 30 * sd)
    else:
        low, high = float(exact.mean - 30 * sd), float(exact.mean + 30 * sd)
    evidence, mean = _grid_check(case, site, low, high)
    assert np.isclose(evidence, case.log_evidence, atol=1e-5)
    assert np.isclose(mean, exact.mean, rtol=1e-5, atol=1e-6 * sd)


@given(case=testing.conjugate_models(kinds=["linear_regression"]), offset=hst.floats(-2.0, 2.0))
@settings(max_examples=8)
def test_regression_oracle_matches_bayes_rule_and_a_grid(case, offset):
    exact = case.posterior["beta"]
    d = exact.event_shape[0]
    joint = log_joint(case.model)
    # Bayes' rule at any point: log p(y) = log p(y, beta) - log p(beta | y), in every dimension
    beta = exact.mean + offset * np.sqrt(exact.variance)
    assert np.isclose(float(joint({"beta": beta}, *case.args)) - float(exact.log_prob(beta)), case.log_evidence,
                      atol=1e-8)
    if d != 1:  # a grid in 1-D keeps the quadrature exact and fast
        return
    sd = float(np.sqrt(exact.variance[0]))
    grid = np.linspace(exact.mean[0] - 12 * sd, exact.mean[0] + 12 * sd, 801)  # trapezoid: spectrally exact here
    logs = np.array([float(joint({"beta": np.array([b])}, *case.args)) for b in grid])
    top = logs.max()
    mass = np.trapezoid(np.exp(logs - top), grid)
    assert np.isclose(np.log(mass) + top, case.log_evidence, atol=1e-6)
    assert np.isclose(np.trapezoid(grid * np.exp(logs - top), grid) / mass, exact.mean[0], atol=1e-6 * sd + 1e-9)


@given(model=testing.random_models())
@settings(max_examples=25)
def test_handler_laws_hold_over_generated_models(model):
    testing.check_handler_laws(model, rng_seed=3)


def test_handler_laws_catch_randomness_outside_the_handlers():
    leak = np.random.default_rng(0)

    def model():  # draws with its own generator, which no seed handler controls
        sample("a", dist.Normal(leak.normal(), 1.0))

    with pytest.raises(AssertionError, match="handler law broken"):
        testing.check_handler_laws(model)


def test_assert_posterior_close_passes_and_fails():
    exact = {"mu": dist.Normal(1.0, 0.5)}
    good = {"mu": np.random.default_rng(0).normal(1.0, 0.5, 20000)}
    testing.assert_posterior_close(good, exact, tol_sd=0.05, sd_rtol=0.05)
    with pytest.raises(AssertionError, match="'mu'"):
        testing.assert_posterior_close({"mu": good["mu"] + 0.2}, exact, tol_sd=0.1)
    with pytest.raises(AssertionError, match="sd"):
        testing.assert_posterior_close({"mu": 1.0 + 2 * (good["mu"] - 1.0)}, exact, tol_sd=0.1, sd_rtol=0.1)


@given(case=testing.conjugate_models(kinds=["normal_normal"]))
@settings(max_examples=5)
def test_assert_elbo_bound_passes_and_fails(case):
    exact = case.posterior["mu"]

    def guide(data):
        sample("mu", dist.Normal(param("loc", 0.0), 0.5 * float(np.sqrt(exact.variance))))

    params = {"loc": float(exact.mean)}
    testing.assert_elbo_bound(case.model, guide, params, case.log_evidence, *case.args)
    with pytest.raises(AssertionError, match="exceeds"):
        testing.assert_elbo_bound(case.model, guide, params, case.log_evidence - 1.0, *case.args)


def test_check_log_prob_passes_and_fails():
    x = np.linspace(-2, 2, 7)
    testing.check_log_prob(dist.Normal(0.3, 1.2), st.norm(0.3, 1.2), x)
    with pytest.raises(AssertionError, match="Normal"):
        testing.check_log_prob(dist.Normal(0.3, 1.2), st.norm(0.3, 1.3), x)


@given(kwargs=testing.distribution_params("Gamma"))
@settings(max_examples=10)
def test_distribution_params_strategy_feeds_check_log_prob(kwargs):
    d = dist.Gamma(**kwargs)
    testing.check_log_prob(d, st.gamma(kwargs["concentration"], scale=1 / kwargs["rate"]), np.array([0.3, 1.0, 2.5]))


def test_worked_example_from_the_readme():
    @given(case=testing.conjugate_models(kinds=["normal_normal"]))
    @settings(max_examples=3, deadline=None)
    def check(case):
        result = ADVI(case.model, "meanfield", Adam(0.05), num_particles=8).run(800, *case.args)
        testing.assert_posterior_close(result, case.posterior, tol_sd=0.25)

    check()


SCIPY_TWIN = {  # the same law in scipy's parameterization
    "Normal": lambda d: st.norm(d.loc, d.scale),
    "LogNormal": lambda d: st.lognorm(d.scale, scale=np.exp(d.loc)),
    "HalfNormal": lambda d: st.halfnorm(scale=d.scale),
    "Exponential": lambda d: st.expon(scale=1 / d.rate),
    "Gamma": lambda d: st.gamma(d.concentration, scale=1 / d.rate),
    "Beta": lambda d: st.beta(d.concentration1, d.concentration0),
    "Laplace": lambda d: st.laplace(d.loc, d.scale),
    "StudentT": lambda d: st.t(d.df, d.loc, d.scale),
    "Bernoulli": lambda d: st.bernoulli(d.probs),
    "Poisson": lambda d: st.poisson(d.rate),
}


@given(distribution=testing.distributions(), seed=hst.integers(0, 2**16))
@settings(max_examples=30, deadline=None)
def test_distributions_strategy_covers_every_family_against_scipy(distribution, seed):
    assert set(SCIPY_TWIN) == set(testing.FAMILY_PARAMS)
    values = distribution.sample(np.random.default_rng(seed), (5,))
    testing.check_log_prob(distribution, SCIPY_TWIN[type(distribution).__name__](distribution), values, rtol=1e-6)


def test_finite_difference_matches_a_closed_form_gradient():
    x = np.array([[0.5, -1.2], [2.0, 0.3]])
    np.testing.assert_allclose(testing.finite_difference(lambda v: np.sum(v**3), x), 3 * x**2, rtol=1e-8)
    assert float(testing.finite_difference(np.sin, 0.7)) == pytest.approx(np.cos(0.7), rel=1e-9)
