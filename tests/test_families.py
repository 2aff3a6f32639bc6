"""The families real models need (issue 13): against scipy.stats, closed forms, Monte Carlo and finite differences.

ImproperUniform, HalfCauchy, HalfStudentT, Weibull, Logistic, Poisson on the log scale, NegativeBinomial,
GammaPoisson, Multinomial; and the cdf/icdf/log_cdf/log_survival methods truncation stands on.
"""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.integrate
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hst
from hypothesis.extra import numpy as hnp

import ppl
from ppl.distributions import (Binomial, Cauchy, Exponential, GammaPoisson, HalfCauchy, HalfNormal, HalfStudentT,
                               ImproperUniform, Laplace, Logistic, LogNormal, Multinomial, NegativeBinomial, Normal,
                               Poisson, StudentT, Weibull, biject_to, constraints)
from ppl.errors import SiteError
from ppl.testing import assert_gradients_match
from test_distributions_continuous import _draw_params  # the same parameter arrays over the same shapes

SETTINGS = settings(max_examples=15, deadline=None)
param_shapes = hst.sampled_from([(), (3,), (2, 1), (2, 3)])
REAL, POSITIVE, DF = (-3.0, 3.0), (0.3, 5.0), (0.5, 30.0)


class _HalfT:
    """scipy.stats has no half-t: 2 t(df, 0, s) folded onto [0, inf), written with scipy's t."""

    def __init__(self, df, s):
        self.t = st.t(df, 0.0, s)

    def rvs(self, size, random_state):
        return np.abs(self.t.rvs(size=size, random_state=random_state))

    def logpdf(self, x):
        return np.log(2) + self.t.logpdf(x)

    def cdf(self, x):
        return 2 * self.t.cdf(x) - 1

    def logsf(self, x):
        return np.log(2) + self.t.logsf(x)

    def ppf(self, p):
        return self.t.ppf(0.5 + 0.5 * p)

    def entropy(self):
        return self.t.entropy() - np.log(2)


# name -> (ppl constructor, scipy reference, parameter ranges)
CONTINUOUS = {
    "HalfCauchy": (HalfCauchy, lambda s: st.halfcauchy(scale=s), (POSITIVE,)),
    "HalfStudentT": (HalfStudentT, _HalfT, (DF, POSITIVE)),
    "Weibull": (Weibull, lambda s, k: st.weibull_min(k, scale=s), (POSITIVE, (0.5, 5.0))),
    "Logistic": (Logistic, lambda m, s: st.logistic(m, s), (REAL, POSITIVE)),
    # cdf methods of the existing families, which TruncatedDistribution uses
    "Normal": (Normal, lambda m, s: st.norm(m, s), (REAL, POSITIVE)),
    "StudentT": (StudentT, lambda df, m, s: st.t(df, m, s), (DF, REAL, POSITIVE)),
    "Cauchy": (Cauchy, lambda m, s: st.cauchy(m, s), (REAL, POSITIVE)),
    "Laplace": (Laplace, lambda m, s: st.laplace(m, s), (REAL, POSITIVE)),
    "Exponential": (Exponential, lambda r: st.expon(scale=1 / r), (POSITIVE,)),
    "HalfNormal": (HalfNormal, lambda s: st.halfnorm(scale=s), (POSITIVE,)),
    "LogNormal": (LogNormal, lambda m, s: st.lognorm(s=s, scale=np.exp(m)), (REAL, POSITIVE)),
}
NEW_CONTINUOUS = ("HalfCauchy", "HalfStudentT", "Weibull", "Logistic")


# ---------------------------------------------------------------- continuous families and cdfs against scipy


@pytest.mark.parametrize("family", sorted(CONTINUOUS))
@given(data=hst.data())
@SETTINGS
def test_continuous_log_prob_and_cdfs_match_scipy(family, data):
    make, reference, ranges = CONTINUOUS[family]
    params = _draw_params(data, ranges)
    d, ref = make(*params), reference(*params)
    batch = np.broadcast_shapes(*(p.shape for p in params))
    assert d.batch_shape == batch and d.event_shape == ()
    x = ref.rvs(size=(4,) + batch, random_state=np.random.default_rng(data.draw(hst.integers(0, 99))))
    x = np.where(x == 0, 1e-3, x)  # a half-line family's draw of exactly 0 has no finite Weibull density
    np.testing.assert_allclose(d.log_prob(x), ref.logpdf(x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(d.cdf(x), ref.cdf(x), rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(d.log_survival(x), ref.logsf(x), rtol=1e-6, atol=1e-8)
    if hasattr(d, "log_cdf"):
        np.testing.assert_allclose(d.log_cdf(x), np.log(ref.cdf(x)), rtol=1e-6, atol=1e-8)
    p = np.array([0.01, 0.3, 0.5, 0.9]).reshape((4,) + (1,) * len(batch))
    np.testing.assert_allclose(d.icdf(p), ref.ppf(np.broadcast_to(p, (4,) + batch)), rtol=1e-6, atol=1e-8)
    if family in NEW_CONTINUOUS:
        np.testing.assert_allclose(d.entropy(), ref.entropy(), rtol=1e-6, atol=1e-8)
        assert np.shape(d.entropy()) == np.shape(d.mean) == np.shape(d.variance) == batch


def test_means_and_variances_against_scipy_and_quadrature():
    s, k = np.array([0.5, 2.0]), np.array([0.7, 3.0])
    np.testing.assert_allclose(Weibull(s, k).mean, st.weibull_min(k, scale=s).mean(), rtol=1e-10)
    np.testing.assert_allclose(Weibull(s, k).variance, st.weibull_min(k, scale=s).var(), rtol=1e-9)
    np.testing.assert_allclose(Logistic(1.0, s).mean, [1.0, 1.0])
    np.testing.assert_allclose(Logistic(1.0, s).variance, st.logistic(1.0, s).var(), rtol=1e-12)
    assert np.all(np.isposinf(HalfCauchy(s).mean)) and np.all(np.isposinf(HalfCauchy(s).variance))
    df = np.array([0.8, 1.5, 2.5, 7.0])
    d = HalfStudentT(df, 2.0)
    first = [2 * scipy.integrate.quad(lambda x: x * st.t(v, 0, 2.0).pdf(x), 0, np.inf)[0] for v in df[1:]]
    second = [2 * scipy.integrate.quad(lambda x: x * x * st.t(v, 0, 2.0).pdf(x), 0, np.inf)[0] for v in df[2:]]
    assert np.isposinf(d.mean[0]) and np.all(np.isposinf(d.variance[:2]))
    np.testing.assert_allclose(d.mean[1:], first, rtol=1e-6)
    np.testing.assert_allclose(d.variance[2:], np.array(second) - np.array(first[1:]) ** 2, rtol=1e-6)


# ---------------------------------------------------------------- discrete families against scipy


DISCRETE = {
    "Poisson(rate)": (lambda r: Poisson(r), lambda r: st.poisson(r), ((0.1, 30.0),)),
    "Poisson(log_rate)": (lambda lr: Poisson(log_rate=lr), lambda lr: st.poisson(np.exp(lr)), ((-3.0, 4.0),)),
    "NegativeBinomial": (NegativeBinomial, lambda mu, phi: st.nbinom(phi, phi / (phi + mu)),
                         ((0.1, 30.0), (0.2, 50.0))),
    "GammaPoisson": (GammaPoisson, lambda a, b: st.nbinom(a, b / (1 + b)), ((0.2, 20.0), (0.1, 5.0))),
}


@pytest.mark.parametrize("family", sorted(DISCRETE))
@given(data=hst.data())
@SETTINGS
def test_discrete_log_prob_mean_variance_match_scipy(family, data):
    make, reference, ranges = DISCRETE[family]
    params = _draw_params(data, ranges)
    d, ref = make(*params), reference(*params)
    batch = np.broadcast_shapes(*(p.shape for p in params))
    assert d.batch_shape == batch and d.event_shape == ()
    k = ref.rvs(size=(4,) + batch, random_state=np.random.default_rng(data.draw(hst.integers(0, 99))))
    k = np.concatenate([k, np.zeros((1,) + batch)]).astype(float)
    lp = d.log_prob(k)
    assert lp.shape == (5,) + batch
    np.testing.assert_allclose(lp, ref.logpmf(k), rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(d.mean, ref.mean(), rtol=1e-10)
    np.testing.assert_allclose(d.variance, ref.var(), rtol=1e-10)


@given(data=hst.data(), k=hst.integers(2, 4), batch=hst.sampled_from([(), (3,)]), logits=hst.booleans())
@SETTINGS
def test_multinomial_matches_scipy(data, k, batch, logits):
    p = data.draw(hnp.arrays(np.float64, batch + (k,), elements=hst.floats(0.05, 1.0)))
    p = p / p.sum(-1, keepdims=True)
    n = data.draw(hst.integers(0, 12))
    d = Multinomial(n, logits=np.log(p) + 1.5) if logits else Multinomial(n, probs=p)
    assert d.batch_shape == batch and d.event_shape == (k,)
    x = d.sample(np.random.default_rng(data.draw(hst.integers(0, 99))), (3,))
    assert x.shape == (3,) + batch + (k,) and np.all(x.sum(-1) == n)
    np.testing.assert_allclose(d.log_prob(x), st.multinomial.logpmf(x, n, p), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(d.mean, st.multinomial.mean(n, p), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(d.variance, np.diagonal(st.multinomial.cov(n, p), 0, -2, -1), rtol=1e-9,
                               atol=1e-12)


def test_multinomial_batched_total_count_and_bad_values():
    d = Multinomial(np.array([2.0, 5.0]), probs=np.array([0.2, 0.8]))
    assert d.batch_shape == (2,) and d.event_shape == (2,)
    x = np.array([[1.0, 1.0], [5.0, 0.0]])
    np.testing.assert_allclose(d.log_prob(x), st.multinomial.logpmf(x, [2, 5], [0.2, 0.8]), rtol=1e-12)
    with pytest.raises(ValueError, match="outside the support"):
        d.log_prob(np.array([[1.0, 0.0], [5.0, 0.0]]))  # the first row sums to 1, not 2
    assert Multinomial(np.array([2.0, 5.0]), probs=np.array([0.2, 0.8]), validate_args=False).log_prob(
        np.array([[1.0, 0.0], [5.0, 0.0]]))[0] == -np.inf
    with pytest.raises(ValueError, match="probs"):
        Multinomial(3, probs=np.array([0.5, 0.6]))
    with pytest.raises(ValueError, match="total_count"):
        Multinomial(2.5, probs=np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="exactly one"):
        Multinomial(3)
    assert Multinomial(3, probs=np.array([0.5, 0.5])).expand((4,)).log_prob(np.array([1.0, 2.0])).shape == (4,)


# ---------------------------------------------------------------- log scale: stable where exp/log would not be


def test_poisson_log_rate_is_stans_poisson_log_without_a_round_trip():
    k = np.array([0.0, 3.0])
    np.testing.assert_allclose(Poisson(log_rate=-800.0).log_prob(k), [0.0, -2400.0 - np.log(6.0)], rtol=1e-14)
    np.testing.assert_allclose(Poisson(log_rate=600.0).log_prob(3.0), 1800.0 - np.exp(600.0) - np.log(6.0))
    assert Poisson(log_rate=np.log(2.5)).rate == pytest.approx(2.5)
    assert Poisson(2.5).log_rate == pytest.approx(np.log(2.5))
    with pytest.raises(ValueError, match="exactly one of rate or log_rate"):
        Poisson()
    with pytest.raises(ValueError, match="exactly one of rate or log_rate"):
        Poisson(1.0, log_rate=0.0)
    with pytest.raises(ValueError, match="'log_rate'"):
        Poisson(log_rate=np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="'rate'"):
        Poisson(-1.0)


def test_binomial_logits_are_stable_at_the_ends():
    n = 10.0
    assert Binomial(n, logits=800.0).log_prob(10.0) == pytest.approx(0.0, abs=1e-300)
    assert Binomial(n, logits=-800.0).log_prob(0.0) == pytest.approx(0.0, abs=1e-300)
    assert Binomial(n, logits=-800.0).log_prob(1.0) == pytest.approx(np.log(10.0) - 800.0, rel=1e-14)
    g = autograd.grad(lambda t: Binomial(n, logits=t).log_prob(3.0))(-800.0)
    assert g == pytest.approx(3.0, rel=1e-12)  # k - n sigmoid(t)


def test_negative_binomial_tends_to_poisson_and_gamma_poisson_is_the_same_law():
    k = np.arange(8.0)
    np.testing.assert_allclose(NegativeBinomial(3.0, 1e9).log_prob(k), st.poisson(3.0).logpmf(k), rtol=1e-6)
    a, b = np.array([0.5, 4.0]), np.array([[0.3], [2.0]])
    np.testing.assert_allclose(GammaPoisson(a, b).log_prob(k[:, None, None]),
                               NegativeBinomial(a / b, a).log_prob(k[:, None, None]), rtol=1e-12, atol=1e-12)
    assert GammaPoisson(a, b).batch_shape == (2, 2)
    with pytest.raises(ValueError, match="'mean'"):
        NegativeBinomial(np.array([1.0, -1.0]), 2.0)
    with pytest.raises(ValueError, match="'concentration'"):
        NegativeBinomial(1.0, 0.0)
    with pytest.raises(ValueError, match="'rate'"):
        GammaPoisson(1.0, -2.0)


# ---------------------------------------------------------------- sampling


MOMENT_CASES = {
    "HalfStudentT": lambda: HalfStudentT(np.array([6.0, 12.0]), np.array([0.5, 2.0])),
    "Weibull": lambda: Weibull(np.array([0.5, 2.0]), np.array([0.8, 3.0])),
    "Logistic": lambda: Logistic(np.array([-1.0, 2.0]), 1.5),
    "Poisson": lambda: Poisson(log_rate=np.array([-1.0, 2.0])),
    "NegativeBinomial": lambda: NegativeBinomial(np.array([0.5, 8.0]), np.array([0.7, 20.0])),
    "GammaPoisson": lambda: GammaPoisson(np.array([0.7, 20.0]), np.array([1.4, 2.5])),
    "Multinomial": lambda: Multinomial(np.array([3.0, 12.0]), probs=np.array([0.2, 0.3, 0.5])),
}


@pytest.mark.parametrize("family", sorted(MOMENT_CASES))
def test_sample_moments_within_standard_errors(family):
    d = MOMENT_CASES[family]()
    n = 20000
    x = d.sample(np.random.default_rng(7), (n,))
    assert x.shape == (n,) + d.batch_shape + d.event_shape and np.all(np.isfinite(d.log_prob(x)))
    mean, var = x.mean(0), x.var(0)
    se_mean = np.sqrt(d.variance / n)
    se_var = np.sqrt((((x - d.mean) ** 4).mean(0) - d.variance**2) / n)
    assert np.all(np.abs(mean - d.mean) < 5 * se_mean), (mean, d.mean)
    assert np.all(np.abs(var - d.variance) < 5 * se_var), (var, d.variance)


def test_half_cauchy_draws_follow_its_cdf():
    d = HalfCauchy(np.array([0.5, 3.0]))
    x = d.sample(np.random.default_rng(3), (4000,))
    assert x.shape == (4000, 2) and np.all(x >= 0)
    for j, s in enumerate([0.5, 3.0]):
        assert st.kstest(x[:, j], st.halfcauchy(scale=s).cdf).pvalue > 1e-3


def test_float32_parameters_stay_float32():
    p32 = np.array([1.5, 2.0], np.float32)
    rng = np.random.default_rng(0)
    for d in (HalfCauchy(p32), HalfStudentT(p32, p32), Weibull(p32, p32), Logistic(p32, p32)):
        x = d.sample(rng, (3,))
        assert x.dtype == np.float32 and d.log_prob(x).dtype == np.float32, type(d).__name__
    assert Poisson(log_rate=p32).sample(rng).dtype == np.float32
    assert NegativeBinomial(p32, p32).log_prob(np.array([1.0, 2.0], np.float32)).dtype == np.float32


# ---------------------------------------------------------------- gradients against finite differences


def test_gradients_match_finite_differences():
    x = np.array([0.4, 1.3, 3.0])
    k = np.array([0.0, 2.0, 7.0])
    assert_gradients_match(lambda df, s, v: anp.sum(HalfStudentT(df, s).log_prob(v)), [2.5, 1.3, x])
    assert_gradients_match(lambda s, c, v: anp.sum(Weibull(s, c).log_prob(v)), [1.3, 1.7, x])
    assert_gradients_match(lambda m, s, v: anp.sum(Logistic(m, s).log_prob(v)), [0.2, 1.3, x])
    assert_gradients_match(lambda s, v: anp.sum(HalfCauchy(s).log_prob(v)), [1.3, x])
    assert_gradients_match(lambda mu, phi: anp.sum(NegativeBinomial(mu, phi).log_prob(k)), [2.5, 1.7])
    assert_gradients_match(lambda a, b: anp.sum(GammaPoisson(a, b).log_prob(k)), [2.5, 0.7])
    assert_gradients_match(lambda lr: anp.sum(Poisson(log_rate=lr).log_prob(k)), [np.array([0.3, -1.0, 2.0])])
    assert_gradients_match(lambda t: Multinomial(9, logits=t).log_prob(np.array([2.0, 0.0, 7.0])),
                      [np.array([0.3, -1.0, 2.0])])
    # the cdfs truncation differentiates: value, loc, scale (StudentT: not df)
    assert_gradients_match(lambda m, s, v: anp.sum(StudentT(3.0, m, s).cdf(v)), [0.2, 1.3, x])
    assert_gradients_match(lambda m, s, v: anp.sum(Normal(m, s).log_cdf(v) + Normal(m, s).log_survival(v)), [0.2, 1.3, x])
    assert_gradients_match(lambda s, c, p: anp.sum(Weibull(s, c).icdf(p)), [1.3, 1.7, np.array([0.1, 0.5, 0.9])])
    with pytest.raises(NotImplementedError, match="'df'"):
        autograd.grad(lambda df: StudentT(df, 0.0, 1.0).cdf(0.7))(3.0)


def test_reparameterized_draws_carry_gradients():
    # d/ds of a draw s * E^(1/k) is the draw / s; of the Logistic draw, (draw - loc) / s
    def weibull_draw(s):
        return anp.sum(Weibull(s, 2.0).sample(np.random.default_rng(1), (5,)))

    x = Weibull(1.5, 2.0).sample(np.random.default_rng(1), (5,))
    assert autograd.grad(weibull_draw)(1.5) == pytest.approx(np.sum(x) / 1.5, rel=1e-12)


# ---------------------------------------------------------------- ImproperUniform


def test_improper_uniform_log_prob_shapes_support_and_sampling():
    d = ImproperUniform(constraints.positive, (3,))
    assert d.batch_shape == (3,) and d.event_shape == () and d.support is constraints.positive
    lp = d.log_prob(np.ones((2, 3)))
    assert lp.shape == (2, 3) and np.all(lp == 0)
    assert d.log_prob(np.ones(3, np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match=r"outside the support positive at batch index \(1,\)"):
        d.log_prob(np.array([1.0, -1.0, 2.0]))
    off = ImproperUniform(constraints.positive, (3,), validate_args=False)
    np.testing.assert_array_equal(off.log_prob(np.array([1.0, -1.0, 2.0])), [0.0, -np.inf, 0.0])
    with pytest.raises(SiteError, match="no sampler.*give the site a value") as info:
        d.sample(np.random.default_rng(0))
    assert info.value.site is None
    for attribute in ("mean", "variance"):
        with pytest.raises(NotImplementedError, match="improper"):
            getattr(d, attribute)
    vec = ImproperUniform(constraints.real, (), (2, 4))
    assert vec.log_prob(np.zeros((5, 2, 4))).shape == (5,)
    assert vec.to_event().event_shape == (2, 4) and vec.expand((3,)).log_prob(np.zeros((2, 4))).shape == (3,)
    with pytest.raises(TypeError, match="'support' must be a Constraint"):
        ImproperUniform("positive")
    with pytest.raises(ValueError, match="event axes"):
        ImproperUniform(constraints.simplex, (3,))


def test_improper_uniform_with_a_bound_that_depends_on_another_latent():
    # interval(0, 1 - a) with a a latent: the bound is an autograd box, never turned into an array
    def log_density(a, b):
        flat = ImproperUniform(constraints.interval(0.0, 1.0 - a), (2,))
        return anp.sum(flat.log_prob(b)) + anp.sum(Normal(0.0, 1.0).log_prob(b)) + Normal(0.0, 1.0).log_prob(a)

    a, b = 0.3, np.array([0.1, 0.6])
    np.testing.assert_allclose(autograd.grad(log_density, 0)(a, b), -a)
    np.testing.assert_allclose(autograd.grad(log_density, 1)(a, b), -b)
    with pytest.raises(ValueError, match="outside the support"):
        log_density(0.5, np.array([0.1, 0.6]))  # 0.6 > 1 - 0.5
    # the bound and the value both traced at once, as in a potential over (a, b)
    both = autograd.grad(lambda v: log_density(v[0], v[1:]))(np.array([a, 0.1, 0.6]))
    np.testing.assert_allclose(both, [-a, -0.1, -0.6])


def test_improper_uniform_in_a_model_scores_zero_and_maps_onto_its_support():
    def model():
        sigma = ppl.sample("sigma", ImproperUniform(constraints.positive, (), ()))
        ppl.observe("y", Normal(0.0, sigma), 1.5)

    assert ppl.log_joint(model)({"sigma": 2.0}) == pytest.approx(st.norm(0, 2.0).logpdf(1.5))
    assert biject_to(ImproperUniform(constraints.positive).support)(-3.0) > 0
    with pytest.raises(SiteError, match="no sampler"):
        ppl.trace(ppl.seed(model, 0)).get_trace()
