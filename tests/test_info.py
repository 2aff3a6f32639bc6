"""ppl.info: entropy and KL in nats and bits, of probability vectors and distributions."""
import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hst

from ppl import info
from ppl.distributions.continuous import Laplace, Normal, StudentT, Uniform
from ppl.distributions.discrete import Bernoulli, Categorical, Poisson
from ppl.errors import NoClosedFormError

SETTINGS = settings(max_examples=30, deadline=None)
LOG2 = np.log(2.0)


@hst.composite
def probability_vectors(draw, min_size=1, max_size=8):
    """A random point of the simplex, sometimes with exact zeros."""
    k = draw(hst.integers(min_size, max_size))
    weights = np.array(draw(hst.lists(hst.floats(0.0, 10.0), min_size=k, max_size=k)))
    if weights.sum() == 0:
        weights[0] = 1.0
    return weights / weights.sum()


def test_a_fair_coin_is_exactly_one_bit():
    assert info.entropy([0.5, 0.5], units="bits") == 1.0
    assert info.entropy(Bernoulli(probs=0.5), units="bits") == 1.0
    assert info.entropy(np.full(8, 1 / 8), units="bits") == 3.0
    assert isinstance(info.entropy([0.5, 0.5]), float)


@given(p=probability_vectors())
@SETTINGS
def test_entropy_of_vectors_against_scipy(p):
    h = info.entropy(p)
    assert np.isclose(h, st.entropy(p), rtol=1e-12, atol=1e-15)
    assert np.isclose(info.entropy(p, units="bits"), h / LOG2, rtol=1e-12, atol=1e-15)
    assert -1e-15 <= h <= np.log(len(p)) + 1e-12  # between a point mass and the uniform


@given(p=probability_vectors(2, 6), data=hst.data())
@SETTINGS
def test_kl_of_vectors_against_scipy(p, data):
    q = data.draw(probability_vectors(len(p), len(p)))
    kl = info.kl_divergence(p, q)
    assert np.isclose(kl, st.entropy(p, q), rtol=1e-10, atol=1e-14) or kl == st.entropy(p, q) == np.inf
    assert info.kl_divergence(p, p) == 0.0 or np.isclose(info.kl_divergence(p, p), 0.0, atol=1e-15)
    if np.isfinite(kl):
        assert kl >= -1e-15
        assert np.isclose(info.kl_divergence(p, q, units="bits"), kl / LOG2, rtol=1e-12, atol=1e-15)


def test_zero_log_zero_is_zero_and_impossible_outcomes_are_infinite():
    assert info.entropy([1.0, 0.0, 0.0]) == 0.0
    assert info.kl_divergence([0.5, 0.5, 0.0], [0.25, 0.25, 0.5]) == pytest.approx(np.log(2.0))
    assert info.kl_divergence([0.5, 0.5], [1.0, 0.0]) == np.inf
    batch = info.kl_divergence(np.array([[0.5, 0.5], [1.0, 0.0]]), np.array([0.5, 0.5]))
    assert batch.shape == (2,) and np.allclose(batch, [0.0, np.log(2.0)])


def test_distributions_use_their_closed_forms():
    d = Normal(0.0, 2.0)
    assert info.entropy(d) == pytest.approx(st.norm(0, 2).entropy(), rel=1e-14)
    assert info.entropy(d, units="bits") == pytest.approx(st.norm(0, 2).entropy() / LOG2, rel=1e-14)
    p, q = Normal(0.0, 1.0), Normal(1.0, 2.0)
    kl = np.log(2.0) + (1 + 1) / (2 * 4) - 0.5
    assert info.kl_divergence(p, q) == pytest.approx(kl, rel=1e-14)
    assert info.kl_divergence(p, q, units="bits") == pytest.approx(kl / LOG2, rel=1e-14)
    assert isinstance(info.kl_divergence(p, q), float)
    batched = info.entropy(Poisson(np.array([0.5, 3.0])))
    assert batched.shape == (2,) and np.allclose(batched, st.poisson([0.5, 3.0]).entropy())
    probs = np.array([0.1, 0.6, 0.3])
    assert info.entropy(Categorical(probs=probs)) == pytest.approx(info.entropy(probs), rel=1e-14)


class _StudentTWithoutEntropy(StudentT):
    """A StudentT that pretends to have no closed form, so info must estimate it."""

    def entropy(self):
        raise NoClosedFormError("pretend")


def test_monte_carlo_entropy_within_four_standard_errors():
    estimate = info.entropy(_StudentTWithoutEntropy(5.0, 0.0, 1.5), num_samples=20_000)
    assert isinstance(estimate, info.Estimate) and estimate.stderr > 0
    assert abs(estimate.value - st.t(5.0, 0.0, 1.5).entropy()) < 4 * estimate.stderr
    in_bits = info.entropy(_StudentTWithoutEntropy(5.0, 0.0, 1.5), units="bits", num_samples=20_000)
    assert np.isclose(in_bits.value, estimate.value / LOG2) and np.isclose(in_bits.stderr, estimate.stderr / LOG2)
    # the same seed gives the same estimate; another gives another
    again = info.entropy(_StudentTWithoutEntropy(5.0, 0.0, 1.5), num_samples=20_000)
    other = info.entropy(_StudentTWithoutEntropy(5.0, 0.0, 1.5), num_samples=20_000, rng_seed=1)
    assert again == estimate and other.value != estimate.value


def test_monte_carlo_kl_within_four_standard_errors():
    # KL(Laplace(0, b) || Normal(0, s)) = -log(2b) - 1 + 1/2 log(2 pi s^2) + b^2 / s^2, by hand
    b, s = 0.7, 1.3
    exact = -np.log(2 * b) - 1 + 0.5 * np.log(2 * np.pi * s**2) + b**2 / s**2
    estimate = info.kl_divergence(Laplace(0.0, b), Normal(0.0, s), num_samples=20_000)
    assert isinstance(estimate, info.Estimate)
    assert abs(estimate.value - exact) < 4 * estimate.stderr and estimate.stderr < 0.01
    batched = info.kl_divergence(Laplace(0.0, np.array([b, 2 * b])), Normal(0.0, s), num_samples=5000)
    assert batched.value.shape == batched.stderr.shape == (2,)


def test_monte_carlo_kl_outside_the_support_is_infinite():
    # Normal puts mass outside [-1, 1]: KL(Normal || Uniform) = inf, certainly
    estimate = info.kl_divergence(Normal(0.0, 1.0), Uniform(-1.0, 1.0), num_samples=1000)
    assert estimate == (np.inf, 0.0)
    # the other way round is finite: -log 2 + 1/2 log(2 pi) + E[x^2] / 2 with E[x^2] = 1/3
    inside = info.kl_divergence(Uniform(-1.0, 1.0), Normal(0.0, 1.0), num_samples=20_000)
    assert abs(inside.value - (-np.log(2) + 0.5 * np.log(2 * np.pi) + 1 / 6)) < 4 * inside.stderr


@pytest.mark.parametrize("call,match", [
    (lambda: info.entropy([0.5, 0.5], units="hartleys"), "units"),
    (lambda: info.kl_divergence([0.5, 0.5], [0.5, 0.5], units="Bits"), "units"),
    (lambda: info.entropy([0.5, 0.6]), "p must sum to 1"),
    (lambda: info.entropy([1.5, -0.5]), "p must be non-negative"),
    (lambda: info.entropy([np.nan, 1.0]), "p must have finite"),
    (lambda: info.entropy(0.5), "p must be a probability vector"),
    (lambda: info.kl_divergence([0.5, 0.5], [0.7, 0.7]), "q must sum to 1"),
    (lambda: info.kl_divergence([0.5, 0.5], [-0.1, 1.1]), "q must be non-negative"),
    (lambda: info.kl_divergence([0.5, 0.5], [0.2, 0.3, 0.5]), "2 outcomes"),
    (lambda: info.entropy(_StudentTWithoutEntropy(5.0, 0.0, 1.0), num_samples=1), "num_samples"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_mixing_a_distribution_and_a_vector_is_a_type_error():
    with pytest.raises(TypeError, match="both"):
        info.kl_divergence(Bernoulli(probs=0.5), [0.5, 0.5])


def test_float32_vectors_that_sum_to_one_in_float32_are_accepted():
    p = np.full(10, 0.1, np.float32)  # sums to 1 + 1.5e-8 in float64: fine for float32, not for float64
    assert abs(p.astype(float).sum() - 1) > 1e-8
    assert np.isclose(info.entropy(p), np.log(10.0), rtol=1e-6)
    with pytest.raises(ValueError, match="sum to 1"):
        info.entropy(p.astype(float) * (1 + 1e-8))
