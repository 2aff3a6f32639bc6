"""The potential U(u) = -(log joint + log|Jacobian|) on flat unconstrained vectors, against hand-written math."""
import warnings

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hst
from scipy.special import expit

import ppl
import ppl.distributions as dist
from ppl import observe, plate, sample
from ppl.errors import SiteError
from ppl.infer.potential import potential

Y = np.array([0.3, -1.2, 2.0, 0.7])


def normal_halfnormal(y):
    mu = sample("mu", dist.Normal(1.0, 2.0))
    sigma = sample("sigma", dist.HalfNormal(3.0))
    with plate("data", len(y)):
        observe("y", dist.Normal(mu, sigma), y)


def by_hand_normal_halfnormal(u, y=Y):
    mu, log_sigma = u
    sigma = np.exp(log_sigma)
    return -(st.norm(1.0, 2.0).logpdf(mu) + st.halfnorm(scale=3.0).logpdf(sigma) + log_sigma
             + st.norm(mu, sigma).logpdf(y).sum())


def beta_bernoulli(x):
    p = sample("p", dist.Beta(2.0, 3.0))
    with plate("data", len(x)):
        observe("x", dist.Bernoulli(probs=p), x)


X = np.array([1.0, 0.0, 1.0, 1.0, 0.0])


def by_hand_beta_bernoulli(u):
    p = expit(u[0])
    log_jac = np.log(p) + np.log1p(-p)  # d sigmoid / du = p (1 - p)
    return -(st.beta(2.0, 3.0).logpdf(p) + st.bernoulli(p).logpmf(X).sum() + log_jac)


ALPHA = np.array([1.5, 2.0, 0.7])


def dirichlet_model():
    sample("w", dist.Dirichlet(ALPHA))


def stick_breaking(u):
    """Stan's stick-breaking by hand, one coordinate at a time: the simplex point and log|det J|."""
    k = len(u) + 1
    z = expit(u - np.log(k - 1 - np.arange(k - 1)))
    w, left, log_jac = np.zeros(k), 1.0, 0.0
    for i in range(k - 1):
        w[i] = left * z[i]
        log_jac += np.log(left * z[i] * (1 - z[i]))
        left -= w[i]
    w[-1] = left
    return w, log_jac


def by_hand_dirichlet(u):
    w, log_jac = stick_breaking(u)
    return -(st.dirichlet(ALPHA).logpdf(w) + log_jac)


def dependent_bounds():
    a = sample("a", dist.Uniform(0.0, 1.0))
    sample("b", dist.Uniform(0.0, 1.0 - a))


def by_hand_dependent(u):
    a = expit(u[0])
    b = (1 - a) * expit(u[1])
    log_jac = np.log(a * (1 - a)) + np.log(1 - a) + np.log(expit(u[1]) * (1 - expit(u[1])))
    return -(0.0 - np.log(1 - a) + log_jac)  # Uniform(0, 1) density 1, Uniform(0, 1 - a) density 1 / (1 - a)


CASES = [(normal_halfnormal, (Y,), by_hand_normal_halfnormal, 2),
         (beta_bernoulli, (X,), by_hand_beta_bernoulli, 1),
         (dirichlet_model, (), by_hand_dirichlet, 2),
         (dependent_bounds, (), by_hand_dependent, 2)]


def finite_difference(f, u, h=1e-6):
    return np.array([(f(u + h * e) - f(u - h * e)) / (2 * h) for e in np.eye(len(u))])


@pytest.mark.parametrize("model, args, by_hand, dim", CASES, ids=[c[0].__name__ for c in CASES])
def test_value_equals_minus_log_joint_minus_log_jacobian_by_hand(model, args, by_hand, dim):
    pot = potential(model, *args)
    assert pot.dim == dim
    for u in np.random.default_rng(1).normal(size=(5, dim)):
        value, grad = pot.value_and_grad(u)
        assert value == pytest.approx(by_hand(u), rel=1e-10, abs=1e-10)
        np.testing.assert_allclose(grad, finite_difference(by_hand, u), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model, args, by_hand, dim", CASES, ids=[c[0].__name__ for c in CASES])
def test_batched_equals_stacked_single_evaluations(model, args, by_hand, dim):
    pot = potential(model, *args)
    flats = np.random.default_rng(2).normal(size=(6, dim))
    values, grads = pot.value_and_grad(flats)
    assert values.shape == (6,) and grads.shape == (6, dim)
    singles = [pot.value_and_grad(u) for u in flats]
    np.testing.assert_allclose(values, [s[0] for s in singles], rtol=1e-12)
    np.testing.assert_allclose(grads, np.stack([s[1] for s in singles]), rtol=1e-10, atol=1e-12)
    assert pot.vectorized


def eight_schools(y, sigma):
    mu = sample("mu", dist.Normal(0.0, 5.0))
    tau = sample("tau", dist.HalfCauchy(5.0))
    with plate("schools", len(y)):
        theta = sample("theta", dist.Normal(mu, tau))
        observe("y", dist.Normal(theta, sigma), y)


def test_hierarchical_model_vectorizes_and_matches_finite_differences():
    y, s = np.array([28.0, 8, -3, 7, -1, 1, 18, 12]), np.array([15.0, 10, 16, 11, 9, 11, 10, 18])
    pot = potential(eight_schools, y, s)
    assert pot.dim == 10 and pot.site_names == ["mu", "tau", "theta"]
    flats = np.random.default_rng(0).normal(size=(4, 10))
    values, grads = pot.value_and_grad(flats)
    assert pot.vectorized
    for u, value, grad in zip(flats, values, grads):
        def by_hand(u):
            mu, tau, theta = u[0], np.exp(u[1]), u[2:]
            return -(st.norm(0, 5).logpdf(mu) + st.halfcauchy(scale=5).logpdf(tau) + u[1]
                     + st.norm(mu, tau).logpdf(theta).sum() + st.norm(theta, s).logpdf(y).sum())
        assert value == pytest.approx(by_hand(u), rel=1e-10)
        np.testing.assert_allclose(grad, finite_difference(by_hand, u), rtol=1e-5, atol=1e-6)


def indexes_from_the_left(x):
    beta = sample("beta", dist.Normal(np.zeros(2), 1.0).to_event(1))
    with plate("data", len(x)):
        observe("y", dist.Normal(beta[0] + beta[1] * x, 1.0), x)  # beta[0]: breaks with a leading chain axis


def test_non_broadcasting_model_falls_back_with_one_warning_and_the_same_numbers():
    x = np.linspace(-1, 1, 5)
    pot = potential(indexes_from_the_left, x)
    flats = np.random.default_rng(3).normal(size=(3, 2))
    with pytest.warns(UserWarning, match="does not broadcast") as record:
        values, grads = pot.value_and_grad(flats)
        again, _ = pot.value_and_grad(flats)
    assert len([w for w in record if "broadcast" in str(w.message)]) == 1
    assert pot.vectorized is False
    for u, value, grad in zip(flats, values, grads):
        by_hand = lambda u: -(st.norm(0, 1).logpdf(u).sum() + st.norm(u[0] + u[1] * x, 1).logpdf(x).sum())
        assert value == pytest.approx(by_hand(u), rel=1e-12)
        np.testing.assert_allclose(grad, finite_difference(by_hand, u), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(values, again)


def mixes_chains_silently():
    a = sample("a", dist.Normal(0.0, 1.0))
    ppl.factor("f", -0.5 * np.sum(a) ** 2)  # sums over the chain axis too: broadcasts, but wrong


def test_model_that_broadcasts_but_mixes_chains_is_caught_and_looped():
    pot = potential(mixes_chains_silently)
    flats = np.array([[0.5], [-1.0], [2.0]])
    with pytest.warns(UserWarning, match="mixes values across the chain axis"):
        values, _ = pot.value_and_grad(flats)
    np.testing.assert_allclose(values, [pot.value_and_grad(u)[0] for u in flats])
    np.testing.assert_allclose(values, 0.5 * flats[:, 0] ** 2 + 0.5 * flats[:, 0] ** 2 + 0.5 * np.log(2 * np.pi))


@settings(max_examples=25, deadline=None)
@given(hst.lists(hst.floats(-40, 40), min_size=2, max_size=2))
def test_dependent_bound_never_leaves_its_support(u):
    pot = potential(dependent_bounds)
    assert pot.sites["b"].transform is None and pot.sites["a"].transform is not None
    values = pot.unravel(np.array(u))
    a, b = float(values["a"]), float(values["b"])
    assert 0 < a < 1 and 0 <= b < 1 - a
    assert np.isfinite(pot.value_and_grad(np.array(u))[0])


def test_dependent_bound_batched_is_per_chain():
    pot = potential(dependent_bounds)
    flats = np.random.default_rng(4).normal(scale=3, size=(50, 2))
    values = pot.unravel(flats)
    assert values["a"].shape == (50,) and np.all(values["b"] < 1 - values["a"]) and np.all(values["b"] > 0)
    np.testing.assert_allclose(pot.value_and_grad(flats)[0], [by_hand_dependent(u) for u in flats], rtol=1e-10)


def test_unravel_gives_model_space_values_and_deterministic_sites():
    def model():
        z = sample("z", dist.Normal(np.zeros(3), 1.0).to_event(1))
        s = sample("s", dist.LogNormal(0.0, 1.0))
        ppl.deterministic("total", s * np.sum(z, -1))

    pot = potential(model)
    assert pot.shapes == {"z": (3,), "s": ()}
    u = np.array([0.1, 0.2, 0.3, np.log(2.0)])
    one = pot.unravel(u)
    np.testing.assert_allclose(one["z"], u[:3])
    assert float(one["s"]) == pytest.approx(2.0) and float(one["total"]) == pytest.approx(1.2)
    many = pot.unravel(np.stack([u, 2 * u]))
    assert many["z"].shape == (2, 3) and many["total"].shape == (2,)
    assert many["total"][1] == pytest.approx(4.0 * 1.2)  # s = e^{2 log 2}, sum z = 1.2


def test_init_is_uniform_in_the_box_and_takes_a_dict():
    pot = potential(normal_halfnormal, Y)
    u = pot.init(np.random.default_rng(0), num_chains=500)
    assert u.shape == (500, 2) and np.all(np.abs(u) < 2) and np.std(u) == pytest.approx(4 / np.sqrt(12), rel=0.1)
    u = pot.init(np.random.default_rng(0), {"sigma": 3.0}, num_chains=2)
    np.testing.assert_allclose(u[:, 1], np.log(3.0))
    with pytest.raises(KeyError, match="nope"):
        pot.init(0, {"nope": 1.0})


def test_bad_flat_shape_names_the_expected_shape():
    pot = potential(normal_halfnormal, Y)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        pot.value_and_grad(np.zeros(3))


def test_discrete_latent_is_an_error_naming_the_site():
    def model():
        sample("k", dist.Bernoulli(probs=0.3))

    with pytest.raises(SiteError, match="'k'"):
        potential(model)
