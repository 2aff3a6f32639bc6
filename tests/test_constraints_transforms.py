"""The constraints and transforms real models need: Stan's ordered and positive_ordered vectors,
the Cholesky factor of a correlation matrix, and bounds that depend on other latents.

Each transform: round trip, log-Jacobian against the log|det| of autograd's Jacobian, batching,
gradients against finite differences, landing in the support; closed forms where Stan gives them."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.special
from hypothesis import given, settings
from hypothesis import strategies as hst

import ppl.distributions as dist
from ppl.distributions import constraints
from ppl.distributions.transforms import (CorrCholeskyTransform, OrderedTransform, PositiveOrderedTransform,
                                          biject_to)

batch_shapes = hst.lists(hst.integers(1, 3), max_size=2).map(tuple)
seeds = hst.integers(0, 2**32 - 1)


def strictly_lower(y):
    rows, cols = np.tril_indices(y.shape[-1], -1)
    return y[..., rows, cols]


# name -> (constraint, length of one unconstrained event, the coordinates of y the Jacobian is square on,
#          the radius of x within which y keeps enough digits to give x back to 1e-6)
VECTOR_CONSTRAINTS = {
    "ordered": (constraints.ordered_vector, 4, lambda y: y, 8.0),
    "positive_ordered": (constraints.positive_ordered_vector, 4, lambda y: y, 8.0),
    # the diagonal of a correlation Cholesky factor follows from the rest; beyond |x| = 3 a row's remaining
    # norm 1 - sum L_ik^2 is a difference of numbers near 1, and x comes back with fewer digits (as in Stan)
    "corr_cholesky": (constraints.corr_cholesky, 6, strictly_lower, 3.0),
}
NAMES = sorted(VECTOR_CONSTRAINTS)


def draw_x(name, batch_shape, seed, radius=3.0, dtype=np.float64):
    constraint, event = VECTOR_CONSTRAINTS[name][:2]
    x = np.random.default_rng(seed).uniform(-radius, radius, batch_shape + (event,)).astype(dtype)
    return biject_to(constraint), x


def reference_log_det(name, t, x):
    """log|det J| on one flat unconstrained event, by autograd's Jacobian."""
    flat = VECTOR_CONSTRAINTS[name][2]
    jac = autograd.jacobian(lambda v: flat(t(v)))(x)
    return np.linalg.slogdet(jac)[1]


# ---------------------------------------------------------------- laws


@pytest.mark.parametrize("name", NAMES)
@given(batch_shape=batch_shapes, seed=seeds)
@settings(max_examples=10)
def test_inverse_undoes_forward_and_lands_in_the_support(name, batch_shape, seed):
    t, x = draw_x(name, batch_shape, seed, radius=VECTOR_CONSTRAINTS[name][3])
    y = t(x)
    constraint = VECTOR_CONSTRAINTS[name][0]
    assert y.shape == t.forward_shape(x.shape) and t.inverse_shape(y.shape) == x.shape
    assert np.all(constraint.check(y)) and np.all(t.codomain.check(y))
    assert constraint.check(y).shape == batch_shape
    np.testing.assert_allclose(t.inv(y), x, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
@given(batch_shape=batch_shapes, seed=seeds)
@settings(max_examples=8)
def test_log_det_is_log_abs_det_of_autograd_jacobian_event_by_event(name, batch_shape, seed):
    t, x = draw_x(name, batch_shape, seed)
    y = t(x)
    log_det = t.log_abs_det_jacobian(x, y)
    assert np.shape(log_det) == batch_shape
    for index in np.ndindex(*batch_shape):
        np.testing.assert_allclose(log_det[index], reference_log_det(name, t, x[index]), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(y[index], t(x[index]), rtol=1e-13)


@pytest.mark.parametrize("name", NAMES)
@given(batch_shape=batch_shapes, seed=seeds)
@settings(max_examples=6)
def test_gradients_of_forward_map_and_log_det_match_finite_differences(name, batch_shape, seed):
    t, x = draw_x(name, batch_shape, seed, radius=2.0)
    weights = np.random.default_rng(seed + 1).normal(size=t.forward_shape(x.shape))

    def objective(v):
        return anp.sum(weights * t(v)) + anp.sum(t.log_abs_det_jacobian(v, t(v)))

    grad = autograd.grad(objective)(x)
    h, direction = 1e-6, np.random.default_rng(seed + 2).normal(size=x.shape)
    numeric = (objective(x + h * direction) - objective(x - h * direction)) / (2 * h)
    np.testing.assert_allclose(np.sum(grad * direction), numeric, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- Stan's closed forms


def test_ordered_matches_stans_definition():
    x = np.array([-1.5, 0.0, np.log(2.0), np.log(0.5)])
    y = OrderedTransform()(x)
    np.testing.assert_allclose(y, [-1.5, -0.5, 1.5, 2.0], rtol=1e-14)
    assert OrderedTransform().log_abs_det_jacobian(x, y) == pytest.approx(np.log(2.0) + np.log(0.5))
    y = PositiveOrderedTransform()(x)
    np.testing.assert_allclose(y, np.cumsum(np.exp(x)), rtol=1e-14)
    assert PositiveOrderedTransform().log_abs_det_jacobian(x, y) == pytest.approx(np.sum(x))
    # one-entry vectors: the identity and exp
    assert OrderedTransform()(np.array([3.0])).tolist() == [3.0]
    assert PositiveOrderedTransform()(np.array([0.0])).tolist() == [1.0]


def test_ordered_constraints_check_the_last_axis():
    ordered, positive = constraints.ordered_vector, constraints.positive_ordered_vector
    y = np.array([[0.0, 1.0, 2.0], [0.0, 2.0, 1.0], [1.0, 1.0, 2.0], [-1.0, 0.5, 3.0], [0.0, np.nan, 1.0],
                  [-np.inf, 0.0, 1.0]])
    assert ordered.check(y).tolist() == [True, False, False, True, False, False]
    assert positive.check(y).tolist() == [False, False, False, False, False, False]
    assert positive.check(np.array([0.1, 0.2])) and not positive.check(np.array([-0.1, 0.2]))
    assert ordered.event_dim == positive.event_dim == 1
    assert repr(ordered) == "ordered_vector" and repr(positive) == "positive_ordered_vector"
    assert ordered.holds(y[:1]) and not ordered.holds(y)

    def traced(v):  # inside a gradient computation the value is an autograd box
        assert ordered.holds(v) and positive.holds(v) and constraints.corr_cholesky.check(anp.eye(2) + 0 * v[0])
        return anp.sum(v)
    assert autograd.grad(traced)(np.array([0.1, 0.5])).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("name", NAMES)
@given(seed=seeds, radius=hst.sampled_from([10.0, 30.0]))
@settings(max_examples=6)
def test_extreme_x_still_lands_in_the_support(name, seed, radius):
    constraint, event = VECTOR_CONSTRAINTS[name][:2]
    rng = np.random.default_rng(seed)
    x = rng.choice([-radius, radius], size=(5, event)) if name == "corr_cholesky" else \
        rng.uniform(-radius / 3, radius / 3, size=(5, event))  # ordered gaps e^-10 against values e^10: 1e-9
    y = biject_to(constraint)(x)
    assert np.all(constraint.check(y))
    assert np.all(np.isfinite(biject_to(constraint).log_abs_det_jacobian(x, y)))


def test_corr_cholesky_matches_stans_construction():
    """Stan's cholesky_corr_constrain, written out for n = 3: z = tanh x; row 1 = (z_10, sqrt(1 - z_10^2));
    row 2 = (z_20, z_21 sqrt(1 - z_20^2), sqrt(1 - z_20^2 - z_21^2 (1 - z_20^2)))."""
    x = np.array([0.4, -1.1, 0.7])
    z10, z20, z21 = np.tanh(x)
    expected = np.array([[1.0, 0.0, 0.0],
                         [z10, np.sqrt(1 - z10**2), 0.0],
                         [z20, z21 * np.sqrt(1 - z20**2), np.sqrt((1 - z20**2) * (1 - z21**2))]])
    t = CorrCholeskyTransform()
    np.testing.assert_allclose(t(x), expected, rtol=1e-14, atol=1e-16)
    correlation = t(x) @ t(x).T
    np.testing.assert_allclose(np.diag(correlation), 1.0, rtol=1e-14)
    # Stan's log-Jacobian: sum log(1 - z^2) over the entries, plus 0.5 log(1 - z_20^2) for L_21
    stan = np.sum(np.log1p(-np.tanh(x) ** 2)) + 0.5 * np.log1p(-z20**2)
    assert t.log_abs_det_jacobian(x, t(x)) == pytest.approx(stan, rel=1e-13)
    assert t.forward_shape((7, 6)) == (7, 4, 4) and t.inverse_shape((7, 4, 4)) == (7, 6)
    assert t(np.zeros(0)).tolist() == [[1.0]] and t.inverse_shape((1, 1)) == (0,)
    np.testing.assert_allclose(t(np.zeros(6)), np.eye(4), atol=0)  # x = 0: the identity correlation


def test_corr_cholesky_constraint():
    c = constraints.corr_cholesky
    good = CorrCholeskyTransform()(np.array([0.4, -1.1, 0.7]))
    not_unit = good * np.array([[1.0], [1.0], [1.1]])
    upper = good + np.triu(np.ones((3, 3)), 1) * 0.1
    negative_diagonal = good * np.array([1.0, -1.0, 1.0])  # rows still of unit norm
    assert c.check(np.stack([good, not_unit, upper, negative_diagonal, np.eye(3)])).tolist() == \
        [True, False, False, False, True]
    assert c.event_dim == 2 and repr(c) == "corr_cholesky"
    with pytest.raises(ValueError, match="length 4"):
        CorrCholeskyTransform()(np.zeros(4))
    with pytest.raises(ValueError, match=r"square.*\(2, 3\)"):
        CorrCholeskyTransform().inv(np.zeros((2, 3)))


def test_float32_stays_float32():
    for name in NAMES:
        t, x = draw_x(name, (2,), 0, dtype=np.float32)
        y = t(x)
        assert y.dtype == t.inv(y).dtype == np.asarray(t.log_abs_det_jacobian(x, y)).dtype == np.float32
        assert autograd.grad(lambda v: anp.sum(t(v)) + anp.sum(t.log_abs_det_jacobian(v, t(v))))(x).dtype == np.float32


def test_ordered_errors_name_the_culprit():
    with pytest.raises(ValueError, match=r"OrderedTransform.*shape \(\)"):
        OrderedTransform()(np.float64(1.0))
    with pytest.raises(ValueError, match=r"PositiveOrderedTransform.inv.*shape \(\)"):
        PositiveOrderedTransform().inv(np.float64(1.0))


# ---------------------------------------------------------------- bounds that depend on other latents


def interval_below_one_minus(a):
    """Stan's ``real<lower=0, upper=1 - alpha1> beta1`` (garch11)."""
    return constraints.interval(0.0, 1.0 - a)


# name -> (constraint from the latent a, its upper bound (None: a half line), its lower bound)
DEPENDENT = {
    "interval": (interval_below_one_minus, lambda a: 1.0 - a, lambda a: 0.0),
    "greater_than": (lambda a: constraints.greater_than(2.0 * a), None, lambda a: 2.0 * a),
    "uniform_support": (lambda a: dist.Uniform(0.0, 1.0 - a).support, lambda a: 1.0 - a, lambda a: 0.0),
}


@pytest.mark.parametrize("name", sorted(DEPENDENT))
@given(seed=seeds, chains=hst.sampled_from([None, 1, 3]))
@settings(max_examples=8)
def test_dependent_bounds_transform_lands_inside_and_gradients_reach_the_bound(name, seed, chains):
    make, upper_of, lower_of = DEPENDENT[name]
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.05, 0.9) if chains is None else rng.uniform(0.05, 0.9, size=chains)
    x = rng.uniform(-12.0, 12.0, size=np.shape(a))

    def objective(alpha):  # what a potential does with the site: value in model space plus its log-Jacobian
        t = biject_to(make(alpha))
        y = t(x)
        return anp.sum(anp.sin(3.0 * y) + t.log_abs_det_jacobian(x, y))

    t = biject_to(make(a))
    y = t(x)
    assert np.shape(y) == np.shape(x)
    assert np.all(make(a).check(y)) and make(a).holds(y)
    np.testing.assert_allclose(t.inv(y), x, rtol=1e-6, atol=1e-6)
    if upper_of is not None:
        assert np.all(y < upper_of(a)) and np.all(y > lower_of(a))
    else:
        assert np.all(y > lower_of(a))
    # gradient through the bound, traced as an autograd box, against central differences
    grad = autograd.grad(objective)(a)
    h = 1e-6
    if chains is None:
        numeric = (objective(a + h) - objective(a - h)) / (2 * h)
    else:
        numeric = np.array([(objective(a + h * e) - objective(a - h * e)) / (2 * h) for e in np.eye(chains)])
    assert np.shape(grad) == np.shape(a)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)


def test_dependent_interval_has_the_closed_form_map_and_gradient():
    """y = (1 - a) sigmoid(x): dy/da = -sigmoid(x); log|dy/dx| = log(1 - a) + log s(1 - s), d/da = -1/(1 - a)."""
    x = np.array([-1.0, 0.0, 2.5])
    a = 0.3
    s = scipy.special.expit(x)
    t = biject_to(interval_below_one_minus(a))
    np.testing.assert_allclose(t(x), 0.7 * s, rtol=1e-14)
    grad_y = autograd.grad(lambda alpha: anp.sum(biject_to(interval_below_one_minus(alpha))(x)))(a)
    assert grad_y == pytest.approx(-np.sum(s), rel=1e-12)
    grad_det = autograd.grad(lambda alpha: anp.sum(
        biject_to(interval_below_one_minus(alpha)).log_abs_det_jacobian(x, None)))(a)
    assert grad_det == pytest.approx(-3 / 0.7, rel=1e-12)


def test_dependent_bounds_with_a_chain_axis_broadcast_over_a_vector_site():
    """Bounds of shape (C, 1) (one per chain) against a vector site of shape (C, K), and a traced check."""
    a = np.array([[0.1], [0.5], [0.8]])
    x = np.linspace(-6.0, 6.0, 12).reshape(3, 4)
    constraint = interval_below_one_minus(a)
    y = biject_to(constraint)(x)
    assert y.shape == (3, 4) and np.all(constraint.check(y))
    np.testing.assert_allclose(y, (1 - a) * scipy.special.expit(x), rtol=1e-14)
    # a value outside chain 1's bound (0.5) though inside chain 0's (0.9) fails only there
    assert constraint.check(np.full((3, 4), 0.6)).tolist() == [[True] * 4, [False] * 4, [False] * 4]

    def check_inside_trace(alpha):
        c = interval_below_one_minus(alpha)
        assert c.holds(np.full((3, 4), 0.15)) and not c.holds(np.full((3, 4), 0.6))
        assert "interval(0.0, [[0.9]" in repr(c)  # the bound's value, not an autograd box
        return anp.sum(biject_to(c)(x))
    grad = autograd.grad(check_inside_trace)(a)
    np.testing.assert_allclose(grad, -np.sum(scipy.special.expit(x), axis=1, keepdims=True), rtol=1e-12)


def test_uniform_with_a_dependent_upper_bound_scores_and_differentiates():
    a = 0.25
    grad = autograd.grad(lambda alpha: dist.Uniform(0.0, 1.0 - alpha).log_prob(0.1))(a)
    assert grad == pytest.approx(1 / (1 - a), rel=1e-12)  # d/da of -log(1 - a)
    batched = dist.Uniform(0.0, 1.0 - np.array([0.2, 0.6]))
    assert batched.log_prob(np.array([0.3, 0.3])) == pytest.approx(-np.log([0.8, 0.4]))
    assert batched.support.check(np.array([0.7, 0.7])).tolist() == [True, False]
