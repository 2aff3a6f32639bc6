"""Continuous and multivariate families against scipy.stats, Monte Carlo and central finite differences."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hst
from hypothesis.extra import numpy as hnp

from ppl.distributions import (Beta, Cauchy, Dirichlet, Exponential, Gamma, HalfNormal, Laplace, LogNormal,
                               MultivariateNormal, MultivariateNormalDiag, Normal, StudentT, Uniform)
from ppl.testing import assert_gradients_match, finite_difference

SETTINGS = settings(max_examples=25, deadline=None)
# Parameter shapes that broadcast together (to (2, 3) at most), so batch broadcasting is exercised.
param_shapes = hst.sampled_from([(), (3,), (2, 1), (2, 3)])
REAL, POSITIVE = (-3.0, 3.0), (0.3, 5.0)

# name -> (ppl constructor, scipy constructor, parameter ranges); both constructors take the same arrays.
UNIVARIATE = {
    "Normal": (Normal, lambda m, s: st.norm(m, s), (REAL, POSITIVE)),
    "LogNormal": (LogNormal, lambda m, s: st.lognorm(s=s, scale=np.exp(m)), (REAL, POSITIVE)),
    "HalfNormal": (HalfNormal, lambda s: st.halfnorm(scale=s), (POSITIVE,)),
    "Exponential": (Exponential, lambda r: st.expon(scale=1 / r), (POSITIVE,)),
    "Gamma": (Gamma, lambda a, r: st.gamma(a, scale=1 / r), (POSITIVE, POSITIVE)),
    "Beta": (Beta, lambda a, b: st.beta(a, b), (POSITIVE, POSITIVE)),
    "Uniform": (lambda low, width: Uniform(low, low + width), lambda low, width: st.uniform(low, width),
                (REAL, POSITIVE)),
    "Laplace": (Laplace, lambda m, s: st.laplace(m, s), (REAL, POSITIVE)),
    "StudentT": (StudentT, lambda df, m, s: st.t(df, m, s), ((0.5, 30.0), REAL, POSITIVE)),
    "Cauchy": (Cauchy, lambda m, s: st.cauchy(m, s), (REAL, POSITIVE)),
}
REPARAMETERIZED = {"Normal", "LogNormal", "HalfNormal", "Exponential", "Uniform", "Laplace", "StudentT", "Cauchy"}


def _draw_params(data, ranges):
    return [data.draw(hnp.arrays(np.float64, data.draw(param_shapes), elements=hst.floats(lo, hi)))
            for lo, hi in ranges]


def _random_spd(rng, batch, n):
    a = rng.normal(size=batch + (n, n))
    return a @ np.swapaxes(a, -1, -2) + 0.5 * n * np.eye(n)


# ---------------------------------------------------------------- univariate against scipy.stats


@pytest.mark.parametrize("family", sorted(UNIVARIATE))
@given(data=hst.data())
@SETTINGS
def test_univariate_matches_scipy(family, data):
    make, reference, ranges = UNIVARIATE[family]
    params = _draw_params(data, ranges)
    d, ref = make(*params), reference(*params)
    batch = np.broadcast_shapes(*(p.shape for p in params))
    assert d.batch_shape == batch and d.event_shape == ()
    x = ref.rvs(size=(4,) + batch, random_state=np.random.default_rng(data.draw(hst.integers(0, 99))))
    lp = d.log_prob(x)
    assert lp.shape == (4,) + batch
    np.testing.assert_allclose(lp, ref.logpdf(x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(d.entropy(), ref.entropy(), rtol=1e-6, atol=1e-8)
    assert np.shape(d.entropy()) == np.shape(d.mean) == np.shape(d.variance) == batch
    if family == "Cauchy":  # scipy reports NaN for both; ours: the mean is undefined, the variance infinite
        return
    ref_mean = ref.mean()
    if family == "StudentT":  # for df <= 1 scipy says +inf; the mean is undefined (NaN, as in PyTorch and NumPyro)
        assert np.array_equal(np.isnan(d.mean), np.broadcast_to(d.df <= 1, batch))
        ref_mean = np.where(np.broadcast_to(d.df, batch) <= 1, np.nan, ref_mean)
    np.testing.assert_allclose(d.mean, ref_mean, rtol=1e-9, atol=1e-12, equal_nan=True)
    # StudentT's variance is infinite for 1 < df <= 2 and NaN below: scipy agrees.
    np.testing.assert_allclose(d.variance, ref.var(), rtol=1e-8, atol=1e-12, equal_nan=True)


def test_cauchy_and_studentt_moments_that_do_not_exist():
    c = Cauchy(np.zeros(3), 2.0)
    assert np.all(np.isnan(c.mean)) and np.all(np.isposinf(c.variance)) and c.mean.shape == (3,)
    t = StudentT(np.array([0.5, 1.5, 3.0]), 1.0, 2.0)
    assert np.isnan(t.mean[0]) and t.mean[1] == t.mean[2] == 1.0
    assert np.isnan(t.variance[0]) and np.isposinf(t.variance[1]) and np.isclose(t.variance[2], 4.0 * 3.0)


def test_log_prob_in_the_tails_is_finite_and_exact():
    x = np.array([-40.0, 40.0])
    np.testing.assert_allclose(Normal(0.0, 1.0).log_prob(x), st.norm.logpdf(x), rtol=1e-12)
    np.testing.assert_allclose(StudentT(3.0).log_prob(1e8), st.t(3.0).logpdf(1e8), rtol=1e-12)
    np.testing.assert_allclose(Beta(2.0, 3.0).log_prob(1e-12), st.beta(2.0, 3.0).logpdf(1e-12), rtol=1e-12)
    np.testing.assert_allclose(Beta(2.0, 3.0).log_prob(1 - 1e-12), st.beta(2.0, 3.0).logpdf(1 - 1e-12), rtol=1e-6)
    np.testing.assert_allclose(Gamma(0.5, 2.0).log_prob(1e-30), st.gamma(0.5, scale=0.5).logpdf(1e-30), rtol=1e-12)


# ---------------------------------------------------------------- multivariate against scipy.stats


@given(seed=hst.integers(0, 2**31), n=hst.integers(1, 4), kind=hst.sampled_from(["cov", "tril", "prec"]),
       loc_batch=hst.sampled_from([(), (3,), (2, 1)]), cov_batch=hst.sampled_from([(), (1,), (2, 3)]))
@SETTINGS
def test_multivariate_normal_matches_scipy(seed, n, kind, loc_batch, cov_batch):
    rng = np.random.default_rng(seed)
    loc, cov = rng.normal(size=loc_batch + (n,)), _random_spd(rng, cov_batch, n)
    given_matrix = {"cov": {"covariance_matrix": cov}, "tril": {"scale_tril": np.linalg.cholesky(cov)},
                    "prec": {"precision_matrix": np.linalg.inv(cov)}}[kind]
    d = MultivariateNormal(loc, **given_matrix)
    batch = np.broadcast_shapes(loc_batch, cov_batch)
    assert d.batch_shape == batch and d.event_shape == (n,)
    x = rng.normal(size=(3,) + batch + (n,)) * 2
    loc_b, cov_b = np.broadcast_to(loc, batch + (n,)), np.broadcast_to(cov, batch + (n, n))
    lp, h = d.log_prob(x), d.entropy()
    assert lp.shape == (3,) + batch and np.shape(h) == batch
    for i in np.ndindex(batch):
        ref = st.multivariate_normal(loc_b[i], cov_b[i])
        np.testing.assert_allclose(lp[(slice(None),) + i], ref.logpdf(x[(slice(None),) + i]), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(h[i], ref.entropy(), rtol=1e-10)
    np.testing.assert_allclose(d.covariance_matrix, cov, rtol=1e-9, atol=1e-12)  # the parameter's own shape
    np.testing.assert_allclose(d.precision_matrix, np.linalg.inv(cov), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(d.mean, loc_b)
    np.testing.assert_allclose(d.variance, np.diagonal(cov_b, 0, -2, -1), rtol=1e-10)
    assert np.all(np.triu(d.scale_tril, 1) == 0)  # canonical parameter is lower triangular, even from a precision


@given(data=hst.data(), n=hst.integers(1, 4))
@SETTINGS
def test_multivariate_normal_diag_matches_full_covariance(data, n):
    loc = data.draw(hnp.arrays(np.float64, data.draw(hst.sampled_from([(n,), (2, n)])), elements=hst.floats(*REAL)))
    scale = data.draw(hnp.arrays(np.float64, data.draw(hst.sampled_from([(n,), (3, 1, n)])),
                                 elements=hst.floats(*POSITIVE)))
    d = MultivariateNormalDiag(loc, scale)
    full = MultivariateNormal(loc, scale_tril=scale[..., :, None] * np.eye(n))
    assert d.batch_shape == full.batch_shape and d.event_shape == (n,)
    x = np.random.default_rng(0).normal(size=(2,) + d.batch_shape + (n,))
    np.testing.assert_allclose(d.log_prob(x), full.log_prob(x), rtol=1e-10)
    np.testing.assert_allclose(d.entropy(), full.entropy(), rtol=1e-10)
    np.testing.assert_allclose(d.scale_tril, np.broadcast_to(full.scale_tril, d.batch_shape + (n, n)))
    np.testing.assert_allclose(d.variance, full.variance, rtol=1e-12)
    np.testing.assert_allclose(d.log_prob(x), st.norm(loc, scale).logpdf(x).sum(-1), rtol=1e-10)


@given(data=hst.data(), k=hst.integers(2, 5), batch=hst.sampled_from([(), (3,)]))
@SETTINGS
def test_dirichlet_matches_scipy(data, k, batch):
    alpha = data.draw(hnp.arrays(np.float64, batch + (k,), elements=hst.floats(0.3, 8.0)))
    d = Dirichlet(alpha)
    assert d.batch_shape == batch and d.event_shape == (k,)
    x = d.sample(np.random.default_rng(data.draw(hst.integers(0, 99))), (2,))
    assert x.shape == (2,) + batch + (k,)
    lp = d.log_prob(x)
    for i in np.ndindex(batch):
        ref = st.dirichlet(alpha[i])
        np.testing.assert_allclose(lp[(slice(None),) + i], [ref.logpdf(x[(j,) + i]) for j in range(2)],
                                   rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(d.entropy()[i], ref.entropy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(d.mean[i], ref.mean(), rtol=1e-12)
        np.testing.assert_allclose(d.variance[i], ref.var(), rtol=1e-10)


def test_dirichlet_on_the_boundary_of_the_simplex():
    x = np.array([0.0, 0.25, 0.75])
    assert Dirichlet([1.0, 2.0, 3.0]).log_prob(x) == pytest.approx(st.dirichlet([1.0, 2.0, 3.0]).logpdf(x))
    assert Dirichlet([2.0, 2.0, 3.0]).log_prob(x) == -np.inf
    assert Dirichlet([0.5, 2.0, 3.0]).log_prob(x) == np.inf  # the density's limit, as scipy's formula gives


# ---------------------------------------------------------------- sampling: moments, law, shapes

# family -> the distribution used for moment checks (fixed parameters with finite fourth moments)
MOMENT_CASES = {
    "Normal": lambda: Normal(np.array([-1.0, 2.0]), np.array([0.5, 3.0])),
    "LogNormal": lambda: LogNormal(0.3, np.array([0.2, 0.5])),
    "HalfNormal": lambda: HalfNormal(np.array([0.5, 2.0])),
    "Exponential": lambda: Exponential(np.array([0.5, 4.0])),
    "Gamma": lambda: Gamma(np.array([0.3, 4.0]), 2.0),
    "Beta": lambda: Beta(np.array([0.5, 3.0]), 2.0),
    "Uniform": lambda: Uniform(-1.0, np.array([0.0, 5.0])),
    "Laplace": lambda: Laplace(1.0, np.array([0.5, 2.0])),
    "StudentT": lambda: StudentT(np.array([5.0, 9.0]), 1.0, 2.0),
}


@pytest.mark.parametrize("family", sorted(MOMENT_CASES))
def test_sample_moments_within_standard_errors(family):
    d = MOMENT_CASES[family]()
    n = 20000
    x = d.sample(np.random.default_rng(7), (n,))
    assert x.shape == (n,) + d.batch_shape and np.all(np.isfinite(d.log_prob(x)))
    mean, var = x.mean(0), x.var(0)
    se_mean = np.sqrt(d.variance / n)
    se_var = np.sqrt((((x - d.mean) ** 4).mean(0) - d.variance**2) / n)  # Var of the sample variance
    assert np.all(np.abs(mean - d.mean) < 5 * se_mean), (mean, d.mean)
    assert np.all(np.abs(var - d.variance) < 5 * se_var), (var, d.variance)


@pytest.mark.parametrize("family", sorted(UNIVARIATE))
def test_samples_follow_the_law_kolmogorov_smirnov(family):
    make, reference, ranges = UNIVARIATE[family]
    params = [np.array(0.7 if lo >= 0 else -0.4) for lo, _ in ranges]
    if family == "StudentT":
        params[0] = np.array(1.5)  # heavy tails: no mean or variance to check, only the law
    draws = make(*params).sample(np.random.default_rng(11), (5000,))
    assert st.kstest(draws, reference(*params).cdf).pvalue > 1e-3


def test_multivariate_sample_moments():
    rng = np.random.default_rng(3)
    loc, cov = np.array([1.0, -2.0, 0.5]), _random_spd(np.random.default_rng(4), (), 3)
    n = 20000
    for d in (MultivariateNormal(loc, covariance_matrix=cov), MultivariateNormal(loc, precision_matrix=np.linalg.inv(cov))):
        x = d.sample(rng, (n,))
        assert x.shape == (n, 3)
        se = np.sqrt(np.diag(cov) / n)
        assert np.all(np.abs(x.mean(0) - loc) < 5 * se)
        # Entrywise SE of the sample covariance: sqrt((S_ii S_jj + S_ij^2) / n) for a Gaussian.
        se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
        assert np.all(np.abs(np.cov(x.T) - cov) < 5 * se_cov)
    diag = MultivariateNormalDiag(loc, np.array([0.5, 1.0, 2.0]))
    x = diag.sample(rng, (n,))
    assert np.all(np.abs(x.mean(0) - loc) < 5 * np.sqrt(diag.variance / n))
    assert np.all(np.abs(x.var(0) / diag.variance - 1) < 5 * np.sqrt(2 / n))
    dirichlet = Dirichlet(np.array([0.5, 2.0, 4.0]))
    x = dirichlet.sample(rng, (n,))
    assert np.allclose(x.sum(-1), 1.0) and np.all(x > 0)
    assert np.all(np.abs(x.mean(0) - dirichlet.mean) < 5 * np.sqrt(dirichlet.variance / n))


def test_tiny_concentrations_sample_inside_the_support():
    rng = np.random.default_rng(0)
    for d in (Gamma(1e-3, 1.0), Beta(1e-3, 1e-3), Beta(np.float32(1e-2), np.float32(1e-2)), Dirichlet([1e-3] * 4),
              Dirichlet(np.full(4, 1e-2, np.float32))):
        x = d.sample(rng, (2000,))
        assert not np.any(np.isnan(d.log_prob(x)))  # validation is on: a draw outside the support would raise


ALL_FAMILIES = {
    **{name: (lambda make=make, ranges=ranges: make(*[np.full((2, 3), 0.6 if lo >= 0 else 0.1)
                                                      for lo, _ in ranges]))
       for name, (make, _, ranges) in UNIVARIATE.items()},
    "MultivariateNormal": lambda: MultivariateNormal(np.zeros((3, 4)), scale_tril=np.eye(4) * 2 + np.tri(4, k=-1)),
    "MultivariateNormalBatchedTril": lambda: MultivariateNormal(
        np.zeros(4), covariance_matrix=_random_spd(np.random.default_rng(1), (2, 3), 4)),
    "MultivariateNormalDiag": lambda: MultivariateNormalDiag(np.zeros((2, 3, 4)), np.ones(4)),
    "Dirichlet": lambda: Dirichlet(np.ones((2, 3, 4))),
}


@pytest.mark.parametrize("family", sorted(ALL_FAMILIES))
@pytest.mark.parametrize("sample_shape", [(), (5,), (2, 1)])
def test_sample_and_log_prob_shapes(family, sample_shape):
    d = ALL_FAMILIES[family]()
    x = d.sample(np.random.default_rng(0), sample_shape)
    assert np.shape(x) == sample_shape + d.batch_shape + d.event_shape
    assert np.shape(d.log_prob(x)) == sample_shape + d.batch_shape
    assert np.all(np.isfinite(d.log_prob(x)))


@pytest.mark.parametrize("family", sorted(ALL_FAMILIES))
def test_expand_and_to_event(family):
    d = ALL_FAMILIES[family]()
    big = d.expand((4,) + d.batch_shape)
    x = big.sample(np.random.default_rng(1), (5,))
    assert x.shape == (5, 4) + d.batch_shape + d.event_shape
    lp = big.log_prob(x)
    np.testing.assert_allclose(lp, d.log_prob(x), rtol=1e-12)
    independent = big.to_event(1)
    assert independent.batch_shape == (4,) + d.batch_shape[:-1]
    assert independent.event_shape == d.batch_shape[-1:] + d.event_shape
    np.testing.assert_allclose(independent.log_prob(x), lp.sum(-1), rtol=1e-12)
    assert big.to_event().log_prob(x).shape == (5,)


def test_normal_expand_to_event_sums_correctly():
    loc, scale = np.array([0.5, -1.0, 2.0, 0.0]), np.array([1.0, 2.0, 0.5, 3.0])
    d = Normal(loc, scale).expand((3, 4)).to_event(1)
    assert d.batch_shape == (3,) and d.event_shape == (4,)
    x = np.random.default_rng(0).normal(size=(2, 3, 4))
    np.testing.assert_allclose(d.log_prob(x), st.norm(loc, scale).logpdf(x).sum(-1), rtol=1e-12)
    np.testing.assert_allclose(d.entropy(), np.full(3, st.norm(loc, scale).entropy().sum()), rtol=1e-12)
    # Size-1 axes grow with independent draws, not copies.
    grown = Normal(np.zeros(1), 1.0).expand((3, 4)).sample(np.random.default_rng(0))
    assert grown.shape == (3, 4) and len(np.unique(grown)) == 12


# ---------------------------------------------------------------- gradients against finite differences

# family -> (constructor, parameter values, value inside the support)
GRADIENT_CASES = {
    "Normal": (Normal, (np.array([0.3, -1.0]), np.array([0.7, 2.0])), np.array([[0.1, 0.5], [-2.0, 1.2]])),
    "LogNormal": (LogNormal, (np.array([0.3, -1.0]), np.array([0.7, 2.0])), np.array([[0.1, 0.5], [2.0, 1.2]])),
    "HalfNormal": (HalfNormal, (np.array([0.7, 2.0]),), np.array([[0.1, 0.5], [2.0, 1.2]])),
    "Exponential": (Exponential, (np.array([0.7, 2.0]),), np.array([[0.1, 0.5], [2.0, 1.2]])),
    "Gamma": (Gamma, (np.array([0.7, 3.0]), np.array([1.5, 0.4])), np.array([[0.1, 0.5], [2.0, 1.2]])),
    "Beta": (Beta, (np.array([0.7, 3.0]), np.array([1.5, 0.4])), np.array([[0.1, 0.5], [0.9, 0.3]])),
    "Uniform": (Uniform, (np.array([-1.0, 0.0]), np.array([2.0, 3.0])), np.array([[0.1, 0.5], [1.5, 1.2]])),
    "Laplace": (Laplace, (np.array([0.3, -1.0]), np.array([0.7, 2.0])), np.array([[0.1, 0.5], [-2.0, 1.2]])),
    "StudentT": (StudentT, (np.array([1.5, 6.0]), np.array([0.3, -1.0]), np.array([0.7, 2.0])),
                 np.array([[0.1, 0.5], [-2.0, 1.2]])),
    "Cauchy": (Cauchy, (np.array([0.3, -1.0]), np.array([0.7, 2.0])), np.array([[0.1, 0.5], [-2.0, 1.2]])),
    "MultivariateNormalDiag": (MultivariateNormalDiag, (np.array([0.3, -1.0]), np.array([0.7, 2.0])),
                               np.array([[0.1, 0.5], [-2.0, 1.2]])),
    "Dirichlet": (Dirichlet, (np.array([0.7, 3.0, 1.5]),), np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])),
}


@pytest.mark.parametrize("family", sorted(GRADIENT_CASES))
def test_log_prob_gradients(family):
    make, params, value = GRADIENT_CASES[family]

    def total(*args):
        return anp.sum(make(*args).log_prob(value) * np.arange(1.0, 3.0))  # weights: no lucky cancellation

    assert_gradients_match(total, list(params))
    if family != "Dirichlet":  # a step off the simplex leaves Dirichlet's support: no derivative in the value
        assert_gradients_match(lambda x: anp.sum(make(*params).log_prob(x) * np.arange(1.0, 3.0)), [value])
    # Entropy, mean and variance carry gradients too.
    assert_gradients_match(lambda *p: anp.sum(make(*p).entropy()), list(params))
    if family not in {"StudentT", "Cauchy"}:
        assert_gradients_match(lambda *p: anp.sum(anp.sin(make(*p).mean) + anp.sqrt(make(*p).variance)), list(params))


def test_multivariate_normal_gradients():
    rng = np.random.default_rng(5)
    loc, x = rng.normal(size=3), rng.normal(size=(4, 3))
    raw = rng.normal(size=(3, 3))

    def by_covariance(loc, raw, x):
        return anp.sum(MultivariateNormal(loc, covariance_matrix=anp.dot(raw, raw.T) + np.eye(3)).log_prob(x))

    def by_precision(loc, raw, x):
        return anp.sum(MultivariateNormal(loc, precision_matrix=anp.dot(raw, raw.T) + np.eye(3)).log_prob(x))

    def by_batched_tril(loc, raw, x):  # a batch of two factors takes the batched solve
        tril = anp.tril(raw) + 3 * np.eye(3)
        return anp.sum(MultivariateNormal(loc, scale_tril=anp.stack([tril, 2 * tril])).log_prob(x[:, None]))

    for f in (by_covariance, by_precision, by_batched_tril):
        assert_gradients_match(f, [loc, raw, x])


# family -> (constructor, parameter values) for reparameterized draws
RSAMPLE_CASES = {name: GRADIENT_CASES[name][:2] for name in REPARAMETERIZED | {"MultivariateNormalDiag"}}
RSAMPLE_CASES["StudentT"] = (lambda loc, scale: StudentT(np.array([1.5, 6.0]), loc, scale),  # not in df: see below
                             GRADIENT_CASES["StudentT"][1][1:])
RSAMPLE_CASES["MultivariateNormal"] = (lambda loc, raw: MultivariateNormal(loc, scale_tril=anp.tril(raw)),
                                       (np.array([0.3, -1.0]), np.array([[1.5, 0.0], [0.4, 0.8]])))


@pytest.mark.parametrize("family", sorted(RSAMPLE_CASES))
def test_reparameterized_sample_gradients(family):
    make, params = RSAMPLE_CASES[family]
    assert make(*params).has_rsample

    def draws(*args):  # the same noise every call: a deterministic, differentiable function of the parameters
        x = make(*args).sample(np.random.default_rng(2), (3,))
        return anp.sum(anp.sin(x))

    assert_gradients_match(draws, list(params))


def test_studentt_draws_refuse_a_gradient_in_df():
    # The t noise depends on df through a gamma draw, which is not reparameterized: a zero gradient would be wrong.
    with pytest.raises(NotImplementedError, match="df"):
        autograd.grad(lambda df: anp.sum(StudentT(df).sample(np.random.default_rng(0), (3,))))(np.array(4.0))
    g = autograd.grad(lambda df: anp.sum(StudentT(df).log_prob(np.array([0.5, 3.0]))))(4.0)  # the density has one
    assert g == pytest.approx(finite_difference(lambda df: StudentT(df).log_prob(np.array([0.5, 3.0])).sum(), 4.0))


def test_families_without_reparameterization_say_so():
    assert not Gamma(2.0, 1.0).has_rsample and not Beta(2.0, 2.0).has_rsample and not Dirichlet(np.ones(3)).has_rsample
    assert all(ALL_FAMILIES[name]().has_rsample for name in REPARAMETERIZED)
    assert Normal(0.0, 1.0).expand((3,)).to_event(1).has_rsample


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("make, name", [
    (lambda: Normal(0.0, -1.0), "scale"), (lambda: LogNormal(0.0, np.array([1.0, 0.0])), "scale"),
    (lambda: HalfNormal(-2.0), "scale"), (lambda: Laplace(0.0, -1.0), "scale"), (lambda: Cauchy(0.0, -1.0), "scale"),
    (lambda: StudentT(3.0, 0.0, -1.0), "scale"), (lambda: StudentT(-3.0), "df"), (lambda: Exponential(0.0), "rate"),
    (lambda: Gamma(-1.0, 1.0), "concentration"), (lambda: Gamma(1.0, -1.0), "rate"),
    (lambda: Beta(0.0, 1.0), "concentration1"), (lambda: Beta(1.0, -1.0), "concentration0"),
    (lambda: Uniform(2.0, 1.0), "high"), (lambda: Uniform(np.nan, 1.0), "low"),
    (lambda: Normal(np.nan, 1.0), "loc"), (lambda: Normal(np.array([0.0, np.nan]), 1.0), "loc"),
    (lambda: Normal(0.0, np.nan), "scale"),
    (lambda: MultivariateNormalDiag(np.zeros(2), np.array([1.0, -1.0])), "scale_diag"),
    (lambda: MultivariateNormal(np.array([0.0, np.nan]), scale_tril=np.eye(2)), "loc"),
    (lambda: MultivariateNormal(np.zeros(2), scale_tril=np.array([[1.0, 0.5], [0.0, 1.0]])), "scale_tril"),
    (lambda: MultivariateNormal(np.zeros(2), scale_tril=-np.eye(2)), "scale_tril"),
    (lambda: MultivariateNormal(np.zeros(2), covariance_matrix=np.array([[1.0, 2.0], [2.0, 1.0]])),
     "covariance_matrix"),
    (lambda: MultivariateNormal(np.zeros(2), precision_matrix=np.array([[1.0, 0.0], [1.0, 1.0]])), "precision_matrix"),
    (lambda: MultivariateNormal(np.zeros(3), covariance_matrix=np.eye(2)), "covariance_matrix"),
    (lambda: Dirichlet(np.array([1.0, 0.0])), "concentration"),
])
def test_bad_parameter_raises_naming_it(make, name):
    with pytest.raises(ValueError, match=f"'{name}'"):
        make()


def test_multivariate_normal_needs_exactly_one_matrix():
    with pytest.raises(ValueError, match="exactly one"):
        MultivariateNormal(np.zeros(2))
    with pytest.raises(ValueError, match="exactly one"):
        MultivariateNormal(np.zeros(2), covariance_matrix=np.eye(2), scale_tril=np.eye(2))
    with pytest.raises(ValueError, match="loc"):
        MultivariateNormal(0.0, scale_tril=np.eye(2))


@pytest.mark.parametrize("make, value", [
    (lambda v: Exponential(1.0, validate_args=v), -1.0), (lambda v: Beta(2.0, 2.0, validate_args=v), 1.5),
    (lambda v: Beta(2.0, 2.0, validate_args=v), 0.0), (lambda v: Gamma(2.0, 1.0, validate_args=v), -0.5),
    (lambda v: HalfNormal(1.0, validate_args=v), -0.1), (lambda v: LogNormal(0.0, 1.0, validate_args=v), 0.0),
    (lambda v: LogNormal(0.0, 1.0, validate_args=v), -3.0), (lambda v: Uniform(0.0, 1.0, validate_args=v), 1.5),
    (lambda v: Uniform(0.0, 1.0, validate_args=v), -1e-9),
    (lambda v: Dirichlet(np.ones(3), validate_args=v), np.array([0.5, 0.6, 0.1])),
    (lambda v: Dirichlet(np.ones(3), validate_args=v), np.array([1.5, -0.6, 0.1])),
])
def test_value_outside_the_support(make, value):
    with pytest.raises(ValueError, match="support"):
        make(True).log_prob(value)
    assert make(False).log_prob(value) == -np.inf


def test_outside_values_in_a_batch_give_minus_inf_only_where_outside():
    lp = Exponential(np.array([1.0, 2.0]), validate_args=False).log_prob(np.array([[-1.0, 0.5], [0.5, -2.0]]))
    np.testing.assert_allclose(lp, [[-np.inf, np.log(2.0) - 1.0], [-0.5, -np.inf]])
    with pytest.raises(ValueError, match=r"-1\.0\)? at index \(0, 0\)"):
        Exponential(np.array([1.0, 2.0])).log_prob(np.array([[-1.0, 0.5], [0.5, -2.0]]))


def test_nan_value_raises_and_uniform_boundary_scores():
    with pytest.raises(ValueError, match="support"):
        Normal(0.0, 1.0).log_prob(np.array([0.0, np.nan]))
    assert Uniform(0.0, 2.0).log_prob(0.0) == pytest.approx(-np.log(2.0))  # a draw may land on low exactly


def test_event_shape_mismatch_names_the_shapes():
    for d in (MultivariateNormal(np.zeros(3), scale_tril=np.eye(3)), MultivariateNormalDiag(np.zeros(3), 1.0),
              Dirichlet(np.ones(3))):
        with pytest.raises(ValueError, match=r"\(2, 2\).*\(3,\)"):
            d.log_prob(np.full((2, 2), 0.5))


# ---------------------------------------------------------------- float32


@pytest.mark.parametrize("family", sorted(ALL_FAMILIES))
def test_float32_stays_float32(family):
    d64 = ALL_FAMILIES[family]()
    d = _as_float32(d64)
    x = d.sample(np.random.default_rng(0), (3,))
    assert x.dtype == np.float32
    lp = d.log_prob(x)
    assert lp.dtype == np.float32
    np.testing.assert_allclose(lp, d64.log_prob(x.astype(np.float64)), rtol=1e-4, atol=1e-4)
    for quantity in (d.mean, d.variance, d.entropy()):
        assert np.asarray(quantity).dtype == np.float32


def _as_float32(d):
    """The same family with every array parameter cast to float32."""
    names = {Normal: ("loc", "scale"), LogNormal: ("loc", "scale"), HalfNormal: ("scale",), Exponential: ("rate",),
             Gamma: ("concentration", "rate"), Beta: ("concentration1", "concentration0"), Uniform: ("low", "high"),
             Laplace: ("loc", "scale"), StudentT: ("df", "loc", "scale"), Cauchy: ("loc", "scale"),
             MultivariateNormalDiag: ("loc", "scale_diag"), Dirichlet: ("concentration",)}
    if isinstance(d, MultivariateNormal):
        return MultivariateNormal(d.loc.astype(np.float32), scale_tril=d.scale_tril.astype(np.float32))
    return type(d)(*(np.asarray(getattr(d, n), np.float32) for n in names[type(d)]))


def test_float32_gradients_stay_float32():
    loc, scale = np.float32([0.1, 0.2]), np.float32([1.0, 2.0])
    g = autograd.grad(lambda s: anp.sum(Normal(loc, s).sample(np.random.default_rng(0), (4,))))(scale)
    assert g.dtype == np.float32
    g = autograd.grad(lambda s: anp.sum(StudentT(np.float32(4.0), loc, s).log_prob(np.float32(0.5))))(scale)
    assert g.dtype == np.float32
