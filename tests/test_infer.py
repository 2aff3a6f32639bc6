"""Inference against exact answers: conjugate posteriors, evidence, and the course's PPCA."""
import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hst

import ppl
import ppl.distributions as dist
from ppl import condition, log_joint, observe, param, plate, sample
from ppl.infer import (ADVI, MAP, SVI, AutoDelta, AutoMultivariateNormal, AutoNormal, Laplace, Predictive,
                       Trace_ELBO, TraceMeanField_ELBO, log_evidence)
from ppl.optim import Adam


# ------------------------------------------------------------------ conjugate models


def normal_normal(data, prior_scale=2.0, noise=1.0):
    mu = sample("mu", dist.Normal(0.0, prior_scale))
    with plate("data", len(data)):
        observe("x", dist.Normal(mu, noise), data)


def normal_posterior(data, prior_scale=2.0, noise=1.0):
    precision = 1 / prior_scale**2 + len(data) / noise**2
    return data.sum() / noise**2 / precision, np.sqrt(1 / precision)


def normal_log_evidence(data, prior_scale=2.0, noise=1.0):
    n = len(data)
    cov = prior_scale**2 * np.ones((n, n)) + noise**2 * np.eye(n)
    return st.multivariate_normal(np.zeros(n), cov).logpdf(data)


DATA = np.array([0.9, 1.7, 0.3, 2.2, 1.1, 1.4])


def test_normal_normal_map_is_posterior_mode():
    result = MAP(normal_normal, Adam(0.05)).run(1500, DATA, rng_seed=0)
    assert abs(result.values["mu"] - normal_posterior(DATA)[0]) < 1e-3


def test_normal_normal_meanfield_advi():
    mean, sd = normal_posterior(DATA)
    result = ADVI(normal_normal, "meanfield", Adam(0.01), num_particles=32).run(2000, DATA, rng_seed=1)
    assert abs(result.mean["mu"] - mean) < 0.03 * sd + 0.02 * abs(mean)
    assert abs(result.std["mu"] / sd - 1) < 0.05


def beta_bernoulli(data, a=2.0, b=3.0):
    p = sample("p", dist.Beta(a, b))
    with plate("data", len(data)):
        observe("x", dist.Bernoulli(probs=p), data)


FLIPS = np.array([1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1], dtype=float)


def test_beta_bernoulli_map_has_no_jacobian():
    a, b, k, n = 2.0, 3.0, FLIPS.sum(), len(FLIPS)
    result = MAP(beta_bernoulli, Adam(0.05)).run(2000, FLIPS, rng_seed=0)
    assert abs(result.values["p"] - (a + k - 1) / (a + b + n - 2)) < 1e-3


def test_beta_bernoulli_advi_mean_and_support():
    a, b, k, n = 2.0, 3.0, FLIPS.sum(), len(FLIPS)
    result = ADVI(beta_bernoulli, "meanfield", Adam(0.02), num_particles=8).run(3000, FLIPS, rng_seed=0)
    draws = result.sample(4000, rng_seed=1)["p"]
    assert np.all((draws > 0) & (draws < 1))
    assert abs(draws.mean() - (a + k) / (a + b + n)) < 0.015


def test_gamma_poisson_map():
    counts = np.array([3, 5, 2, 4, 6, 3], dtype=float)
    alpha, beta = 2.0, 0.5

    def model():
        rate = sample("rate", dist.Gamma(alpha, beta))
        with plate("data", len(counts)):
            observe("x", dist.Poisson(rate), counts)

    result = MAP(model, Adam(0.05)).run(2000, rng_seed=0)
    assert abs(result.values["rate"] - (alpha + counts.sum() - 1) / (beta + len(counts))) < 1e-3


# Bayesian linear regression with known noise: the exact posterior is Gaussian.
RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 3))
X[:, 1] += 0.8 * X[:, 0]  # correlated features: a correlated posterior
Y = X @ np.array([1.0, -2.0, 0.5]) + 0.5 * RNG.normal(size=40)


def regression(features, targets, noise=0.5):
    beta = sample("beta", dist.Normal(np.zeros(3), 1.0).to_event(1))
    with plate("data", len(targets)):
        observe("y", dist.Normal(np.sum(features * beta, -1), noise), targets)


def regression_posterior(noise=0.5):
    precision = np.eye(3) + X.T @ X / noise**2
    cov = np.linalg.inv(precision)
    return cov @ X.T @ Y / noise**2, cov, precision


def test_fullrank_advi_matches_exact_posterior():
    mean, cov, _ = regression_posterior()
    result = ADVI(regression, "fullrank", Adam(0.01), num_particles=64).run(2000, X, Y, rng_seed=0)
    cov_q = result.guide.covariance(result.params)
    assert np.allclose(result.mean["beta"], mean, atol=0.05 * np.sqrt(np.diag(cov)).max() + 0.01)
    assert np.allclose(cov_q, cov, atol=0.1 * np.abs(cov).max())


def test_laplace_is_exact_for_gaussian_posterior():
    mean, cov, _ = regression_posterior()
    result = Laplace(regression).run(X, Y)
    assert np.allclose(result.mean["beta"], mean, atol=1e-6)
    assert np.allclose(result.guide.covariance(result.params), cov, rtol=1e-6, atol=1e-10)


def test_laplace_on_constrained_site_uses_unconstrained_mode():
    # Beta-Bernoulli: in u = logit(p) the density is Beta(a+k, b+n-k) times the Jacobian p(1-p),
    # whose mode is p = (a+k)/(a+b+n) and whose curvature there is (a+b+n) p (1-p).
    a, b, k, n = 2.0, 3.0, FLIPS.sum(), len(FLIPS)
    result = Laplace(beta_bernoulli).run(FLIPS)
    p_hat = (a + k) / (a + b + n)
    assert abs(result.median["p"] - p_hat) < 1e-6
    var_u = result.guide.covariance(result.params)[0, 0]
    assert abs(var_u - 1 / ((a + b + n) * p_hat * (1 - p_hat))) < 1e-6


def test_meanfield_variances_are_inverse_precision_diagonal():
    mean, cov, precision = regression_posterior()
    result = ADVI(regression, "meanfield", Adam(0.01), num_particles=64).run(2000, X, Y, rng_seed=0)
    var = result.std["beta"] ** 2
    assert np.allclose(var, 1 / np.diag(precision), rtol=0.1)
    assert np.all(var < np.diag(cov))  # the known under-dispersion


# ------------------------------------------------------------------ bounds


@given(loc=hst.floats(-2, 2), log_scale=hst.floats(-2, 1), shift=hst.floats(-1, 1))
@settings(max_examples=12)
def test_elbo_never_exceeds_log_evidence(loc, log_scale, shift):
    data = DATA + shift

    def guide(data):
        sample("mu", dist.Normal(param("loc", loc), np.exp(log_scale)))

    elbo = Trace_ELBO(num_particles=4000).elbo_particles(0, {"loc": loc}, normal_normal, guide, data)
    stderr = elbo.std() / np.sqrt(len(elbo))
    assert elbo.mean() <= normal_log_evidence(data) + 4 * stderr


def test_iwae_rises_with_k_and_reaches_log_evidence():
    def guide(data):  # a deliberately poor, wide guide
        sample("mu", dist.Normal(param("loc", 0.5), 1.0))

    exact, params = normal_log_evidence(DATA), {"loc": 0.5}
    elbo = Trace_ELBO(4000).elbo_particles(0, params, normal_normal, guide, DATA).mean()  # the K = 1 bound
    iwae = [np.mean([log_evidence(normal_normal, guide, params, DATA, num_samples=k, rng_seed=s)
                     for s in range(reps)]) for k, reps in ((10, 100), (100, 20))]
    large = log_evidence(normal_normal, guide, params, DATA, num_samples=5000, rng_seed=3)
    assert elbo < iwae[0] < iwae[1] < large <= exact + 0.01
    assert exact - large < 0.02


def test_vectorized_particles_equal_per_particle_log_joint():
    def guide(data):
        sample("mu", dist.Normal(param("loc", 0.3), 0.4))

    params = {"loc": 0.3}
    elbo = Trace_ELBO(num_particles=6)
    from ppl.infer.elbo import run_guide_and_model

    vectorized = elbo.elbo_particles(11, params, normal_normal, guide, DATA)
    guide_trace, _ = run_guide_and_model(normal_normal, guide, params, 11, (DATA,), {}, 6, -2)
    draws = np.ravel(guide_trace["mu"].value)
    looped = [log_joint(normal_normal)({"mu": m}, DATA) - st.norm.logpdf(m, 0.3, 0.4) for m in draws]
    assert np.allclose(vectorized, looped, rtol=1e-12)


def test_model_that_does_not_broadcast_falls_back_to_loop():
    def stubborn(data):
        mu = sample("mu", dist.Normal(0.0, 2.0))
        observe("x", dist.Normal(np.full(len(data), float(mu)), 1.0), data)  # float() breaks broadcasting

    def guide(data):
        sample("mu", dist.Delta(param("point", 0.7)))

    with pytest.warns(UserWarning, match="loop"):
        looped = Trace_ELBO(num_particles=3).elbo_particles(0, {"point": 0.7}, stubborn, guide, DATA)
    expected = st.norm.logpdf(0.7, 0, 2) + st.norm.logpdf(DATA, 0.7, 1).sum()
    assert np.allclose(looped, expected)


def test_analytic_entropy_and_kl_elbos_agree_in_expectation():
    def guide(data):
        sample("mu", dist.Normal(param("loc", 1.0), 0.3))

    mc = Trace_ELBO(20000, entropy="mc").loss(0, {"loc": 1.0}, normal_normal, guide, DATA)
    analytic = Trace_ELBO(20000, entropy="analytic").loss(0, {"loc": 1.0}, normal_normal, guide, DATA)
    kl = TraceMeanField_ELBO(20000).loss(0, {"loc": 1.0}, normal_normal, guide, DATA)
    # exact: E_q log p(x|mu) - KL(q || prior)
    q_mean, q_sd = 1.0, 0.3
    exact = (st.norm.logpdf(DATA, q_mean, 1).sum() - len(DATA) * q_sd**2 / 2
             - (np.log(2.0 / q_sd) + (q_sd**2 + q_mean**2) / (2 * 4.0) - 0.5))
    for value in (mc, analytic, kl):
        assert abs(-value - exact) < 0.02


def test_analytic_entropy_names_site_without_one():
    class Unknown(dist.Normal):  # a family with no closed-form entropy
        entropy = dist.Distribution.entropy

    def guide():
        sample("mu", Unknown(param("loc", 0.0), 1.0))

    def model():
        sample("mu", dist.Normal(0.0, 1.0))

    with pytest.raises(ppl.errors.NoClosedFormError, match="'mu'"):
        Trace_ELBO(entropy="analytic").loss(0, {"loc": 0.0}, model, guide)


# ------------------------------------------------------------------ SVI machinery


def test_same_seed_bit_identical():
    runs = [ADVI(normal_normal, "meanfield", Adam(0.05), num_particles=4).run(50, DATA, rng_seed=5)
            for _ in range(2)]
    assert np.array_equal(runs[0].losses, runs[1].losses)
    assert all(np.array_equal(runs[0].params[k], runs[1].params[k]) for k in runs[0].params)
    other = ADVI(normal_normal, "meanfield", Adam(0.05), num_particles=4).run(50, DATA, rng_seed=6)
    assert not np.array_equal(runs[0].losses, other.losses)


def test_minibatch_plate_scales_to_full_data():
    data = np.linspace(-1, 2, 100)

    def model(data, batch=10):
        mu = sample("mu", dist.Normal(0.0, 2.0))
        with plate("data", len(data), subsample_size=batch) as idx:
            observe("x", dist.Normal(mu, 1.0), data[idx])

    def guide(data, batch=10):
        sample("mu", dist.Delta(param("point", 0.4)))

    losses = [Trace_ELBO().loss(s, {"point": 0.4}, model, guide, data) for s in range(2000)]
    exact = -(st.norm.logpdf(0.4, 0, 2) + st.norm.logpdf(data, 0.4, 1).sum())
    assert abs(np.mean(losses) - exact) < 3 * np.std(losses) / np.sqrt(len(losses))


def test_amortized_guide_trains():
    """A guide that computes its parameters from the data with a (linear) network."""
    data = np.array([[0.5], [1.5], [-1.0], [2.0]])

    def model(x):
        with plate("data", len(x)):
            z = sample("z", dist.Normal(0.0, 1.0))
            observe("x", dist.Normal(z[..., None], 1.0).to_event(1), x)

    def guide(x):
        weights = param("net", {"w": np.zeros(1), "b": np.zeros(1), "s": np.zeros(1)})
        with plate("data", len(x)):
            loc = x[:, 0] * weights["w"] + weights["b"]
            sample("z", dist.Normal(loc, np.exp(weights["s"])))

    result = SVI(model, guide, Adam(0.02), Trace_ELBO(64, entropy="analytic")).run(0, 1500, data, progress=False)
    net = result.params["net"]
    # exact posterior: z | x ~ N(x/2, 1/2)
    assert abs(net["w"][0] - 0.5) < 0.05 and abs(net["b"][0]) < 0.05
    assert abs(np.exp(net["s"][0]) - np.sqrt(0.5)) < 0.05


def test_predictive_prior_and_posterior():
    prior = Predictive(normal_normal, num_samples=4000)(0, DATA)
    assert prior["x"].shape == (4000, len(DATA))
    assert abs(prior["mu"].std() - 2.0) < 0.1 and abs(prior["x"][:, 0].var() - 5.0) < 0.4
    mean, sd = normal_posterior(DATA)
    samples = {"mu": np.random.default_rng(0).normal(mean, sd, 3000)}
    post = Predictive(normal_normal, posterior_samples=samples)(1, DATA)
    assert abs(post["x"].mean() - mean) < 0.05 and abs(post["x"][:, 0].var() - (sd**2 + 1)) < 0.1


def test_autoguides_report_constrained_summaries():
    result = ADVI(beta_bernoulli, "meanfield", Adam(0.05)).run(300, FLIPS, rng_seed=0)
    assert 0 < result.median["p"] < 1 and result.std["p"] > 0
    full = ADVI(beta_bernoulli, "fullrank", Adam(0.05)).run(300, FLIPS, rng_seed=0)
    assert 0 < full.median["p"] < 1


# ------------------------------------------------------------------ the course's PPCA


def ppca(data_dim, latent_dim, num_datapoints, stddv_datapoints):
    w = sample("w", dist.Normal(np.zeros([data_dim, latent_dim]), 2.0 * np.ones([data_dim, latent_dim])))
    z = sample("z", dist.Normal(np.zeros([latent_dim, num_datapoints]), np.ones([latent_dim, num_datapoints])))
    return sample("x", dist.Normal(w @ z, stddv_datapoints * np.ones([data_dim, num_datapoints])))


def _angle(a, b):
    a, b = np.ravel(a), np.ravel(b)
    return np.degrees(np.arccos(min(1.0, abs(a @ b) / np.linalg.norm(a) / np.linalg.norm(b))))


def test_course_ppca_map_and_advi_recover_axis():
    sizes = (2, 1, 5000, 0.5)
    tr = ppl.trace(ppl.seed(ppca, 0)).get_trace(*sizes)
    x, w_true = tr["x"].value, tr["w"].value
    model = condition(ppca, {"x": x})
    ones = {"w": np.ones((2, 1)), "z": np.ones((1, 5000))}
    w_map = MAP(model, Adam(0.05), init_loc_fn=ones).run(200, *sizes).values["w"]
    advi = ADVI(model, "meanfield", Adam(0.05), init_loc_fn=ones, entropy="mc").run(100, *sizes)
    assert _angle(w_map, w_true) < 5 and _angle(advi.mean["w"], w_true) < 5
    assert np.all(advi.std["w"] > 0) and np.all(advi.std["w"] < 0.1)


def test_advi_stops_on_convergence_like_stan():
    result = ADVI(normal_normal, "meanfield", Adam(0.05), num_particles=4, tol=0.01, eval_every=50,
                  eval_particles=200).run(5000, DATA, rng_seed=0)
    assert result.converged_at is not None and result.converged_at < 5000
    assert len(result.losses) == result.converged_at and result.converged_at % 50 == 0
    changes = np.abs(np.diff(result.elbo_history) / np.asarray(result.elbo_history[1:]))
    window = changes[-max(2, int(0.1 * 5000 / 50)):]
    assert min(np.mean(window), np.median(window)) < 0.01
    mean, sd = normal_posterior(DATA)
    assert abs(result.mean["mu"] - mean) < 0.2 * sd


def test_advi_step_size_search_keeps_the_best():
    advi = ADVI(normal_normal, "meanfield", Adam(0.01), num_particles=4, adapt_step_size=True, adapt_iter=30,
                eval_particles=200)
    result = advi.run(200, DATA, rng_seed=0)
    assert result.step_size in {0.01 * f for f in (100.0, 10.0, 1.0, 0.1, 0.01)}
    assert result.step_size >= 0.01  # 0.0001 barely moves in 30 steps; a larger step wins
    mean, sd = normal_posterior(DATA)
    assert abs(result.mean["mu"] - mean) < 0.5 * sd


def test_predictive_check_flags_a_misfit():
    from ppl.infer import predictive_check

    rng = np.random.default_rng(0)
    observed = rng.standard_t(2, size=200)  # heavy-tailed data
    replicated = rng.normal(0.0, observed.std(), size=(400, 200))  # from a Normal model with the right scale
    _, _, p_max = predictive_check(lambda x: np.max(np.abs(x)), observed, replicated)
    _, _, p_var = predictive_check(np.var, observed, replicated)
    assert p_max < 0.01  # the Normal cannot produce the observed extremes
    assert 0.05 < p_var < 0.95  # but it matches the variance it was given
