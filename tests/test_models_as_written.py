"""Models as Pyro and NumPyro users write them: unplated observations, and particles that fall back to a loop."""
import warnings

import numpy as np
import pytest
import scipy.stats as st

import ppl
import ppl.distributions as dist
from ppl.errors import ShapeError, SupportError
from ppl.infer import ADVI, MAP, AutoNormal, Predictive, Trace_ELBO, log_evidence
from ppl.infer import elbo as elbo_module

Y = np.array([0.3, -1.2, 2.1, 0.8, 1.5, -0.4, 0.9, 1.1])


def unplated(y):
    mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    ppl.observe("y", dist.Normal(mu, 1.0), y)


def unplated_loop_only(y):
    """The same model, written so it cannot broadcast over a leading particle axis (a float() of a latent)."""
    mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    ppl.observe("y", dist.Normal(float(mu), 1.0), y)


def exact_posterior(y):
    """Normal(0, 1) prior, unit-variance data: the posterior is Normal(sum y / (n + 1), 1 / (n + 1))."""
    n = len(y)
    return y.sum() / (n + 1), np.sqrt(1.0 / (n + 1))


def exact_log_evidence(y):
    n = len(y)
    return st.multivariate_normal(np.zeros(n), np.eye(n) + np.ones((n, n))).logpdf(y)


def test_unplated_vector_is_scored_entry_by_entry():
    lp = ppl.log_joint(unplated)({"mu": 0.7}, Y)
    assert np.isclose(lp, st.norm.logpdf(0.7) + st.norm.logpdf(Y, 0.7).sum(), rtol=1e-13)
    tr = ppl.trace(ppl.replace(unplated, {"mu": 0.7})).get_trace(Y)
    assert tr["y"].fn.batch_shape == (8,)  # the value's batch shape
    assert np.isclose(tr.log_prob_sum(), lp, rtol=1e-13)


def test_unplated_and_plated_models_agree_in_every_engine():
    def plated(y):
        mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
        with ppl.plate("data", len(y)):
            ppl.observe("y", dist.Normal(mu, 1.0), y)

    values = {"mu": -0.3}
    assert ppl.log_joint(plated)(values, Y) == pytest.approx(ppl.log_joint(unplated)(values, Y), rel=1e-13)
    m1 = MAP(unplated).run(300, Y).values["mu"]
    m2 = MAP(plated).run(300, Y).values["mu"]
    assert m1 == pytest.approx(m2, rel=1e-10) and m1 == pytest.approx(exact_posterior(Y)[0], abs=1e-3)  # the mode of a Gaussian posterior is its mean


def test_advi_with_particles_and_evidence_run_vectorized_on_the_first_model():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # vectorized: no fallback warning
        result = ADVI(unplated, "meanfield", num_particles=32).run(1500, Y, rng_seed=0)
        mean, sd = exact_posterior(Y)
        assert float(result.mean["mu"]) == pytest.approx(mean, abs=0.05)
        assert float(result.std["mu"]) == pytest.approx(sd, rel=0.15)
        bound = log_evidence(unplated, result.guide, result.params, Y, num_samples=1000, rng_seed=1)
    # the guide family holds the exact posterior: the bound is the evidence, up to Monte Carlo error
    assert bound <= exact_log_evidence(Y) + 0.01
    assert bound == pytest.approx(exact_log_evidence(Y), abs=0.05)


def test_outer_product_broadcast_raises_when_recorded():
    def model():
        mu = ppl.sample("mu", dist.Normal(np.zeros(5), 1.0))
        ppl.observe("y", dist.Normal(mu, 1.0), np.zeros((5, 1)))

    with pytest.raises(ShapeError, match=r"'y'.*\(5, 1\).*\(5,\).*\(5, 5\).*plate"):
        ppl.trace(ppl.seed(model, 0)).get_trace()


def test_outer_product_under_condition_raises_when_recorded():
    def model():
        mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
        ppl.sample("y", dist.Normal(mu * np.ones(5), 1.0))

    with pytest.raises(ShapeError, match=r"'y'.*\(5, 1\).*\(5,\)"):
        ppl.trace(ppl.seed(ppl.condition(model, {"y": np.zeros((5, 1))}), 0)).get_trace()
    # a conditioned value with a larger batch is scored over it, as for observe
    tr = ppl.trace(ppl.condition(model, {"mu": 0.0, "y": np.zeros((3, 5))})).get_trace()
    assert np.isclose(tr.log_prob_sum(), st.norm.logpdf(0.0) * 16)


def test_broadcast_failure_is_a_shape_error_not_a_support_error():
    def model():
        mu = ppl.sample("mu", dist.Normal(np.zeros(4), 1.0))
        ppl.observe("y", dist.Normal(mu, 1.0), np.zeros(3))

    with pytest.raises(ShapeError, match=r"'y'.*\(3,\).*\(4,\)") as info:
        ppl.trace(ppl.seed(model, 0)).get_trace()
    assert not isinstance(info.value, SupportError)


def test_value_outside_support_is_still_a_support_error():
    with pytest.raises(SupportError, match="'rate'"):
        ppl.trace(lambda: ppl.observe("rate", dist.Exponential(np.ones(3)), -np.ones(3))).get_trace().log_prob_sum()


def fitted_guide():
    result = ADVI(unplated, "meanfield").run(200, Y, rng_seed=0)
    return result.guide, result.params


@pytest.mark.parametrize("kind", ["elbo", "weights"])
def test_vectorized_and_looped_particles_give_the_same_numbers(kind):
    guide, params = fitted_guide()
    vec, loop = Trace_ELBO(16, entropy="mc"), Trace_ELBO(16, vectorize=False, entropy="mc")
    method = "elbo_particles" if kind == "elbo" else "log_weights"
    a = getattr(vec, method)(7, params, unplated, guide, Y)
    b = getattr(loop, method)(7, params, unplated, guide, Y)
    assert a.shape == (16,) and np.allclose(a, b, rtol=1e-12, atol=1e-12)
    assert np.std(a) > 0  # sixteen different draws, not one repeated


def test_model_that_does_not_broadcast_gives_the_loop_numbers_with_one_warning():
    guide, params = fitted_guide()
    elbo_module._LOOPING.pop(unplated_loop_only, None)
    with pytest.warns(UserWarning, match="does not broadcast.*loop") as record:
        a = Trace_ELBO(16, entropy="mc").elbo_particles(7, params, unplated_loop_only, guide, Y)
        again = Trace_ELBO(16, entropy="mc").elbo_particles(7, params, unplated_loop_only, guide, Y)
    assert len([w for w in record if "broadcast" in str(w.message)]) == 1
    vectorized = Trace_ELBO(16, entropy="mc").elbo_particles(7, params, unplated, guide, Y)
    assert np.allclose(a, vectorized, rtol=1e-12) and np.array_equal(a, again)


def test_log_evidence_vectorized_and_looped_agree():
    guide, params = fitted_guide()
    elbo_module._LOOPING.pop(unplated_loop_only, None)
    a = log_evidence(unplated, guide, params, Y, num_samples=300, rng_seed=3, chunk_size=128)
    with pytest.warns(UserWarning, match="importance samples"):
        b = log_evidence(unplated_loop_only, guide, params, Y, num_samples=300, rng_seed=3, chunk_size=128)
    assert a == pytest.approx(b, rel=1e-12)


def test_predictive_vectorized_and_looped_agree_and_replicate_the_data_shape():
    guide, params = fitted_guide()
    a = Predictive(unplated, guide=guide, params=params, num_samples=50)(4, Y)
    b = Predictive(unplated, guide=guide, params=params, num_samples=50, vectorize=False)(4, Y)
    assert a["y"].shape == (50, 8) and a["mu"].shape == (50,)
    assert np.allclose(a["y"], b["y"], rtol=1e-12) and np.allclose(a["mu"], b["mu"], rtol=1e-12)
    prior = Predictive(unplated, num_samples=4000)(0, Y)["y"]
    # prior predictive: y_i = mu + e_i, so Var y_i = 2 and Cov(y_i, y_j) = 1
    cov = np.cov(prior.T)
    assert np.allclose(np.diag(cov), 2.0, atol=0.15) and np.allclose(cov[0, 1:], 1.0, atol=0.15)


def test_elbo_particles_fall_back_inside_svi_when_a_distribution_raises_on_broadcast():
    def model(y):  # Categorical probs indexed from the left: breaks with a particle axis in front
        w = ppl.sample("w", dist.Dirichlet(np.ones(3)))
        ppl.observe("y", dist.Normal(w[0] - w[1], 1.0), y)

    elbo_module._LOOPING.pop(model, None)
    with pytest.warns(UserWarning, match="does not broadcast"):
        result = ADVI(model, "meanfield", num_particles=4).run(50, Y, rng_seed=0)
    assert np.all(np.isfinite(result.losses))
    assert isinstance(result.guide, AutoNormal)


def test_psis_khat_vectorized_and_looped_agree():
    from ppl.infer.diagnostics import fit_generalized_pareto, psis_khat

    guide, params = fitted_guide()
    elbo_module._LOOPING.pop(unplated_loop_only, None)
    a = psis_khat(unplated, guide, params, Y, num_samples=200, rng_seed=5)
    with pytest.warns(UserWarning, match="does not broadcast"):
        b = psis_khat(unplated_loop_only, guide, params, Y, num_samples=200, rng_seed=5)
    assert np.allclose(a.log_weights, b.log_weights, rtol=1e-12) and a.khat == pytest.approx(b.khat, rel=1e-9)
    assert np.allclose(a.draws["mu"], b.draws["mu"], rtol=1e-12)
    # a tail that is all ties but one weight: no Pareto to fit, the worst reading, and no division by zero
    with np.errstate(all="raise"):
        assert fit_generalized_pareto(np.r_[np.zeros(30), 5.0])[0] == np.inf
