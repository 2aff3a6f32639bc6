"""ArviZ export: groups, shapes and plate-named dims; ArviZ's diagnostics and LOO agree with ppl's."""
import warnings

import numpy as np
import pytest
import scipy.stats as st

import ppl
import ppl.distributions as dist
from ppl.distributions.special import logsumexp
from ppl.infer import ADVI, Predictive, diagnostics
from ppl.infer.export import pointwise_log_likelihood, to_arviz
from ppl.infer.mcmc import NUTS
from ppl.optim import Adam

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az

PRIOR_SD, NOISE_SD = 3.0, 0.8
RNG = np.random.default_rng(0)
X = np.column_stack([np.ones(30), RNG.normal(size=30)])
Y = X @ np.array([1.0, -0.5]) + NOISE_SD * RNG.normal(size=30)


def regression(x, y):
    beta = ppl.sample("beta", dist.Normal(np.zeros(2), PRIOR_SD).to_event(1))
    with ppl.plate("data", len(y)):
        ppl.observe("y", dist.Normal(np.sum(x * beta, -1), NOISE_SD), y)  # broadcasts over leading axes


def gaussian_posterior(x, y):
    """The conjugate posterior of beta (known noise): N(m, S), S = (X'X / s^2 + I / t^2)^-1, m = S X'y / s^2."""
    cov = np.linalg.inv(x.T @ x / NOISE_SD ** 2 + np.eye(2) / PRIOR_SD ** 2)
    return cov @ x.T @ y / NOISE_SD ** 2, cov


class ExactDraws:
    """A result-like object: exact posterior draws as 4 chains, no sampler statistics."""

    def __init__(self, chains=4, draws=1000, seed=1):
        mean, cov = gaussian_posterior(X, Y)
        self.samples = {"beta": np.random.default_rng(seed).multivariate_normal(mean, cov, size=(chains, draws))}


@pytest.fixture(scope="module")
def nuts_data():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a short run: its low-ESS warning is expected
        result = NUTS(regression).run(150, X, Y, num_warmup=150, num_chains=2, progress=False, rng_seed=3)
    return result, to_arviz(result, posterior_predictive=True)


def test_mcmc_export_has_every_group_with_chain_draw_and_plate_dims(nuts_data):
    result, data = nuts_data
    assert set(data.groups()) == {"posterior", "sample_stats", "observed_data", "log_likelihood",
                                  "posterior_predictive"}
    beta = data.posterior["beta"]
    assert beta.dims == ("chain", "draw", "beta_dim_0") and beta.shape == (2, 150, 2)
    np.testing.assert_array_equal(beta.values, result.samples["beta"])
    assert list(data.posterior.chain.values) == [0, 1] and len(data.posterior.draw) == 150
    stats = data.sample_stats
    for name in ("diverging", "tree_depth", "energy", "lp", "acceptance_rate", "n_steps", "step_size"):
        assert stats[name].dims == ("chain", "draw"), name
    np.testing.assert_array_equal(stats["acceptance_rate"].values, result.stats["accept_prob"])
    np.testing.assert_array_equal(stats["n_steps"].values, result.stats["num_steps"])
    assert stats["diverging"].dtype == bool
    assert data.observed_data["y"].dims == ("data",) and np.array_equal(data.observed_data["y"].values, Y)
    assert data.log_likelihood["y"].dims == ("chain", "draw", "data") and data.log_likelihood["y"].shape == (2, 150, 30)
    assert data.posterior_predictive["y"].dims == ("chain", "draw", "data")
    # replicated data scatter around the fitted line with the noise sd plus the posterior's
    residual = data.posterior_predictive["y"].values - result.samples["beta"] @ X.T
    assert abs(residual.std() / NOISE_SD - 1) < 0.05


def test_arviz_rhat_and_ess_equal_ppl_diagnostics_on_exported_nuts_draws(nuts_data):
    result, data = nuts_data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        rhat, bulk, tail = az.rhat(data), az.ess(data, method="bulk"), az.ess(data, method="tail")
        mcse = az.mcse(data)
    draws = result.samples["beta"]
    np.testing.assert_allclose(rhat["beta"].values, diagnostics.r_hat(draws), rtol=0.01)
    np.testing.assert_allclose(bulk["beta"].values, diagnostics.ess(draws, "bulk"), rtol=0.01)
    np.testing.assert_allclose(tail["beta"].values, diagnostics.ess(draws, "tail"), rtol=0.01)
    np.testing.assert_allclose(mcse["beta"].values, diagnostics.mcse(draws), rtol=0.01)


def test_pointwise_log_likelihood_is_the_normal_density_at_each_draw():
    draws = ExactDraws(chains=1, draws=50).samples["beta"][0]
    loglik = pointwise_log_likelihood(regression, {"beta": draws}, X, Y)["y"]
    np.testing.assert_allclose(loglik, st.norm.logpdf(Y, draws @ X.T, NOISE_SD), rtol=1e-12)


def test_loo_runs_and_matches_direct_psis_and_exact_leave_one_out():
    data = to_arviz(ExactDraws(), regression, X, Y)
    assert "sample_stats" not in data.groups()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loo = az.loo(data, reff=1.0, pointwise=True)
    loglik = data.log_likelihood["y"].values.reshape(-1, len(Y))
    direct = []
    for i in range(len(Y)):  # one PSIS fit per left-out observation, as LOO defines it
        smoothed, _ = diagnostics.pareto_smooth(-loglik[:, i])
        direct.append(logsumexp(smoothed + loglik[:, i]))
    # ArviZ's tail length rounds up where ppl's rounds down: the two agree to about 1e-4
    assert loo.elpd_loo == pytest.approx(np.sum(direct), abs=1e-3)
    np.testing.assert_allclose(loo.loo_i.values, direct, atol=1e-3)
    # and against the closed form: p(y_i | y_-i) = N(x_i m_-i, s^2 + x_i S_-i x_i)
    exact = []
    for i in range(len(Y)):
        keep = np.arange(len(Y)) != i
        mean, cov = gaussian_posterior(X[keep], Y[keep])
        exact.append(st.norm.logpdf(Y[i], X[i] @ mean, np.sqrt(NOISE_SD ** 2 + X[i] @ cov @ X[i])))
    assert loo.elpd_loo == pytest.approx(np.sum(exact), abs=0.02)


def test_variational_result_becomes_one_chain_and_predictive_output_is_reshaped():
    fit = ADVI(regression, "fullrank", Adam(0.1)).run(300, X, Y, rng_seed=0, progress=False)
    data = to_arviz(fit, regression, X, Y, num_samples=400, rng_seed=2)
    assert data.posterior["beta"].shape == (1, 400, 2) and data.log_likelihood["y"].shape == (1, 400, 30)
    np.testing.assert_array_equal(data.posterior["beta"].values[0], fit.sample(400, 2)["beta"])
    np.testing.assert_allclose(data.posterior["beta"].values.mean(axis=(0, 1)), fit.mean["beta"], atol=0.05)
    draws = ExactDraws(chains=2, draws=100)
    replicated = Predictive(regression, posterior_samples={"beta": draws.samples["beta"].reshape(200, 2)})(0, X, Y)
    exported = to_arviz(draws, regression, X, Y, posterior_predictive={"y": replicated["y"]}, log_likelihood=False)
    assert "log_likelihood" not in exported.groups()
    np.testing.assert_array_equal(exported.posterior_predictive["y"].values, replicated["y"].reshape(2, 100, 30))
    odd = to_arviz(draws, posterior_predictive={"y": replicated["y"][:50]})
    assert odd.posterior_predictive["y"].shape == (1, 50, 30)
    custom = to_arviz(draws, regression, X, Y, coords={"data": np.arange(100, 130)}, dims={"beta": ["coef"]})
    assert custom.posterior["beta"].dims == ("chain", "draw", "coef")
    assert list(custom.observed_data["data"].values[:2]) == [100, 101]
    with pytest.raises(TypeError, match="neither samples"):
        to_arviz(object())
    with pytest.raises(TypeError, match="posterior_predictive"):
        to_arviz(draws, posterior_predictive=[1, 2])
