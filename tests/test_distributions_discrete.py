"""Bernoulli, Categorical, Binomial and Poisson against scipy.stats, exact sums and finite differences."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hst
from hypothesis.extra import numpy as hnp

from ppl.distributions.discrete import Bernoulli, Binomial, Categorical, Poisson
from ppl.errors import NoClosedFormError
from ppl.testing import finite_difference

SETTINGS = settings(max_examples=30, deadline=None)
batch_shapes = hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3)


def _array(draw, shape, low, high):
    return draw(hnp.arrays(np.float64, shape, elements=hst.floats(low, high)))


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


# ---------------------------------------------------------------- against scipy.stats


@given(data=hst.data(), shape=batch_shapes, use_logits=hst.booleans())
@SETTINGS
def test_bernoulli_matches_scipy(data, shape, use_logits):
    if use_logits:
        logits = _array(data.draw, shape, -30.0, 30.0)
        d, probs = Bernoulli(logits=logits), _sigmoid(logits)
    else:
        probs = _array(data.draw, shape, 0.0, 1.0)
        d = Bernoulli(probs=probs)
    ref = st.bernoulli(probs)
    value = np.array([0.0, 1.0]).reshape((2,) + (1,) * len(shape))
    assert d.log_prob(value).shape == (2,) + shape
    assert np.allclose(d.log_prob(value), ref.logpmf(value), rtol=1e-10, atol=1e-12)
    assert np.allclose(d.entropy(), ref.entropy(), rtol=1e-9, atol=1e-12)
    assert np.allclose(d.mean, ref.mean(), rtol=1e-12) and np.allclose(d.variance, ref.var(), rtol=1e-10, atol=1e-15)
    assert np.shape(d.entropy()) == np.shape(d.mean) == np.shape(d.variance) == shape


@given(data=hst.data(), shape=batch_shapes, use_logits=hst.booleans())
@SETTINGS
def test_binomial_matches_scipy(data, shape, use_logits):
    total_count = data.draw(hnp.arrays(np.float64, shape, elements=hst.integers(0, 40).map(float)))
    if use_logits:
        logits = _array(data.draw, shape, -6.0, 6.0)
        d, probs = Binomial(total_count, logits=logits), _sigmoid(logits)
    else:
        probs = _array(data.draw, shape, 0.0, 1.0)
        d = Binomial(total_count, probs=probs)
    ref = st.binom(total_count.astype(int), probs)
    k = np.minimum(np.arange(6.0).reshape((6,) + (1,) * len(shape)), total_count)
    assert d.log_prob(k).shape == (6,) + shape
    assert np.allclose(d.log_prob(k), ref.logpmf(k), rtol=1e-9, atol=1e-10)
    assert np.allclose(d.entropy(), ref.entropy(), rtol=1e-9, atol=1e-10)
    assert np.allclose(d.mean, ref.mean(), rtol=1e-12) and np.allclose(d.variance, ref.var(), rtol=1e-10, atol=1e-13)


@given(data=hst.data(), shape=batch_shapes)
@SETTINGS
def test_poisson_matches_scipy(data, shape):
    rate = _array(data.draw, shape, 1e-3, 300.0)
    d, ref = Poisson(rate), st.poisson(rate)
    k = np.array([0.0, 1.0, 7.0, 150.0]).reshape((4,) + (1,) * len(shape))
    assert np.allclose(d.log_prob(k), ref.logpmf(k), rtol=1e-10, atol=1e-10)
    assert np.allclose(d.entropy(), ref.entropy(), rtol=1e-10, atol=1e-12)
    assert np.allclose(d.mean, rate) and np.allclose(d.variance, rate)
    assert np.shape(d.entropy()) == shape


@given(data=hst.data(), batch=hnp.array_shapes(min_dims=0, max_dims=2, max_side=3),
       num_categories=hst.integers(1, 6), use_logits=hst.booleans())
@SETTINGS
def test_categorical_matches_direct_indexing(data, batch, num_categories, use_logits):
    raw = _array(data.draw, batch + (num_categories,), -5.0, 5.0)
    probs = np.exp(raw) / np.exp(raw).sum(-1, keepdims=True)
    d = Categorical(logits=raw) if use_logits else Categorical(probs=probs)
    value = data.draw(hnp.arrays(np.int64, batch, elements=hst.integers(0, num_categories - 1)))
    expected = np.log(np.take_along_axis(probs, value[..., None], axis=-1)[..., 0])
    assert d.log_prob(value).shape == batch
    assert np.allclose(d.log_prob(value), expected, rtol=1e-10, atol=1e-12)
    k = np.arange(num_categories)
    assert np.allclose(d.entropy(), -np.sum(probs * np.log(probs), -1), atol=1e-12)
    assert np.allclose(d.mean, probs @ k) and np.allclose(d.variance, probs @ k**2 - (probs @ k) ** 2, atol=1e-12)
    assert np.allclose(d.probs, probs) and np.allclose(d.logits, np.log(probs))


def test_categorical_with_impossible_categories():
    d = Categorical(probs=np.array([0.0, 0.25, 0.75]))
    assert np.array_equal(d.log_prob(np.array([0, 1, 2])), [-np.inf, np.log(0.25), np.log(0.75)])
    assert np.isclose(d.entropy(), st.entropy([0.25, 0.75]))
    # 0 log 0 = 0 in the gradient too: d/dp_k of -sum p log p is -(log p_k + 1) where p_k > 0
    g = autograd.grad(lambda p: Categorical(probs=p, validate_args=False).entropy())(np.array([0.0, 0.25, 0.75]))
    assert g[0] == 0.0 and np.allclose(g[1:], -(np.log([0.25, 0.75]) + 1))
    assert np.all(d.sample(np.random.default_rng(0), (1000,)) > 0)


# ---------------------------------------------------------------- entropies exact to 1e-10


def _exact_binomial_entropy(n, numerator, denominator, sds=12):
    """H of Binomial(n, a/b) from exact integer probabilities, over k within ``sds`` sd of the mean.

    t_k = C(n, k) a^k (b - a)^(n - k) is an integer, and t_k / b^n is rounded once (Python's
    big-int true division), so every log p(k) is good to an ulp: an oracle that does not share
    the cancellation of gammaln. The mass beyond 12 sd is below 1e-30.
    """
    import math

    a, b = numerator, denominator
    mean, sd = n * a / b, math.sqrt(n * a * (b - a)) / b
    low, high = max(0, math.floor(mean - sds * sd - 30)), min(n, math.ceil(mean + sds * sd + 30))
    term, scale, total = math.comb(n, low) * a**low * (b - a) ** (n - low), b**n, 0.0
    for k in range(low, high + 1):
        prob = term / scale
        if prob > 0:
            total -= prob * math.log(prob)
        if k < n:  # t_{k+1} = t_k (n - k) a / ((k + 1)(b - a)), exactly
            term = term * (n - k) * a // ((k + 1) * (b - a))
    return total


@pytest.mark.parametrize("n,a,b", [(60, 3, 10), (3000, 1, 2), (2000, 1, 100), (10**5, 7, 10)])
def test_binomial_entropy_is_exact_at_large_counts(n, a, b):
    # three gammaln's would be off by ~5e-10 at n = 1e5 (they cancel from ~1e6 down to ~10)
    assert abs(Binomial(float(n), probs=a / b).entropy() - _exact_binomial_entropy(n, a, b)) < 1e-11


def test_binomial_entropy_refuses_an_impossible_sum():
    with pytest.raises(NoClosedFormError, match="Binomial"):
        Binomial(1e17, probs=0.5).entropy()


@pytest.mark.parametrize("rate", [999.0, 1000.0, 2500.0])
def test_poisson_entropy_on_both_sides_of_the_series(rate):
    # scipy's logpmf is good to ~1e-12 up to here (its gammaln cancels at larger rates)
    sd = np.sqrt(rate)
    k = np.arange(max(0.0, np.floor(rate - 40 * sd)), np.ceil(rate + 40 * sd))
    log_pmf = st.poisson(rate).logpmf(k)
    assert abs(Poisson(rate).entropy() - (-np.sum(np.exp(log_pmf) * log_pmf))) < 1e-10


def test_degenerate_probabilities_have_zero_entropy_and_no_warnings():
    with np.errstate(all="raise"):
        assert np.array_equal(Binomial(5.0, probs=np.array([0.0, 1.0])).entropy(), [0.0, 0.0])
        assert np.array_equal(Bernoulli(probs=np.array([0.0, 1.0])).entropy(), [0.0, 0.0])
        assert np.array_equal(Binomial(np.array([0.0, 4.0]), probs=0.3).entropy() > 0, [False, True])
    assert Binomial(5.0, probs=0.0).log_prob(0.0) == 0.0 and Binomial(5.0, probs=1.0).log_prob(5.0) == 0.0


# ---------------------------------------------------------------- stability and gradients


@pytest.mark.parametrize("logits", [800.0, -800.0])
def test_extreme_logits_are_finite_and_exact(logits):
    d = Bernoulli(logits=logits)
    likely, unlikely = (1.0, 0.0) if logits > 0 else (0.0, 1.0)
    assert d.log_prob(likely) == 0.0 and d.log_prob(unlikely) == -800.0
    assert d.entropy() == 0.0 and d.probs == likely
    assert np.isfinite(d.logits)
    grad = autograd.grad(lambda x: Bernoulli(logits=x).log_prob(unlikely))(logits)
    assert grad == (unlikely - likely)  # d/dlogits = value - sigmoid(logits)
    b = Binomial(3.0, logits=logits)
    assert b.log_prob(3 * likely) == 0.0 and np.isclose(b.log_prob(3 * unlikely), -2400.0)
    assert b.entropy() == 0.0


def test_probs_and_logits_agree():
    probs = np.array([1e-300, 0.2, 0.5, 0.9])
    for family in (Bernoulli, lambda **kw: Binomial(4.0, **kw)):
        a, b = family(probs=probs), family(logits=np.log(probs) - np.log1p(-probs))
        assert np.allclose(a.logits, b.logits) and np.allclose(a.probs, b.probs, rtol=1e-12)
        assert np.allclose(a.log_prob(np.ones(4)), b.log_prob(np.ones(4)), rtol=1e-12)
    # probs 0 and 1 give finite logits, so Bernoulli(logits=...) accepts them
    assert np.all(np.isfinite(Bernoulli(probs=np.array([0.0, 1.0])).logits))


@pytest.mark.parametrize("family,x0", [
    (lambda x: Bernoulli(logits=x).log_prob(np.array([1.0, 0.0, 1.0])), np.array([0.3, -1.2, 2.0])),
    (lambda x: Bernoulli(probs=x).log_prob(np.array([1.0, 0.0, 1.0])), np.array([0.3, 0.6, 0.9])),
    (lambda x: Categorical(logits=x).log_prob(np.array([0, 2, 2])), np.array([0.3, -1.2, 2.0])),
    (lambda x: Binomial(9.0, logits=x).log_prob(np.array([0.0, 4.0, 9.0])), np.array([0.3, -1.2, 2.0])),
    (lambda x: Poisson(x).log_prob(np.array([0.0, 4.0, 9.0])), np.array([0.3, 1.2, 7.0])),
    (lambda x: Bernoulli(logits=x).entropy(), np.array([0.3, -1.2, 2.0])),
    (lambda x: Categorical(logits=x).entropy(), np.array([0.3, -1.2, 2.0])),
    (lambda x: Binomial(40.0, probs=x).entropy(), np.array([0.3, 0.05, 0.8])),
    (lambda x: Binomial(40.0, logits=x).entropy(), np.array([0.3, -3.0, 2.0])),
    (lambda x: Poisson(x).entropy(), np.array([0.3, 7.0, 1500.0])),
], ids=["bernoulli-logits", "bernoulli-probs", "categorical", "binomial", "poisson", "H-bernoulli",
        "H-categorical", "H-binomial-probs", "H-binomial-logits", "H-poisson"])
def test_gradients_against_finite_differences(family, x0):
    f = lambda x: anp.sum(family(x))  # noqa: E731
    assert np.allclose(autograd.grad(f)(x0), finite_difference(f, x0), rtol=1e-5, atol=1e-8)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("make,name", [
    (lambda: Bernoulli(probs=np.array([0.2, 1.5])), "'probs'"),
    (lambda: Bernoulli(probs=-0.1), "'probs'"),
    (lambda: Bernoulli(logits=np.array([0.0, np.nan])), "'logits'"),
    (lambda: Categorical(probs=np.array([0.5, 0.6])), "'probs'"),
    (lambda: Categorical(probs=np.array([1.2, -0.2])), "'probs'"),
    (lambda: Categorical(logits=np.array([0.0, np.inf])), "'logits'"),
    (lambda: Binomial(-1.0, probs=0.5), "'total_count'"),
    (lambda: Binomial(2.5, probs=0.5), "'total_count'"),
    (lambda: Binomial(3.0, probs=1.01), "'probs'"),
    (lambda: Poisson(0.0), "'rate'"),
    (lambda: Poisson(np.array([1.0, -2.0])), "'rate'"),
])
def test_bad_parameters_name_the_parameter(make, name):
    with pytest.raises(ValueError, match=name):
        make()


@pytest.mark.parametrize("family", [Bernoulli, Categorical, lambda **kw: Binomial(3.0, **kw)])
def test_exactly_one_of_probs_and_logits(family):
    with pytest.raises(ValueError, match="probs or logits"):
        family()
    with pytest.raises(ValueError, match="probs or logits"):
        family(probs=np.array([0.5, 0.5]), logits=np.zeros(2))


def test_categorical_needs_a_category_axis():
    with pytest.raises(ValueError, match="last axis"):
        Categorical(probs=1.0)


@pytest.mark.parametrize("d,outside", [
    (Bernoulli(probs=0.3), np.array([0.0, 0.5, 2.0, -1.0])),
    (Categorical(probs=np.array([0.3, 0.7])), np.array([0.0, 2.0, -1.0, 0.5])),
    (Binomial(3.0, probs=0.3), np.array([0.0, 4.0, -1.0, 1.5])),
    (Poisson(2.0), np.array([0.0, -1.0, 2.5, -0.5])),
])
def test_values_outside_the_support(d, outside):
    with pytest.raises(ValueError, match="support"):
        d.log_prob(outside)
    d.validate_args = False
    lp = d.log_prob(outside)
    assert np.isfinite(lp[0]) and np.all(lp[1:] == -np.inf)  # -inf, never NaN


# ---------------------------------------------------------------- sampling, shapes, dtypes


@pytest.mark.parametrize("d,dtype", [
    (Bernoulli(probs=np.full((2, 3), 0.3)), np.float64),
    (Bernoulli(logits=np.zeros((2, 3), np.float32)), np.float32),
    (Categorical(logits=np.zeros((2, 3, 4))), np.int64),
    (Binomial(np.array([1.0, 5.0, 9.0]), probs=np.full((2, 1), 0.4)), np.float64),
    (Poisson(np.full((2, 3), 2.5, np.float32)), np.float32),
])
def test_sample_shapes_dtypes_and_support(d, dtype):
    draws = d.sample(np.random.default_rng(0), (5, 7))
    assert draws.shape == (5, 7) + d.batch_shape == (5, 7, 2, 3) and draws.dtype == dtype
    assert not d.has_rsample
    assert np.all(d.support.check(draws))
    assert d.log_prob(draws).shape == (5, 7, 2, 3)


@pytest.mark.parametrize("d,pmf,values", [
    (Bernoulli(probs=0.3), st.bernoulli(0.3).pmf, np.arange(2)),
    (Categorical(probs=np.array([0.1, 0.6, 0.0, 0.3])), np.array([0.1, 0.6, 0.0, 0.3]).__getitem__, np.arange(4)),
    (Binomial(6.0, logits=-0.4), st.binom(6, _sigmoid(-0.4)).pmf, np.arange(7)),
    (Poisson(3.5), st.poisson(3.5).pmf, np.arange(25)),
])
def test_sample_frequencies_within_standard_errors(d, pmf, values):
    n = 40000
    draws = d.sample(np.random.default_rng(1), (n,))
    freq = (draws[:, None] == values).mean(0)
    p = pmf(values)
    common = p * n >= 50  # where the Normal approximation to a count holds
    assert np.all(np.abs(freq - p)[common] <= 4.5 * np.sqrt(p * (1 - p) / n)[common])
    assert np.all(freq[p == 0] == 0) and np.isclose(freq.sum(), 1.0)


def test_same_seed_same_draws():
    for d in (Bernoulli(probs=0.4), Categorical(probs=np.array([0.2, 0.8])), Binomial(4.0, probs=0.4), Poisson(2.0)):
        a, b = d.sample(np.random.default_rng(7), (50,)), d.sample(np.random.default_rng(7), (50,))
        assert np.array_equal(a, b)


@pytest.mark.parametrize("make", [
    lambda: Bernoulli(probs=np.array([0.2, 0.7])),
    lambda: Categorical(probs=np.array([[0.2, 0.8], [0.5, 0.5]])),
    lambda: Binomial(np.array([3.0, 5.0]), probs=0.4),
    lambda: Poisson(np.array([1.0, 4.0])),
])
def test_expand_and_to_event(make):
    d = make()
    expanded = d.expand((3, 2))
    draws = expanded.sample(np.random.default_rng(0), (4,))
    assert draws.shape == (4, 3, 2) and expanded.log_prob(draws).shape == (4, 3, 2)
    assert np.allclose(expanded.log_prob(draws[0]), d.log_prob(draws[0]))
    assert np.allclose(expanded.entropy(), np.broadcast_to(d.entropy(), (3, 2)))
    event = expanded.to_event(1)
    assert event.batch_shape == (3,) and event.event_shape == (2,)
    assert np.allclose(event.log_prob(draws), d.log_prob(draws).sum(-1))
    assert np.allclose(event.entropy(), 3 * [d.entropy().sum()])


def test_float32_stays_float32():
    f32 = np.float32
    for d in (Bernoulli(probs=np.full(3, 0.3, f32)), Bernoulli(logits=np.zeros(3, f32)),
              Categorical(logits=np.zeros((3, 4), f32)), Categorical(probs=np.full((3, 4), 0.25, f32)),
              Binomial(f32(5.0), probs=np.full(3, 0.3, f32)), Poisson(np.full(3, 2.0, f32))):
        value = np.ones(3, f32) if not isinstance(d, Categorical) else np.ones(3, np.int64)
        for out in (d.log_prob(value), d.entropy(), d.mean, d.variance):
            assert out.dtype == f32, type(d).__name__
