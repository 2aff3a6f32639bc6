"""Fused kernels against the plain autograd expression, finite differences and scipy."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.stats
from autograd.test_util import check_grads
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

from ppl import kernels
from ppl.autodiff import value_and_grads

LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


def normal_reference(v, m, s):
    return -0.5 * ((v - m) / s) ** 2 - anp.log(s) - LOG_SQRT_2PI


def bernoulli_reference(x, logits):
    return x * logits - anp.logaddexp(0.0, logits)


def binary(rng, shape):
    return (rng.random(shape) < 0.5).astype(float)


# name -> (kernel, plain autograd expression, arguments from an rng)
CASES = {
    "normal": (kernels.normal_log_prob, normal_reference,
               lambda r: (r.normal(size=(4, 3)), r.normal(size=(1, 3)), r.uniform(0.5, 2, size=(4, 1)))),
    "normal_column_by_row": (kernels.normal_log_prob, normal_reference,
                             lambda r: (r.normal(size=(5, 1)), r.normal(size=(1, 4)), r.uniform(0.5, 2, size=(1, 4)))),
    "normal_0d_loc_scale": (kernels.normal_log_prob, normal_reference,
                            lambda r: (r.normal(size=(5,)), np.array(0.3), np.array(1.7))),
    "normal_python_floats": (kernels.normal_log_prob, normal_reference,
                             lambda r: (r.normal(size=(2, 3)), 0.3, 1.7)),
    "normal_value_broadcast": (kernels.normal_log_prob, normal_reference,
                               lambda r: (r.normal(size=(3,)), r.normal(size=(2, 3)), r.uniform(0.5, 2, size=(2, 1)))),
    "bernoulli_binary": (kernels.bernoulli_logits_log_prob, bernoulli_reference,
                         lambda r: (binary(r, (4, 3)), r.normal(size=(4, 3)) * 3)),
    "bernoulli_fractional": (kernels.bernoulli_logits_log_prob, bernoulli_reference,
                             lambda r: (r.random((4, 3)), r.normal(size=(1, 3)))),
    "bernoulli_python_logit": (kernels.bernoulli_logits_log_prob, bernoulli_reference,
                               lambda r: (binary(r, (4, 3)), -1.2)),
    "bernoulli_binary_broadcast": (kernels.bernoulli_logits_log_prob, bernoulli_reference,
                                   lambda r: (binary(r, (4, 1)), r.normal(size=(1, 3)) * 3)),
    "dense_particles": (kernels.dense, lambda x, w, b: anp.dot(x, w) + b,
                        lambda r: (r.normal(size=(2, 5, 4)), r.normal(size=(4, 3)), r.normal(size=(3,)))),
    "dense_vector": (kernels.dense, lambda x, w, b: anp.dot(x, w) + b,
                     lambda r: (r.normal(size=(4,)), r.normal(size=(4, 3)), r.normal(size=(3,)))),
    "elu": (kernels.elu, lambda x: anp.where(x > 0, x, anp.exp(x) - 1), lambda r: (r.normal(size=(6, 2)),)),
    "softplus": (kernels.softplus, lambda x: anp.logaddexp(0.0, x), lambda r: (r.normal(size=(6, 2)) * 5,)),
    "sigmoid": (kernels.sigmoid, lambda x: 1 / (1 + anp.exp(-x)), lambda r: (r.normal(size=(6, 2)) * 5,)),
    "sigmoid_scalar": (kernels.sigmoid, lambda x: 1 / (1 + anp.exp(-x)), lambda r: (-1.3,)),
    "normal_entropy": (kernels.normal_entropy, lambda s: 0.5 + 0.5 * anp.log(2 * np.pi) + anp.log(s),
                       lambda r: (r.uniform(0.3, 3.0, size=(4, 3)),)),
    "normal_entropy_scalar": (kernels.normal_entropy, lambda s: 0.5 + 0.5 * anp.log(2 * np.pi) + anp.log(s),
                              lambda r: (1.7,)),
    "sum_all": (kernels.sum, anp.sum, lambda r: (r.normal(size=(3, 4)),)),
    "sum_last_axis": (lambda x: kernels.sum(x, -1), lambda x: anp.sum(x, axis=-1), lambda r: (r.normal(size=(3, 4)),)),
    "sum_outer_axes": (lambda x: kernels.sum(x, (0, 2)), lambda x: anp.sum(x, axis=(0, 2)),
                       lambda r: (r.normal(size=(2, 3, 4)),)),
    "sum_of_size_one_axis": (lambda x: kernels.sum(x, 1), lambda x: anp.sum(x, axis=1),
                             lambda r: (r.normal(size=(3, 1, 2)),)),
    "rsample": (kernels.normal_rsample, lambda m, s, e: m + s * e,
                lambda r: (r.normal(size=(3,)), r.uniform(0.5, 2, size=(2, 1)), r.normal(size=(2, 3)))),
    "add_n_signed": (lambda a, b, c: kernels.add_n(a, b, c, signs=(1.0, -1.0, 2.5)),
                     lambda a, b, c: a - b + 2.5 * c,
                     lambda r: (r.normal(size=()), r.normal(size=(3,)), r.normal(size=(2, 1)))),
    "add_n_one_term": (lambda a: kernels.add_n(a, signs=(-1.0,)), lambda a: -a, lambda r: (r.normal(size=(2,)),)),
    "rsample_scalars": (kernels.normal_rsample, lambda m, s, e: m + s * e,
                        lambda r: (0.4, np.array(1.5), r.normal(size=(4, 2)))),
}


def with_arg(args, i, a):
    full = list(args)
    full[i] = a
    return full


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_matches_autograd_and_finite_differences(name):
    kernel, reference, make_args = CASES[name]
    rng = np.random.default_rng(sorted(CASES).index(name))
    args = make_args(rng)
    expected = reference(*args)
    assert np.shape(kernel(*args)) == np.shape(expected)
    np.testing.assert_allclose(kernel(*args), expected, rtol=1e-12, atol=1e-12)
    weights = rng.normal(size=np.shape(expected))  # a random linear functional of the output
    for i, arg in enumerate(args):
        ours = autograd.grad(lambda a: anp.sum(weights * kernel(*with_arg(args, i, a))))(arg)
        theirs = autograd.grad(lambda a: anp.sum(weights * reference(*with_arg(args, i, a))))(arg)
        assert np.shape(ours) == np.shape(arg), f"gradient for argument {i}"
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12, err_msg=f"argument {i}")
        if not (name.startswith("bernoulli_binary") and i == 0):  # 0/1 data: a step off it is still fine
            check_grads(lambda a: anp.sum(weights * kernel(*with_arg(args, i, a))), modes=["rev"], order=1)(arg)


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_keeps_float32(name):
    kernel, _, make_args = CASES[name]
    args = make_args(np.random.default_rng(1))
    # Python floats stay Python floats (weakly typed) next to arrays; alone, they become float32 scalars
    keep = any(not isinstance(a, float) for a in args)
    args = [a if keep and isinstance(a, float) else np.asarray(a, np.float32) for a in args]
    assert kernel(*args).dtype == np.float32
    for i, arg in enumerate(args):
        if isinstance(arg, float):
            continue
        grad = autograd.grad(lambda a: anp.sum(kernel(*with_arg(args, i, a))))(arg)
        assert grad.dtype == np.float32 and grad.shape == arg.shape, f"argument {i}"


def test_float32_gradient_stays_float32_against_float64_partners():
    """A float32 parameter meeting float64 data still gets a float32 gradient."""
    loc = np.zeros((1, 3), np.float32)
    grad = autograd.grad(lambda m: anp.sum(kernels.normal_log_prob(np.ones((4, 3)), m, 2.0)))(loc)
    assert grad.dtype == np.float32
    np.testing.assert_allclose(grad, np.full((1, 3), 4 * 0.25), rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3), st.integers(0, 2**32 - 1))
def test_normal_log_prob_against_scipy_for_any_broadcast(shapes, seed):
    rng = np.random.default_rng(seed)
    v, m = rng.normal(size=shapes.input_shapes[0]), rng.normal(size=shapes.input_shapes[1])
    s = rng.uniform(0.3, 3.0, size=shapes.input_shapes[2])
    out = kernels.normal_log_prob(v, m, s)
    assert np.shape(out) == shapes.result_shape
    np.testing.assert_allclose(out, scipy.stats.norm.logpdf(v, m, s), rtol=1e-12, atol=1e-12)
    g_v, g_m, g_s = autograd.grad(lambda *a: anp.sum(kernels.normal_log_prob(*a)), argnum=(0, 1, 2))(v, m, s)
    z = (np.broadcast_to(v, out.shape) - m) / s
    for grad, arg, full in [(g_v, v, -z / s), (g_m, m, z / s), (g_s, s, (z**2 - 1) / s)]:
        assert np.shape(grad) == np.shape(arg)
        np.testing.assert_allclose(grad, kernels.unbroadcast(np.broadcast_to(full, out.shape), np.shape(arg)),
                                   rtol=1e-10, atol=1e-12)


def test_unbroadcast_sums_over_broadcast_axes():
    g = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(kernels.unbroadcast(g, (3, 1)), g.sum(axis=(0, 2))[:, None])
    np.testing.assert_array_equal(kernels.unbroadcast(g, (1, 1, 4)), g.sum(axis=(0, 1), keepdims=True))
    assert kernels.unbroadcast(g, ()) == g.sum()
    assert kernels.unbroadcast(g, (2, 3, 4)) is g
    assert kernels.unbroadcast(g, (4,), np.float32).dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_extreme_logits_are_finite(dtype):
    logits = np.array([800.0, -800.0, 800.0, -800.0], dtype)
    x = np.array([1.0, 0.0, 0.0, 1.0], dtype)
    out = kernels.bernoulli_logits_log_prob(x, logits)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, [0.0, 0.0, -800.0, -800.0])
    for value in (x, np.array([0.5, 0.5, 0.25, 0.75], dtype)):  # binary and fractional gradient paths
        g = autograd.grad(lambda l: anp.sum(kernels.bernoulli_logits_log_prob(value, l)))(logits)
        np.testing.assert_allclose(g, value - (logits > 0))
    np.testing.assert_allclose(kernels.softplus(logits), [800.0, 0.0, 800.0, 0.0])
    g = autograd.grad(lambda l: anp.sum(kernels.softplus(l)))(logits)
    assert np.all(np.isfinite(g)) and g.dtype == dtype
    np.testing.assert_allclose(g, [1.0, 0.0, 1.0, 0.0])


def test_softplus_keeps_relative_accuracy_in_the_left_tail():
    """softplus(x) = e^x (1 - e^x / 2 + ...) for x << 0: a scale made by softplus must not round to 0."""
    x = np.array([-40.0, -100.0, -700.0])
    np.testing.assert_allclose(kernels.softplus(x), np.exp(x), rtol=1e-12)
    assert kernels.softplus(np.float32(-40.0)) > 0


def test_dense_names_the_mismatched_argument():
    x, w, b = np.ones((5, 4)), np.ones((4, 3)), np.ones(3)
    with pytest.raises(ValueError, match=r"W must have shape \(n_in, n_out\) with n_in = 4"):
        kernels.dense(x, np.ones((3, 3)), b)
    with pytest.raises(ValueError, match=r"b must have shape \(n_out,\) = \(3,\)"):
        kernels.dense(x, w, np.ones(4))
    with pytest.raises(ValueError, match="x must have at least one axis"):
        kernels.dense(np.float64(1.0), w, b)


def test_dense_gradient_of_a_layer_stack_matches_einsum():
    """Two layers with leading (particle, batch) axes, against einsum and autograd."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 7, 6))
    params = [rng.normal(size=(6, 5)), rng.normal(size=5), rng.normal(size=(5, 2)), rng.normal(size=2)]

    def ours(p):
        return anp.sum(kernels.dense(kernels.elu(kernels.dense(x, p[0], p[1])), p[2], p[3]) ** 2)

    def theirs(p):
        h = anp.einsum("pbi,io->pbo", x, p[0]) + p[1]
        h = anp.where(h > 0, h, anp.exp(h) - 1)
        return anp.sum((anp.einsum("pbi,io->pbo", h, p[2]) + p[3]) ** 2)

    np.testing.assert_allclose(ours(params), theirs(params), rtol=1e-12)
    for a, b in zip(autograd.grad(ours)(params), autograd.grad(theirs)(params)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_sum_gradient_is_a_read_only_view_that_costs_no_copy():
    """The sum's gradient broadcasts g without allocating x's size, and nobody can write into it."""
    x = np.ones((500, 400))
    _, grads = value_and_grads(lambda a: 3.0 * kernels.sum(a), [x])
    g = grads[0]
    np.testing.assert_array_equal(g, np.full(x.shape, 3.0))
    assert not g.flags.writeable and g.strides == (0, 0)
    view = kernels.broadcast_view(np.arange(3.0).reshape(3, 1), (3, 4))
    np.testing.assert_array_equal(view, np.broadcast_to(np.arange(3.0)[:, None], (3, 4)))
    strided = np.arange(12.0).reshape(3, 4)[:, :1]  # not contiguous: falls back to np.broadcast_to
    np.testing.assert_array_equal(kernels.broadcast_view(strided, (3, 5)), np.broadcast_to(strided, (3, 5)))


def test_bernoulli_gradient_with_the_binary_promise_matches_the_checked_one():
    """``binary=True`` (validated 0/1 data) skips the gradient's own check and changes no number."""
    rng = np.random.default_rng(3)
    x, logits = binary(rng, (5, 7)), rng.normal(size=(5, 7)) * 4
    checked = autograd.grad(lambda l: anp.sum(kernels.bernoulli_logits_log_prob(x, l)))(logits)
    promised = autograd.grad(lambda l: anp.sum(kernels.bernoulli_logits_log_prob(x, l, binary=True)))(logits)
    np.testing.assert_allclose(promised, checked, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(promised, x - 1 / (1 + np.exp(-logits)), rtol=1e-9, atol=1e-15)
