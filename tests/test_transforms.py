"""Transforms and biject_to: round trips, log-Jacobians against autograd's Jacobian,
supports, gradients against finite differences, batching and float32."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.special
from hypothesis import given, settings
from hypothesis import strategies as hst

import ppl.distributions as dist
from ppl.distributions import constraints
from ppl.distributions.transforms import (AffineTransform, ComposeTransform, ExpTransform, IdentityTransform,
                                          LowerCholeskyTransform, SigmoidTransform, SoftplusTransform,
                                          StickBreakingTransform, biject_to)

# name -> (transform, length of one unconstrained event (None: elementwise))
TRANSFORMS = {
    "identity": (IdentityTransform(), None),
    "exp": (ExpTransform(), None),
    "softplus": (SoftplusTransform(), None),
    "sigmoid": (SigmoidTransform(), None),
    "affine": (AffineTransform(1.5, -0.7), None),
    "exp_then_affine": (ComposeTransform([ExpTransform(), AffineTransform(-2.0, 3.0)]), None),
    "interval": (biject_to(constraints.interval(-1.0, 4.0)), None),
    "stick_breaking": (StickBreakingTransform(), 3),
    "lower_cholesky": (LowerCholeskyTransform(), 6),
    "affine_then_stick": (ComposeTransform([AffineTransform(0.3, 2.0), StickBreakingTransform()]), 4),
    "exp_then_cholesky": (ComposeTransform([ExpTransform(), LowerCholeskyTransform()]), 3),
}
NAMES = sorted(TRANSFORMS)

batch_shapes = hst.lists(hst.integers(1, 3), max_size=2).map(tuple)
seeds = hst.integers(0, 2**32 - 1)


def draw_x(name, batch_shape, seed, radius=4.0, dtype=np.float64):
    t, event = TRANSFORMS[name]
    shape = batch_shape + ((event,) if event else (3,))
    return t, np.random.default_rng(seed).uniform(-radius, radius, shape).astype(dtype)


def flat_output(t, y):
    """The coordinates of y that the log-Jacobian is defined on: all but the last of a simplex
    (whose Jacobian from R^(K-1) is not square otherwise), the lower triangle of a Cholesky factor."""
    if isinstance(t, ComposeTransform):
        t = t.parts[-1]
    if isinstance(t, StickBreakingTransform):
        return y[..., :-1]
    if isinstance(t, LowerCholeskyTransform):
        rows, cols = np.tril_indices(y.shape[-1])
        return y[..., rows, cols]
    return y


def reference_log_det(t, x):
    """log|det J| of the forward map on one flat unconstrained event, by autograd's Jacobian."""
    jac = autograd.jacobian(lambda v: flat_output(t, t(v)))(x)
    return np.linalg.slogdet(jac)[1]


# ---------------------------------------------------------------- laws over random x and batch shapes


@pytest.mark.parametrize("name", NAMES)
@given(batch_shape=batch_shapes, seed=seeds)
@settings(max_examples=20, deadline=None)
def test_inverse_undoes_forward(name, batch_shape, seed):
    t, x = draw_x(name, batch_shape, seed)
    y = t(x)
    assert y.shape == t.forward_shape(x.shape)
    assert t.inverse_shape(y.shape) == x.shape
    np.testing.assert_allclose(t.inv(y), x, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
@given(batch_shape=batch_shapes, seed=seeds)
@settings(max_examples=15, deadline=None)
def test_log_det_is_log_abs_det_of_autograd_jacobian(name, batch_shape, seed):
    t, x = draw_x(name, batch_shape, seed)
    event_axes = 0 if TRANSFORMS[name][1] is None else 1
    log_det = t.log_abs_det_jacobian(x, t(x))
    batch = x.shape[:x.ndim - event_axes]
    if event_axes == 0:  # elementwise: the Jacobian is diagonal, entry by entry
        assert log_det.shape == x.shape
        expected = np.log(np.abs(autograd.elementwise_grad(t)(x)))
        np.testing.assert_allclose(log_det, expected, rtol=1e-7, atol=1e-10)
        flat = x.reshape(-1)
        total = reference_log_det(t, flat)
        np.testing.assert_allclose(np.sum(log_det), total, rtol=1e-7, atol=1e-9)
        return
    assert log_det.shape == batch
    events = x.reshape((-1, x.shape[-1]))
    expected = np.array([reference_log_det(t, e) for e in events]).reshape(batch)
    np.testing.assert_allclose(log_det, expected, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
@given(batch_shape=batch_shapes, seed=seeds)
@settings(max_examples=10, deadline=None)
def test_batched_call_equals_call_per_event(name, batch_shape, seed):
    t, x = draw_x(name, batch_shape, seed)
    if TRANSFORMS[name][1] is None:
        return  # elementwise maps are batched by NumPy itself
    y = t(x)
    log_det = t.log_abs_det_jacobian(x, y)
    for index in np.ndindex(*batch_shape):
        np.testing.assert_allclose(y[index], t(x[index]), rtol=1e-12)
        np.testing.assert_allclose(log_det[index], t.log_abs_det_jacobian(x[index], t(x[index])), rtol=1e-12)


@pytest.mark.parametrize("name", NAMES)
@given(batch_shape=batch_shapes, seed=seeds)
@settings(max_examples=10, deadline=None)
def test_gradients_of_forward_map_and_log_det_match_finite_differences(name, batch_shape, seed):
    t, x = draw_x(name, batch_shape, seed, radius=3.0)
    weights = np.random.default_rng(seed + 1).normal(size=t.forward_shape(x.shape))

    def objective(v):  # a random linear functional of y plus the log-Jacobian, as in an ELBO
        return anp.sum(weights * t(v)) + anp.sum(t.log_abs_det_jacobian(v, t(v)))

    grad = autograd.grad(objective)(x)
    h = 1e-6
    direction = np.random.default_rng(seed + 2).normal(size=x.shape)
    numeric = (objective(x + h * direction) - objective(x - h * direction)) / (2 * h)
    np.testing.assert_allclose(np.sum(grad * direction), numeric, rtol=1e-5, atol=1e-6)


CONSTRAINTS = {
    "real": (constraints.real, None),
    "real_vector": (constraints.real_vector, 3),
    "positive": (constraints.positive, None),
    "greater_than": (constraints.greater_than(-3.5), None),
    "nonnegative": (constraints.nonnegative, None),
    "unit_interval": (constraints.unit_interval, None),
    "interval": (constraints.interval(2.0, 7.5), None),
    "simplex": (constraints.simplex, 4),
    "lower_cholesky": (constraints.lower_cholesky, 6),
}


@pytest.mark.parametrize("name", sorted(CONSTRAINTS))
@given(batch_shape=batch_shapes, seed=seeds, radius=hst.sampled_from([1.0, 10.0, 30.0]))
@settings(max_examples=15, deadline=None)
def test_biject_to_lands_in_the_support_and_back(name, batch_shape, seed, radius):
    constraint, event = CONSTRAINTS[name]
    t = biject_to(constraint)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-radius, radius, batch_shape + ((event,) if event else (5,)))
    x[..., 0] = radius * rng.choice([-1.0, 1.0])  # the extremes themselves
    y = t(x)
    assert np.all(constraint.check(y)), (name, x[~constraint.check(y)])
    assert np.all(t.codomain.check(y))
    assert np.all(np.isfinite(t.log_abs_det_jacobian(x, y)))
    if radius <= 10:  # beyond, sigmoids saturate and the inverse is only as good as the rounding of y
        np.testing.assert_allclose(t.inv(y), x, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- closed forms


def test_elementwise_maps_match_scipy():
    x = np.linspace(-30, 30, 61)
    np.testing.assert_allclose(SigmoidTransform()(x), scipy.special.expit(x), rtol=1e-14)
    np.testing.assert_allclose(SoftplusTransform()(x), np.log1p(np.exp(x)), rtol=1e-12)
    p = np.linspace(0.01, 0.99, 9)
    np.testing.assert_allclose(SigmoidTransform().inv(p), scipy.special.logit(p), rtol=1e-12, atol=1e-15)
    # the stable log-Jacobian of the sigmoid where the naive log(y (1 - y)) would be log(0)
    np.testing.assert_allclose(SigmoidTransform().log_abs_det_jacobian(np.array([-800.0, 800.0]), None),
                               [-800.0, -800.0])
    assert SoftplusTransform()(np.array(1000.0)) == 1000.0
    assert SoftplusTransform().inv(np.array(1000.0)) == 1000.0


def test_interval_map_is_affine_sigmoid():
    t = biject_to(constraints.interval(-1.0, 4.0))
    x = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(t(x), -1.0 + 5.0 * scipy.special.expit(x), rtol=1e-14)
    np.testing.assert_allclose(t.log_abs_det_jacobian(x, t(x)),
                               np.log(5.0) + np.log(scipy.special.expit(x) * scipy.special.expit(-x)), rtol=1e-12)
    assert repr(t.codomain) == "interval(-1.0, 4.0)"
    lower = biject_to(constraints.greater_than(2.5))
    np.testing.assert_allclose(lower(np.array([0.0, 1.0])), [3.5, 2.5 + np.e])
    assert lower.codomain.lower_bound == 2.5


def test_stick_breaking_known_values():
    t = StickBreakingTransform()
    np.testing.assert_allclose(t(np.zeros(4)), np.full(5, 0.2), rtol=1e-14)  # x = 0: the uniform simplex
    # K = 3: z_0 = sigmoid(x_0 - log 2), z_1 = sigmoid(x_1)
    x = np.array([0.7, -1.2])
    z0, z1 = scipy.special.expit(0.7 - np.log(2)), scipy.special.expit(-1.2)
    np.testing.assert_allclose(t(x), [z0, (1 - z0) * z1, (1 - z0) * (1 - z1)], rtol=1e-14)
    # near a corner the inverse still recovers x: y holds entries as small as 1e-13
    x = np.array([30.0, -30.0, 25.0])
    np.testing.assert_allclose(t.inv(t(x)), x, rtol=1e-6)
    assert t(np.zeros(0)).tolist() == [1.0]


def test_lower_cholesky_layout():
    t = LowerCholeskyTransform()
    x = np.array([0.0, 2.0, np.log(3.0), 4.0, 5.0, 0.0])  # rows of the lower triangle in turn
    np.testing.assert_allclose(t(x), [[1.0, 0, 0], [2.0, 3.0, 0], [4.0, 5.0, 1.0]], rtol=1e-14)
    assert t.log_abs_det_jacobian(x, t(x)) == pytest.approx(np.log(3.0))
    # a large off-diagonal entry stays finite and has a finite gradient: exp is applied to the diagonal only
    x_big = np.array([0.0, 800.0, 0.0])
    assert np.all(np.isfinite(autograd.grad(lambda v: anp.sum(t(v)))(x_big)))
    assert t.forward_shape((7, 10)) == (7, 4, 4) and t.inverse_shape((7, 4, 4)) == (7, 10)


def test_identity_log_det_has_the_batch_shape():
    assert biject_to(constraints.real_vector).log_abs_det_jacobian(np.ones((2, 5)), None).shape == (2,)
    assert biject_to(constraints.real).log_abs_det_jacobian(np.ones((2, 5)), None).shape == (2, 5)
    assert np.all(biject_to(None)(np.arange(3.0)) == np.arange(3.0))


def test_compose_log_det_sums_each_part_over_the_composite_event():
    t = ComposeTransform([ExpTransform(), StickBreakingTransform()])
    x = np.array([[0.1, -0.4, 0.9], [1.0, 2.0, -3.0]])
    inner = ExpTransform()(x)
    expected = x.sum(-1) + StickBreakingTransform().log_abs_det_jacobian(inner, None)
    np.testing.assert_allclose(t.log_abs_det_jacobian(x, t(x)), expected, rtol=1e-14)
    assert t.event_dim == 1 and t.forward_shape((2, 3)) == (2, 4)


def test_independent_support_uses_the_base_bijection():
    gamma = dist.Independent(dist.Gamma(np.ones(3), 1.0), 1)
    t = biject_to(gamma.support)
    assert isinstance(t, ExpTransform)
    assert np.all(gamma.support.check(t(np.array([-30.0, 0.0, 30.0]))))


# ---------------------------------------------------------------- float32


@pytest.mark.parametrize("name", NAMES)
def test_float32_stays_float32(name):
    t, x = draw_x(name, (2,), 0, dtype=np.float32)
    y = t(x)
    assert y.dtype == np.float32
    assert t.inv(y).dtype == np.float32
    assert np.asarray(t.log_abs_det_jacobian(x, y)).dtype == np.float32
    assert autograd.grad(lambda v: anp.sum(t(v)) + anp.sum(t.log_abs_det_jacobian(v, t(v))))(x).dtype == np.float32


@pytest.mark.parametrize("name", sorted(CONSTRAINTS))
def test_float32_lands_in_the_support_at_the_extremes(name):
    """|x| = 30 in float32, except that a shifted bound a + e^-30 rounds onto a itself (float32 resolves
    about 1e-7 relative to a): there |x| = 10 is the honest test."""
    constraint, event = CONSTRAINTS[name]
    radius = 10.0 if name in ("greater_than", "interval") else 30.0
    x = np.tile(np.float32([-radius, radius, 0.0]), 2)[:event or 6]
    y = biject_to(constraint)(x)
    assert y.dtype == np.float32
    assert np.all(constraint.check(y))


def test_float32_with_numpy_scalar_bounds():
    x = np.float32([-3.0, 0.0, 3.0])
    assert biject_to(constraints.interval(np.float64(1.0), np.float64(2.0)))(x).dtype == np.float32
    assert biject_to(constraints.greater_than(np.float64(1.0)))(x).dtype == np.float32


# ---------------------------------------------------------------- errors


def test_bad_input_gives_errors_that_name_the_culprit():
    with pytest.raises(NotImplementedError, match="boolean"):
        biject_to(constraints.boolean)
    with pytest.raises(ValueError, match="length 4"):
        LowerCholeskyTransform()(np.zeros(4))
    with pytest.raises(ValueError, match=r"square.*\(2, 3\)"):
        LowerCholeskyTransform().inv(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="scale"):
        AffineTransform(0.0, 0.0)
    with pytest.raises(ValueError, match=r"StickBreakingTransform.*shape \(\)"):
        StickBreakingTransform()(np.float64(1.0))
    with pytest.raises(ValueError, match="parts"):
        ComposeTransform([])
