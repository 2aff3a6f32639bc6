"""Every family, transform and KL against an independent number: scipy.stats, autograd's Jacobian, Monte Carlo."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hst

import ppl.distributions as dist
from ppl import info
from ppl.distributions import constraints, kl_divergence, transforms
from ppl.errors import NoClosedFormError
from ppl.testing import finite_difference

pos = hst.floats(0.2, 5.0)
real = hst.floats(-3.0, 3.0)
unit = hst.floats(0.05, 0.95)

# family -> (ppl constructor, scipy frozen distribution, parameter strategies, support sampler)
UNIVARIATE = {
    "Normal": (lambda a, b: dist.Normal(a, b), lambda a, b: st.norm(a, b), (real, pos)),
    "LogNormal": (lambda a, b: dist.LogNormal(a, b), lambda a, b: st.lognorm(s=b, scale=np.exp(a)), (real, pos)),
    "HalfNormal": (lambda a, b: dist.HalfNormal(b), lambda a, b: st.halfnorm(scale=b), (real, pos)),
    "Exponential": (lambda a, b: dist.Exponential(b), lambda a, b: st.expon(scale=1 / b), (real, pos)),
    "Gamma": (lambda a, b: dist.Gamma(a, b), lambda a, b: st.gamma(a, scale=1 / b), (pos, pos)),
    "Beta": (lambda a, b: dist.Beta(a, b), lambda a, b: st.beta(a, b), (pos, pos)),
    "Uniform": (lambda a, b: dist.Uniform(a, a + b), lambda a, b: st.uniform(a, b), (real, pos)),
    "Laplace": (lambda a, b: dist.Laplace(a, b), lambda a, b: st.laplace(a, b), (real, pos)),
    "StudentT": (lambda a, b: dist.StudentT(b + 2.1, a, b), lambda a, b: st.t(b + 2.1, a, b), (real, pos)),
    "Cauchy": (lambda a, b: dist.Cauchy(a, b), lambda a, b: st.cauchy(a, b), (real, pos)),
    "Bernoulli": (lambda a, b: dist.Bernoulli(logits=a), lambda a, b: st.bernoulli(1 / (1 + np.exp(-a))), (real, pos)),
    "BernoulliProbs": (lambda a, b: dist.Bernoulli(probs=b / 6), lambda a, b: st.bernoulli(b / 6), (real, pos)),
    "Poisson": (lambda a, b: dist.Poisson(b), lambda a, b: st.poisson(b), (real, pos)),
    "Binomial": (lambda a, b: dist.Binomial(7, logits=a), lambda a, b: st.binom(7, 1 / (1 + np.exp(-a))),
                 (real, pos)),
}
NO_SCIPY_MOMENTS = {"Cauchy"}  # mean and variance do not exist


@pytest.mark.parametrize("family", sorted(UNIVARIATE))
@given(data=hst.data())
@settings(max_examples=15)
def test_univariate_against_scipy(family, data):
    make, reference, (sa, sb) = UNIVARIATE[family]
    a, b = data.draw(sa), data.draw(sb)
    d, ref = make(a, b), reference(a, b)
    x = ref.rvs(size=5, random_state=np.random.default_rng(0))
    ref_logp = ref.logpmf(x) if hasattr(ref, "logpmf") else ref.logpdf(x)
    assert np.allclose(d.log_prob(x.astype(float)), ref_logp, rtol=1e-7, atol=1e-9)
    assert np.isclose(d.entropy(), ref.entropy(), rtol=1e-6, atol=1e-9)
    if family not in NO_SCIPY_MOMENTS:
        assert np.isclose(d.mean, ref.mean(), rtol=1e-7) and np.isclose(d.variance, ref.var(), rtol=1e-7)


@pytest.mark.parametrize("family", sorted(set(UNIVARIATE) - NO_SCIPY_MOMENTS))
def test_sample_moments_within_standard_errors(family):
    make, reference, _ = UNIVARIATE[family]
    d, ref = make(0.4, 1.3), reference(0.4, 1.3)
    draws = d.sample(np.random.default_rng(1), (40000,))
    assert draws.shape == (40000,)
    assert abs(draws.mean() - ref.mean()) < 5 * np.sqrt(ref.var() / len(draws))
    if family not in ("StudentT", "LogNormal"):  # heavy tails: the variance of the variance estimate is huge
        assert abs(draws.var() / ref.var() - 1) < 0.05


@given(shape_a=hst.sampled_from([(), (3,), (2, 1), (1, 4)]), shape_b=hst.sampled_from([(), (3,), (2, 3), (4,)]))
@settings(max_examples=20)
def test_batch_broadcasting_shapes(shape_a, shape_b):
    try:
        batch = np.broadcast_shapes(shape_a, shape_b)
    except ValueError:
        with pytest.raises(ValueError):
            dist.Normal(np.zeros(shape_a), np.ones(shape_b))
        return
    d = dist.Normal(np.zeros(shape_a), np.ones(shape_b))
    assert d.batch_shape == batch
    draws = d.sample(np.random.default_rng(0), (5,))
    assert draws.shape == (5,) + batch and d.log_prob(draws).shape == (5,) + batch
    assert d.expand((6,) + batch).sample(np.random.default_rng(0)).shape == (6,) + batch
    assert d.to_event().log_prob(draws).shape == (5,)


def test_multivariate_against_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3))
    cov, loc = a @ a.T + np.eye(3), rng.normal(size=3)
    x = rng.normal(size=(4, 3))
    for d in (dist.MultivariateNormal(loc, covariance_matrix=cov),
              dist.MultivariateNormal(loc, scale_tril=np.linalg.cholesky(cov)),
              dist.MultivariateNormal(loc, precision_matrix=np.linalg.inv(cov))):
        ref = st.multivariate_normal(loc, cov)
        assert np.allclose(d.log_prob(x), ref.logpdf(x)) and np.isclose(d.entropy(), ref.entropy())
        assert np.allclose(d.covariance_matrix, cov)
    diag = dist.MultivariateNormalDiag(loc, np.array([0.5, 1.0, 2.0]))
    ref = st.multivariate_normal(loc, np.diag([0.25, 1.0, 4.0]))
    assert np.allclose(diag.log_prob(x), ref.logpdf(x)) and np.isclose(diag.entropy(), ref.entropy())
    alpha = np.array([0.7, 2.0, 3.5])
    p = st.dirichlet(alpha).rvs(4, random_state=1)
    d = dist.Dirichlet(alpha)
    assert np.allclose(d.log_prob(p), st.dirichlet(alpha).logpdf(p.T)) and np.isclose(d.entropy(), st.dirichlet(alpha).entropy())
    assert np.allclose(d.mean, st.dirichlet(alpha).mean()) and np.allclose(d.variance, st.dirichlet(alpha).var())
    draws = dist.MultivariateNormal(loc, covariance_matrix=cov).sample(np.random.default_rng(2), (50000,))
    assert np.allclose(np.cov(draws.T), cov, atol=0.1) and np.allclose(draws.mean(0), loc, atol=0.05)


def test_categorical():
    logits = np.array([0.3, -1.0, 2.0, 0.0])
    probs = np.exp(logits) / np.exp(logits).sum()
    d = dist.Categorical(logits=logits)
    assert np.allclose(d.log_prob(np.arange(4)), np.log(probs))
    assert np.isclose(d.entropy(), st.entropy(probs))
    counts = np.bincount(d.sample(np.random.default_rng(0), (40000,)), minlength=4) / 40000
    assert np.allclose(counts, probs, atol=0.01)


def test_extreme_logits_stay_finite():
    for logits in (800.0, -800.0):
        d = dist.Bernoulli(logits=logits)
        lp = d.log_prob(np.array([0.0, 1.0]))
        assert np.all(np.isfinite(lp) | (lp == -np.inf)) and np.isfinite(d.entropy())
        assert np.isclose(lp.max(), 0.0)
    g = autograd.grad(lambda l: anp.sum(dist.Bernoulli(logits=l).log_prob(np.array([1.0, 0.0]))))(np.array([800., -800.]))
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize("family", ["Normal", "LogNormal", "Gamma", "Beta", "StudentT", "Laplace", "Poisson"])
def test_log_prob_gradients_against_finite_differences(family):
    make, reference, _ = UNIVARIATE[family]
    x = reference(0.4, 1.3).rvs(size=3, random_state=np.random.default_rng(3)).astype(float)
    f = lambda p: anp.sum(make(p[0], p[1]).log_prob(x))  # noqa: E731
    p = np.array([0.4, 1.3])
    assert np.allclose(autograd.grad(f)(p), finite_difference(f, p), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("family", ["Normal", "LogNormal", "HalfNormal", "Exponential", "Laplace", "Uniform"])
def test_reparameterized_sample_gradients(family):
    make, _, _ = UNIVARIATE[family]
    f = lambda p: anp.sum(make(p[0], p[1]).sample(np.random.default_rng(5), (4,)) ** 2)  # noqa: E731
    p = np.array([0.4, 1.3])
    assert np.allclose(autograd.grad(f)(p), finite_difference(f, p), rtol=1e-5, atol=1e-7)


def test_validation_names_the_parameter_and_support():
    with pytest.raises(ValueError, match="'scale'"):
        dist.Normal(0.0, -1.0)
    with pytest.raises(ValueError, match="'loc'"):
        dist.Normal(np.nan, 1.0)
    with pytest.raises(ValueError, match="'probs'"):
        dist.Bernoulli(probs=1.5)
    with pytest.raises(ValueError, match="support"):
        dist.Exponential(1.0).log_prob(-1.0)
    assert dist.Exponential(1.0, validate_args=False).log_prob(-1.0) == -np.inf
    assert dist.Beta(2.0, 2.0, validate_args=False).log_prob(1.5) == -np.inf


def test_float32_stays_float32():
    loc, scale = np.zeros(3, np.float32), np.ones(3, np.float32)
    for d in (dist.Normal(loc, scale), dist.LogNormal(loc, scale), dist.Laplace(loc, scale),
              dist.MultivariateNormalDiag(loc, scale), dist.Bernoulli(logits=loc)):
        draw = d.sample(np.random.default_rng(0), (2,))
        assert draw.dtype == np.float32 and d.log_prob(draw).dtype == np.float32
    g = autograd.grad(lambda s: anp.sum(dist.Normal(loc, s).log_prob(loc + 1)))(scale)
    assert g.dtype == np.float32


# ---------------------------------------------------------------- transforms

TRANSFORMS = [
    (constraints.positive, 3), (constraints.unit_interval, 3), (constraints.interval(-2.0, 5.0), 3),
    (constraints.greater_than(1.5), 3), (constraints.simplex, 4), (constraints.lower_cholesky, 6),
    (constraints.real, 3), (constraints.nonnegative, 3),
]


@pytest.mark.parametrize("constraint,size", TRANSFORMS, ids=[repr(c) for c, _ in TRANSFORMS])
@given(x=hst.lists(hst.floats(-4, 4), min_size=6, max_size=6))
@settings(max_examples=15)
def test_transform_round_trip_log_det_and_support(constraint, size, x):
    t = transforms.biject_to(constraint)
    u = np.array(x[:size])
    y = t(u)
    assert np.all(constraint.check(y))
    assert np.allclose(t.inv(y), u, rtol=1e-6, atol=1e-6)
    if isinstance(t, transforms.StickBreakingTransform):  # the square Jacobian of u -> y[:-1]
        jac = autograd.jacobian(lambda v: t(v)[:-1])(u)
    elif isinstance(t, transforms.LowerCholeskyTransform):
        rows, cols = np.tril_indices(3)
        jac = autograd.jacobian(lambda v: t(v)[rows, cols])(u)
    else:
        jac = autograd.jacobian(t)(u)
    expected = np.linalg.slogdet(jac)[1] if jac.ndim == 2 and t.event_dim else np.sum(np.log(np.abs(np.diag(jac))))
    assert np.isclose(np.sum(t.log_abs_det_jacobian(u, y)), expected, rtol=1e-6, atol=1e-6)


def test_transforms_batch_and_float32():
    t = transforms.biject_to(constraints.simplex)
    u = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    y = t(u)
    assert y.shape == (5, 4) and np.allclose(y.sum(-1), 1, atol=1e-6)
    assert transforms.biject_to(constraints.positive)(u).dtype == np.float32
    assert np.allclose(t(np.zeros(3)), 0.25)  # x = 0 is the uniform simplex


# ---------------------------------------------------------------- KL and information


KL_PAIRS = [
    (dist.Normal(0.3, 1.2), dist.Normal(-0.5, 0.7)),
    (dist.MultivariateNormal(np.array([0.1, 0.2]), covariance_matrix=np.array([[1.0, 0.3], [0.3, 0.5]])),
     dist.MultivariateNormal(np.array([-0.3, 0.4]), covariance_matrix=np.array([[0.7, -0.1], [-0.1, 1.5]]))),
    (dist.MultivariateNormalDiag(np.array([0.1, 0.2]), np.array([0.5, 1.5])),
     dist.MultivariateNormalDiag(np.array([0.0, 1.0]), np.array([1.0, 0.8]))),
    (dist.MultivariateNormalDiag(np.array([0.1, 0.2]), np.array([0.5, 1.5])),
     dist.MultivariateNormal(np.array([-0.3, 0.4]), covariance_matrix=np.array([[0.7, -0.1], [-0.1, 1.5]]))),
    (dist.Bernoulli(probs=0.3), dist.Bernoulli(probs=0.6)),
    (dist.Categorical(probs=np.array([0.2, 0.5, 0.3])), dist.Categorical(probs=np.array([0.4, 0.4, 0.2]))),
    (dist.Gamma(2.0, 3.0), dist.Gamma(1.5, 1.0)),
    (dist.Beta(2.0, 3.0), dist.Beta(1.2, 0.9)),
    (dist.Dirichlet(np.array([1.0, 2.0, 3.0])), dist.Dirichlet(np.array([2.0, 2.0, 0.5]))),
    (dist.Exponential(2.0), dist.Exponential(0.7)),
    (dist.Poisson(3.0), dist.Poisson(4.5)),
]


@pytest.mark.parametrize("p,q", KL_PAIRS, ids=[type(p).__name__ + "-" + type(q).__name__ for p, q in KL_PAIRS])
def test_kl_closed_form_against_monte_carlo(p, q):
    exact = kl_divergence(p, q)
    draws = p.sample(np.random.default_rng(0), (200000,))
    terms = p.log_prob(draws) - q.log_prob(draws)
    assert abs(terms.mean() - exact) < 4 * terms.std() / np.sqrt(len(terms)) + 1e-9
    assert np.allclose(kl_divergence(p, p), 0.0, atol=1e-12)


def test_kl_unregistered_names_both_families():
    with pytest.raises(NoClosedFormError, match="Cauchy.*Laplace"):
        kl_divergence(dist.Cauchy(0.0, 1.0), dist.Laplace(0.0, 1.0))


def test_information_in_bits_and_nats():
    assert info.entropy([0.5, 0.5], units="bits") == 1.0
    assert np.isclose(info.entropy([0.25] * 4, units="bits"), 2.0)
    p, q = np.array([0.1, 0.6, 0.3]), np.array([0.3, 0.3, 0.4])
    assert np.isclose(info.kl_divergence(p, q), st.entropy(p, q))
    assert np.isclose(info.kl_divergence(p, q, units="bits"), st.entropy(p, q) / np.log(2))
    assert info.entropy([1.0, 0.0]) == 0.0  # 0 log 0 = 0
    assert np.isclose(info.entropy(dist.Normal(0.0, 2.0), units="bits"), st.norm(0, 2).entropy() / np.log(2))
    with pytest.raises(ValueError, match="units"):
        info.entropy([0.5, 0.5], units="hartleys")
    with pytest.raises(ValueError, match="sum to 1"):
        info.entropy([0.5, 0.6])


def test_monte_carlo_fallback_has_a_standard_error():
    class NoEntropyStudentT(dist.StudentT):
        entropy = dist.Distribution.entropy

    estimate = info.entropy(NoEntropyStudentT(5.0, 0.0, 1.0), num_samples=40000)
    assert abs(estimate.value - st.t(5.0).entropy()) < 4 * estimate.stderr
    kl = info.kl_divergence(dist.Cauchy(0.0, 1.0), dist.Normal(0.0, 3.0), num_samples=40000)
    assert kl.stderr > 0 and np.isfinite(kl.value)


HOLDS_CASES = [constraints.real, constraints.real_vector, constraints.positive, constraints.nonnegative,
               constraints.unit_interval, constraints.boolean, constraints.simplex,
               constraints.integer_interval(0, 3), constraints.nonnegative_integer]


@pytest.mark.parametrize("constraint", HOLDS_CASES, ids=repr)
@settings(max_examples=25, deadline=None)
@given(hst.integers(0, 2**32 - 1), hst.sampled_from([(3,), (70, 80), (5000,)]), hst.sampled_from(
    [None, np.nan, np.inf, -np.inf, 1e200, -1e-300, 0.0, 1.0, 2.0]), hst.sampled_from([np.float64, np.float32]))
def test_holds_is_check_all(constraint, seed, shape, planted, dtype):
    """``holds`` (validation's fast question) answers what ``check(x).all()`` does, on small and large
    arrays, with a bad entry planted anywhere (the large-array path goes through a dot product)."""
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore"):
        x = rng.choice([0.0, 1.0, 0.5, 3.0], size=shape).astype(dtype)
        if planted is not None:
            x.reshape(-1)[rng.integers(x.size)] = planted
    assert constraint.holds(x) == bool(np.all(constraint.check(x)))
