"""LKJCholesky: the normalised density against scipy (d = 2) and against Monte Carlo integrals over the
space of Cholesky factors (d = 3, 4), the onion sampler's marginals and moments, batching, gradients."""
import autograd
import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as hst

import ppl.distributions as dist
from ppl.distributions import constraints
from ppl.distributions.lkj import LKJCholesky


def cholesky_of_2x2(r):
    r = np.asarray(r, dtype=float)
    lower = np.zeros(r.shape + (2, 2))
    lower[..., 0, 0], lower[..., 1, 0], lower[..., 1, 1] = 1.0, r, np.sqrt(1 - r**2)
    return lower


def correlations(lower):
    d = lower.shape[-1]
    rows, cols = np.tril_indices(d, -1)
    return (lower @ np.swapaxes(lower, -1, -2))[..., rows, cols]


@given(eta=hst.floats(0.3, 8.0), r=hst.floats(-0.99, 0.99))
@settings(max_examples=30)
def test_dimension_two_is_a_scaled_beta_in_the_correlation(eta, r):
    """For d = 2 the one free entry of L is the correlation r, and (r + 1)/2 ~ Beta(eta, eta)."""
    lp = LKJCholesky(2, eta).log_prob(cholesky_of_2x2(r))
    expected = np.log(0.5) + scipy.stats.beta(eta, eta).logpdf((r + 1) / 2)
    assert lp == pytest.approx(expected, rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("d", [3, 4])
@pytest.mark.parametrize("eta", [0.7, 1.0, 2.5])
def test_density_integrates_to_one_over_the_cholesky_factors(d, eta):
    """exp(log_prob) integrated over the free entries of L (the strictly lower ones, each row inside the
    unit ball) by Monte Carlo from the cube (-1, 1)^(d(d-1)/2): a missing constant, a wrong power of 2 or
    a wrong exponent of L_ii moves the integral by far more than 4 standard errors (0.3 to 0.7 %)."""
    rng = np.random.default_rng(d * 10 + int(eta * 10))
    m, n = d * (d - 1) // 2, 200_000
    lower = np.zeros((n, d, d))
    rows, cols = np.tril_indices(d, -1)
    lower[:, rows, cols] = rng.uniform(-1, 1, (n, m))
    remaining = 1 - np.sum(lower**2, axis=-1)
    inside = np.all(remaining > 0, axis=-1)
    lower = lower[inside]
    diagonal = np.arange(d)
    lower[:, diagonal, diagonal] = np.sqrt(remaining[inside])
    weights = np.zeros(n)
    weights[inside] = np.exp(LKJCholesky(d, eta).log_prob(lower)) * 2.0**m
    standard_error = weights.std() / np.sqrt(n)
    assert abs(weights.mean() - 1.0) < 4 * standard_error, (weights.mean(), standard_error)


def test_uniform_lkj_normaliser_is_the_volume_of_the_elliptope():
    """eta = 1 is uniform over correlation matrices: for d = 3 their set has volume pi^2 / 2, so the
    density of R is 2 / pi^2, and that of L is it times the Jacobian prod L_ii^(d-1-i) = L_11."""
    lower = LKJCholesky(3).sample(np.random.default_rng(0), (5,))
    expected = np.log(2 / np.pi**2) + np.log(lower[:, 1, 1])
    np.testing.assert_allclose(LKJCholesky(3, 1.0).log_prob(lower), expected, rtol=1e-12)


@pytest.mark.parametrize("d,eta", [(2, 0.5), (3, 1.0), (4, 2.5), (5, 0.8)])
def test_onion_draws_have_the_lkj_marginals(d, eta):
    """Every correlation of LKJ(eta) in dimension d is 2 Beta(b, b) - 1 with b = eta - 1 + d/2: mean 0,
    variance 1 / (2 eta + d - 1); checked by moments and a Kolmogorov-Smirnov test on each entry."""
    draws = LKJCholesky(d, eta).sample(np.random.default_rng(d), (20_000,))
    assert draws.shape == (20_000, d, d)
    assert np.all(constraints.corr_cholesky.check(draws))
    r = correlations(draws)
    variance = 1 / (2 * eta + d - 1)
    np.testing.assert_allclose(r.mean(0), 0.0, atol=4 * np.sqrt(variance / 20_000))
    np.testing.assert_allclose(r.var(0), variance, rtol=0.05)
    b = eta - 1 + d / 2
    for k in range(r.shape[-1]):
        assert scipy.stats.kstest((r[:, k] + 1) / 2, scipy.stats.beta(b, b).cdf).pvalue > 1e-3


def test_log_prob_is_consistent_across_concentrations():
    """Importance weights between two concentrations, p_eta2 / p_eta1 at draws from eta1, average 1 only
    if both normalisers are right (and the sampler draws from eta1)."""
    eta1, eta2, d = 1.5, 2.5, 4
    draws = LKJCholesky(d, eta1).sample(np.random.default_rng(7), (40_000,))
    weights = np.exp(LKJCholesky(d, eta2).log_prob(draws) - LKJCholesky(d, eta1).log_prob(draws))
    assert weights.mean() == pytest.approx(1.0, abs=4 * weights.std() / np.sqrt(weights.size))
    # and the other way (eta2 draws, eta1 weights): both directions have a finite variance here
    draws = LKJCholesky(d, eta2).sample(np.random.default_rng(8), (40_000,))
    weights = np.exp(LKJCholesky(d, eta1).log_prob(draws) - LKJCholesky(d, eta2).log_prob(draws))
    assert weights.mean() == pytest.approx(1.0, abs=4 * weights.std() / np.sqrt(weights.size))


def test_batched_concentration_matches_one_distribution_per_entry():
    eta = np.array([0.5, 1.0, 3.0])
    lkj = LKJCholesky(3, eta)
    assert lkj.batch_shape == (3,) and lkj.event_shape == (3, 3)
    draws = lkj.sample(np.random.default_rng(1), (4,))
    assert draws.shape == (4, 3, 3, 3)
    lp = lkj.log_prob(draws)
    assert lp.shape == (4, 3)
    for i, e in enumerate(eta):
        np.testing.assert_allclose(lp[:, i], LKJCholesky(3, float(e)).log_prob(draws[:, i]), rtol=1e-12)
    assert LKJCholesky(3, np.float32(2.0)).sample(np.random.default_rng(0), (2,)).dtype == np.float32
    assert LKJCholesky(1).log_prob(np.ones((1, 1))) == 0.0  # one variable: the only correlation matrix is [1]


def test_gradients_in_the_concentration_and_the_factor_match_finite_differences():
    lower = LKJCholesky(4, 2.0).sample(np.random.default_rng(3))
    grad = autograd.grad(lambda eta: LKJCholesky(4, eta).log_prob(lower))(2.0)
    h = 1e-6
    numeric = (LKJCholesky(4, 2.0 + h).log_prob(lower) - LKJCholesky(4, 2.0 - h).log_prob(lower)) / (2 * h)
    assert grad == pytest.approx(numeric, rel=1e-6)
    # through the corr_cholesky transform, as a latent site: d/dx of log p(t(x)) + log|J|
    t = dist.biject_to(LKJCholesky(4, 2.0).support)
    x = np.random.default_rng(4).normal(size=6)

    def unconstrained(v):
        return LKJCholesky(4, 2.0).log_prob(t(v)) + t.log_abs_det_jacobian(v, t(v))
    grad = autograd.grad(unconstrained)(x)
    numeric = [(unconstrained(x + h * e) - unconstrained(x - h * e)) / (2 * h) for e in np.eye(6)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_bad_arguments_and_values_name_the_culprit():
    with pytest.raises(ValueError, match="dimension must be an integer >= 1, got 2.5"):
        LKJCholesky(2.5)
    with pytest.raises(ValueError, match="concentration"):
        LKJCholesky(3, -1.0)
    with pytest.raises(ValueError, match=r"shape \(2, 2\) does not end in the event shape \(3, 3\)"):
        LKJCholesky(3).log_prob(np.eye(2))
    with pytest.raises(ValueError, match="outside the support corr_cholesky"):
        LKJCholesky(2).log_prob(np.array([[1.0, 0.0], [0.5, 0.5]]))
    assert "LKJCholesky" in dist.__all__ and dist.LKJCholesky is LKJCholesky
