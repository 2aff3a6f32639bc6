"""MixtureSameFamily (Stan's log_mix) and TruncatedDistribution (Stan's T[L, U]) against closed forms and scipy."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hst
from hypothesis.extra import numpy as hnp

from ppl.distributions import (Categorical, Gamma, HalfNormal, MixtureSameFamily, Normal, Poisson, StudentT,
                               TruncatedDistribution, biject_to)
from ppl.testing import finite_difference

SETTINGS = settings(max_examples=15, deadline=None)


def _grad_matches_finite_difference(f, x, rtol=1e-5, atol=1e-7):
    np.testing.assert_allclose(autograd.grad(f)(x), finite_difference(f, x), rtol=rtol, atol=atol)


# ---------------------------------------------------------------- MixtureSameFamily


@given(w=hst.floats(0.05, 0.95), locs=hnp.arrays(np.float64, (2,), elements=hst.floats(-3, 3)),
       scales=hnp.arrays(np.float64, (2,), elements=hst.floats(0.3, 3)), batch=hst.sampled_from([(), (3,)]))
@SETTINGS
def test_mixture_of_two_normals_is_log_mix(w, locs, scales, batch):
    mixing = Categorical(probs=np.broadcast_to([w, 1 - w], batch + (2,)))
    m = MixtureSameFamily(mixing, Normal(locs, scales))
    assert m.batch_shape == batch and m.event_shape == ()
    x = np.linspace(-4, 4, 5).reshape((5,) + (1,) * len(batch))
    expected = np.logaddexp(np.log(w) + st.norm(locs[0], scales[0]).logpdf(x),
                            np.log(1 - w) + st.norm(locs[1], scales[1]).logpdf(x))
    np.testing.assert_allclose(m.log_prob(x), np.broadcast_to(expected, (5,) + batch), rtol=1e-10)
    mean = w * locs[0] + (1 - w) * locs[1]
    second = w * (scales[0] ** 2 + locs[0] ** 2) + (1 - w) * (scales[1] ** 2 + locs[1] ** 2)
    np.testing.assert_allclose(m.mean, np.broadcast_to(mean, batch), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.variance, np.broadcast_to(second - mean**2, batch), rtol=1e-9)


def test_mixture_sample_moments_and_component_frequencies():
    m = MixtureSameFamily(Categorical(logits=np.array([[0.0, 1.0], [2.0, -1.0]])),
                          Normal(np.array([-2.0, 3.0]), np.array([0.5, 1.0])))
    n = 20000
    x = m.sample(np.random.default_rng(4), (n,))
    assert x.shape == (n, 2)
    se = np.sqrt(m.variance / n)
    assert np.all(np.abs(x.mean(0) - m.mean) < 5 * se), (x.mean(0), m.mean)
    # the components barely overlap: the share of draws above 0.5 is the second weight
    p2 = m.mixing_distribution.probs[:, 1]
    assert np.all(np.abs((x > 0.5).mean(0) - p2) < 5 * np.sqrt(p2 * (1 - p2) / n))
    # draws in different mixture batch entries are independent, even with shared components
    assert abs(np.corrcoef(x[:, 0], x[:, 1])[0, 1]) < 0.05


def test_mixture_with_vector_components_and_gradients():
    locs = np.array([[0.0, 1.0, -1.0], [2.0, 2.0, 0.5]])  # K = 2 components of dimension 3
    comp = Normal(locs, 0.7).to_event(1)
    m = MixtureSameFamily(Categorical(probs=np.array([0.4, 0.6])), comp)
    assert m.batch_shape == () and m.event_shape == (3,)
    x = np.random.default_rng(0).normal(size=(4, 3))
    expected = np.logaddexp(np.log(0.4) + st.norm(locs[0], 0.7).logpdf(x).sum(-1),
                            np.log(0.6) + st.norm(locs[1], 0.7).logpdf(x).sum(-1))
    np.testing.assert_allclose(m.log_prob(x), expected, rtol=1e-10)
    np.testing.assert_allclose(m.mean, 0.4 * locs[0] + 0.6 * locs[1], rtol=1e-12)
    assert m.sample(np.random.default_rng(1), (5,)).shape == (5, 3)

    def lp(logits, loc):
        mix = MixtureSameFamily(Categorical(logits=logits), Normal(loc, 0.7).to_event(1))
        return anp.sum(mix.log_prob(x))

    _grad_matches_finite_difference(lambda t: lp(t, locs), np.array([0.3, -0.2]))
    _grad_matches_finite_difference(lambda loc: lp(np.array([0.3, -0.2]), loc), locs)


def test_mixture_rejects_mismatched_components():
    with pytest.raises(ValueError, match="rightmost batch axis must hold the 3 components"):
        MixtureSameFamily(Categorical(probs=np.ones(3) / 3), Normal(np.zeros(2), 1.0))
    with pytest.raises(TypeError, match="mixing_distribution"):
        MixtureSameFamily(Normal(0.0, 1.0), Normal(np.zeros(2), 1.0))
    m = MixtureSameFamily(Categorical(probs=np.array([0.5, 0.5])), Poisson(np.array([1.0, 8.0])))
    k = np.arange(6.0)
    np.testing.assert_allclose(m.log_prob(k), np.log(0.5 * st.poisson(1).pmf(k) + 0.5 * st.poisson(8).pmf(k)))


# ---------------------------------------------------------------- TruncatedDistribution


@given(loc=hst.floats(-2, 2), scale=hst.floats(0.3, 3), a=hst.floats(-3, 2), width=hst.floats(0.2, 4),
       which=hst.sampled_from(["both", "low", "high"]))
@SETTINGS
def test_truncated_normal_matches_truncnorm(loc, scale, a, width, which):
    low = loc + a * scale if which != "high" else None
    high = loc + (a + width) * scale if which != "low" else None
    d = TruncatedDistribution(Normal(loc, scale), low, high)
    ref = st.truncnorm(a if low is not None else -np.inf, a + width if high is not None else np.inf, loc, scale)
    x = ref.rvs(size=6, random_state=np.random.default_rng(0))
    np.testing.assert_allclose(d.log_prob(x), ref.logpdf(x), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(d.cdf(x), ref.cdf(x), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(d.mean, ref.mean(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(d.variance, ref.var(), rtol=1e-7, atol=1e-10)


def test_truncated_normal_far_in_a_tail_keeps_its_digits():
    for low, high in [(40.0, 41.0), (-41.0, -40.0), (8.0, None)]:
        d = TruncatedDistribution(Normal(0.0, 1.0), low, high)
        ref = st.truncnorm(low, np.inf if high is None else high)
        x = low + 0.3
        np.testing.assert_allclose(d.log_prob(x), ref.logpdf(x), rtol=1e-10)


def test_truncated_student_t_against_scipy_t():
    df, loc, scale = 4.0, 1.0, 2.0
    t = st.t(df, loc, scale)
    x = np.array([0.1, 1.0, 2.5])
    low_only = TruncatedDistribution(StudentT(df, loc, scale), low=0.0)
    np.testing.assert_allclose(low_only.log_prob(x), t.logpdf(x) - t.logsf(0.0), rtol=1e-10)
    both = TruncatedDistribution(StudentT(df, loc, scale), low=0.0, high=3.0)
    np.testing.assert_allclose(both.log_prob(x), t.logpdf(x) - np.log(t.cdf(3.0) - t.cdf(0.0)), rtol=1e-10)
    np.testing.assert_allclose(both.cdf(x), (t.cdf(x) - t.cdf(0.0)) / (t.cdf(3.0) - t.cdf(0.0)), rtol=1e-10)
    high_only = TruncatedDistribution(StudentT(df, loc, scale), high=0.5)
    np.testing.assert_allclose(high_only.log_prob(-x), t.logpdf(-x) - t.logcdf(0.5), rtol=1e-10)
    unchecked = TruncatedDistribution(StudentT(df, loc, scale), high=0.5, validate_args=False)
    assert unchecked.log_prob(np.array([0.4, 0.6]))[0] > -np.inf and unchecked.log_prob(0.6) == -np.inf
    with pytest.raises(ValueError, match="outside the support"):
        high_only.log_prob(0.6)


def test_truncated_draws_follow_the_truncated_law():
    d = TruncatedDistribution(Normal(1.0, 2.0), -0.5, 2.0)
    x = d.sample(np.random.default_rng(2), (4000,))
    assert x.shape == (4000,) and np.all((x >= -0.5) & (x <= 2.0))
    assert st.kstest(x, st.truncnorm(-0.75, 0.5, 1.0, 2.0).cdf).pvalue > 1e-3
    t = TruncatedDistribution(StudentT(3.0, 0.0, 1.0), low=np.array([0.0, 1.0]))
    y = t.sample(np.random.default_rng(3), (4000,))
    assert y.shape == (4000, 2) and np.all(y >= [0.0, 1.0])
    ref = st.t(3.0)
    assert st.kstest(y[:, 1], lambda v: (ref.cdf(v) - ref.cdf(1.0)) / ref.sf(1.0)).pvalue > 1e-3


def test_truncated_gradients_in_parameters_bounds_and_draws():
    x = np.array([0.2, 0.9, 1.7])

    def normal_lp(loc, scale, low, high):
        return anp.sum(TruncatedDistribution(Normal(loc, scale), low, high).log_prob(x))

    args = [0.3, 1.4, -0.2, 2.0]
    for i in range(4):
        _grad_matches_finite_difference(lambda v, i=i: normal_lp(*args[:i], v, *args[i + 1:]), args[i])

    def t_lp(loc, scale, low):
        return anp.sum(TruncatedDistribution(StudentT(3.0, loc, scale), low=low).log_prob(x))

    for i, arg in enumerate([0.3, 1.4, -0.2]):
        base = [0.3, 1.4, -0.2]
        _grad_matches_finite_difference(lambda v, i=i: t_lp(*base[:i], v, *base[i + 1:]), arg)

    # inverse-cdf draws are reparameterized: d draw / d loc = 1 when both bounds move with loc
    def draw(loc):
        return anp.sum(TruncatedDistribution(Normal(loc, 1.0), loc - 1.0, loc + 2.0).sample(
            np.random.default_rng(0), (3,)))

    assert autograd.grad(draw)(0.5) == pytest.approx(3.0, rel=1e-8)


def test_truncated_supports_and_errors():
    assert biject_to(TruncatedDistribution(Normal(0.0, 1.0), high=1.5).support)(np.array([-5.0, 5.0])).max() < 1.5
    half = TruncatedDistribution(HalfNormal(1.0), high=2.0)
    y = biject_to(half.support)(np.array([-30.0, 0.0, 30.0]))
    assert np.all((y >= 0) & (y <= 2.0))
    np.testing.assert_allclose(half.log_prob(1.0), st.halfnorm.logpdf(1.0) - np.log(st.halfnorm.cdf(2.0)),
                               rtol=1e-12)
    with pytest.raises(ValueError, match="'high' must be greater than 'low'"):
        TruncatedDistribution(Normal(0.0, 1.0), 1.0, np.array([2.0, 0.5]))
    with pytest.raises(NotImplementedError, match="Gamma has no cdf"):
        TruncatedDistribution(Gamma(2.0, 1.0), low=1.0)
    with pytest.raises(ValueError, match="univariate and continuous"):
        TruncatedDistribution(Poisson(2.0), low=1.0)
    with pytest.raises(ValueError, match="'low'"):
        TruncatedDistribution(Normal(0.0, 1.0), low=np.nan)
    with pytest.raises(NotImplementedError, match="no closed-form moments"):
        TruncatedDistribution(StudentT(3.0), low=0.0).mean
