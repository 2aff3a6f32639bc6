"""ppl.math: values against scipy and numpy, gradients against finite differences and closed forms."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.special
from hypothesis import given, settings
from hypothesis import strategies as hst

from ppl.math import cholesky, gp_exp_quad_cov, log1mexp, log_mix, log_mix_weights, logsumexp

seeds = hst.integers(0, 2**32 - 1)
shapes = hst.lists(hst.integers(1, 4), min_size=1, max_size=3).map(tuple)


def directional_fd(f, x, direction, h=1e-6):
    return (f(x + h * direction) - f(x - h * direction)) / (2 * h)


# ---------------------------------------------------------------- logsumexp


@given(shape=shapes, seed=seeds, scale=hst.sampled_from([1.0, 300.0]), keepdims=hst.booleans(), data=hst.data())
@settings(max_examples=30)
def test_logsumexp_matches_scipy_and_its_gradient_is_softmax(shape, seed, scale, keepdims, data):
    x = np.random.default_rng(seed).normal(scale=scale, size=shape)
    axis = data.draw(hst.sampled_from([None, -1, 0, tuple(range(len(shape)))]))
    out = logsumexp(x, axis=axis, keepdims=keepdims)
    expected = scipy.special.logsumexp(x, axis=axis, keepdims=keepdims)
    assert np.shape(out) == np.shape(expected)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    weights = np.random.default_rng(seed + 1).normal(size=np.shape(out))
    grad = autograd.grad(lambda v: anp.sum(weights * logsumexp(v, axis=axis, keepdims=keepdims)))(x)
    softmax = np.exp(x - scipy.special.logsumexp(x, axis=axis, keepdims=True))
    w = weights if keepdims or axis is None else np.expand_dims(weights, axis)
    np.testing.assert_allclose(grad, w * softmax, rtol=1e-10, atol=1e-12)


def test_logsumexp_of_an_all_minus_inf_slice_is_minus_inf_with_zero_gradient():
    x = np.array([[0.5, -np.inf, 1.0], [-np.inf, -np.inf, -np.inf]])
    out = logsumexp(x, axis=1)
    assert out[1] == -np.inf and out[0] == pytest.approx(np.log(np.exp(0.5) + np.e))
    grad = autograd.grad(lambda v: anp.sum(logsumexp(v, axis=1)))(x)  # the value is -inf, the gradient finite
    assert np.all(np.isfinite(grad)) and np.all(grad[1] == 0) and grad[0, 1] == 0
    assert grad[0].sum() == pytest.approx(1.0)
    assert logsumexp(np.array([1000.0, 1000.0])) == pytest.approx(1000.0 + np.log(2.0))  # no overflow
    assert logsumexp(np.float32([1.0, 2.0])).dtype == np.float32
    with pytest.raises(ValueError, match="axis 2"):
        logsumexp(np.zeros((2, 2)), axis=2)


def test_logsumexp_gradient_is_differentiable_again():
    """The VJP is written with autograd, so Hessians (Laplace) work: d2/dx2 of log(e^x + e^c) = s(1 - s)."""
    hess = autograd.hessian(lambda v: logsumexp(v))(np.array([0.3, -0.2]))
    s = scipy.special.expit(0.5)
    np.testing.assert_allclose(hess, [[s * (1 - s), -s * (1 - s)], [-s * (1 - s), s * (1 - s)]], rtol=1e-10)


# ---------------------------------------------------------------- log_mix


@given(seed=seeds)
@settings(max_examples=15)
def test_log_mix_is_stans_two_component_mixture_with_broadcasting_and_gradients(seed):
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0.01, 0.99, size=(3, 1))
    lp1, lp2 = rng.normal(scale=5.0, size=(4,)), rng.normal(scale=5.0, size=(3, 4))
    out = log_mix(theta, lp1, lp2)
    np.testing.assert_allclose(out, np.log(theta * np.exp(lp1) + (1 - theta) * np.exp(lp2)), rtol=1e-12)
    # d/dtheta = (e^lp1 - e^lp2) / mixture
    grad = autograd.grad(lambda t: anp.sum(log_mix(t, lp1, lp2)))(theta)
    expected = np.sum((np.exp(lp1) - np.exp(lp2)) / np.exp(out), axis=-1, keepdims=True)
    np.testing.assert_allclose(grad, expected, rtol=1e-9)
    d = rng.normal(size=lp2.shape)
    g2 = autograd.grad(lambda v: anp.sum(log_mix(theta, lp1, v)))(lp2)
    np.testing.assert_allclose(np.sum(g2 * d), directional_fd(lambda v: np.sum(log_mix(theta, lp1, v)), lp2, d),
                               rtol=1e-6)


def test_log_mix_vector_forms_agree_with_each_other_and_the_two_component_form():
    rng = np.random.default_rng(0)
    weights = rng.dirichlet(np.ones(3), size=5)
    lps = rng.normal(scale=3.0, size=(5, 3))
    expected = np.log(np.sum(weights * np.exp(lps), axis=-1))
    np.testing.assert_allclose(log_mix(weights, lps), expected, rtol=1e-12)
    np.testing.assert_allclose(log_mix_weights(np.log(weights), lps), expected, rtol=1e-12)
    np.testing.assert_allclose(log_mix_weights(np.log(weights).T, lps.T, axis=0), expected, rtol=1e-12)
    two = np.stack([np.full(5, 0.3), np.full(5, 0.7)], -1)
    np.testing.assert_allclose(log_mix(two, lps[:, :2]), log_mix(0.3, lps[:, 0], lps[:, 1]), rtol=1e-12)
    # a zero weight drops its component, even one at -inf
    assert log_mix(0.0, -np.inf, -2.0) == pytest.approx(-2.0)
    assert log_mix(1.0, -1.5, 50.0) == pytest.approx(-1.5)


# ---------------------------------------------------------------- log1mexp


def test_log1mexp_is_accurate_in_both_regimes():
    x = -np.logspace(-300, 2.5, 200)
    expected = np.log(-np.expm1(x))  # numpy's expm1 is exact enough here to serve as a reference...
    far = x < -1.0
    expected[far] = np.log1p(-np.exp(x[far]))  # ...and log1p(-e^x) where e^x is small
    np.testing.assert_allclose(log1mexp(x), expected, rtol=1e-13)
    # closed forms: log(1 - e^{-log 2}) = -log 2; tiny |x|: log(-x); very negative x: -e^x
    assert log1mexp(-np.log(2.0)) == pytest.approx(-np.log(2.0), rel=1e-15)
    assert log1mexp(-1e-20) == pytest.approx(np.log(1e-20), rel=1e-14)
    assert log1mexp(-50.0) == pytest.approx(-np.exp(-50.0), rel=1e-14)
    assert log1mexp(0.0) == -np.inf
    with np.errstate(invalid="ignore"):
        assert np.isnan(log1mexp(0.5))
    assert log1mexp(np.float32([-1e-3, -3.0])).dtype == np.float32


@given(seed=seeds)
@settings(max_examples=10)
def test_log1mexp_gradient_matches_finite_differences(seed):
    x = -np.random.default_rng(seed).uniform(0.01, 20.0, size=6)
    grad = autograd.grad(lambda v: anp.sum(log1mexp(v)))(x)
    np.testing.assert_allclose(grad, -np.exp(x) / (1 - np.exp(x)), rtol=1e-10)
    d = np.ones(6)
    np.testing.assert_allclose(np.sum(grad), directional_fd(lambda v: np.sum(log1mexp(v)), x, d), rtol=1e-6)


# ---------------------------------------------------------------- cholesky


def spd_batch(rng, batch, n):
    a = rng.normal(size=batch + (n, n))
    return a @ np.swapaxes(a, -1, -2) + n * np.eye(n)


@given(seed=seeds, batch=hst.lists(hst.integers(1, 3), max_size=2).map(tuple), n=hst.integers(1, 4))
@settings(max_examples=12)
def test_batched_cholesky_value_and_gradient(seed, batch, n):
    rng = np.random.default_rng(seed)
    s = spd_batch(rng, batch, n)
    lower = cholesky(s)
    np.testing.assert_allclose(lower @ np.swapaxes(lower, -1, -2), s, rtol=1e-10, atol=1e-10)
    assert np.all(np.triu(lower, 1) == 0)
    weights = rng.normal(size=s.shape)
    objective = lambda m: np.sum(weights * cholesky(m))  # noqa: E731
    grad = autograd.grad(lambda m: anp.sum(weights * cholesky(m)))(s)
    d = rng.normal(size=s.shape)
    d = d + np.swapaxes(d, -1, -2)  # a symmetric direction: cholesky is defined on symmetric matrices
    np.testing.assert_allclose(np.sum(grad * d), directional_fd(objective, s, d), rtol=1e-5, atol=1e-7)


def test_log_det_through_cholesky_has_the_closed_form_gradient():
    """d/dS 2 sum log diag(chol S) = d log det S / dS = S^{-1}: a gradient through a (2, 3, 3) batch."""
    s = spd_batch(np.random.default_rng(3), (2,), 3)
    grad = autograd.grad(lambda m: anp.sum(2 * anp.log(anp.diagonal(cholesky(m), axis1=-1, axis2=-2))))(s)
    np.testing.assert_allclose(grad, np.linalg.inv(s), rtol=1e-9)


def test_cholesky_errors_name_the_bad_matrix():
    s = np.stack([np.eye(2), np.array([[1.0, 2.0], [2.0, 1.0]])])
    with pytest.raises(np.linalg.LinAlgError, match=r"batch index \(1,\).*\(2, 2, 2\)"):
        cholesky(s)
    with pytest.raises(ValueError, match=r"square.*\(2, 3\)"):
        cholesky(np.zeros((2, 3)))


# ---------------------------------------------------------------- gp_exp_quad_cov


def test_gp_exp_quad_cov_is_stans_kernel_batched_over_hyperparameters():
    x = np.array([0.0, 0.5, 2.0])
    alpha, rho = np.array([1.0, 2.0]), np.array([0.7, 1.5])
    k = gp_exp_quad_cov(x, alpha, rho)
    assert k.shape == (2, 3, 3)
    for c in range(2):
        expected = alpha[c] ** 2 * np.exp(-np.subtract.outer(x, x) ** 2 / (2 * rho[c] ** 2))
        np.testing.assert_allclose(k[c], expected, rtol=1e-14)
    assert gp_exp_quad_cov(x, 1.5, 1.0)[0, 2] == pytest.approx(2.25 * np.exp(-2.0))
    # gradient in the length scale: dK_ij/drho = K_ij d_ij^2 / rho^3
    grad = autograd.grad(lambda r: anp.sum(gp_exp_quad_cov(x, 1.3, r)))(0.8)
    k = gp_exp_quad_cov(x, 1.3, 0.8)
    assert grad == pytest.approx(np.sum(k * np.subtract.outer(x, x) ** 2 / 0.8 ** 3), rel=1e-12)
    # a GP log-density through the kernel and the batched cholesky is differentiable in alpha
    grad_alpha = autograd.grad(lambda a: anp.sum(anp.log(anp.diagonal(
        cholesky(gp_exp_quad_cov(x, a, rho) + 1e-6 * np.eye(3)), axis1=-1, axis2=-2))))(alpha)
    assert grad_alpha == pytest.approx(3 / alpha, rel=1e-4)  # log det scales as 2 n log alpha (jitter aside)
    with pytest.raises(ValueError, match="x must have"):
        gp_exp_quad_cov(1.0, 1.0, 1.0)
