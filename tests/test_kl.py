"""KL divergence: every closed form against Monte Carlo, scipy and independent formulas; the registry."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.integrate
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hst

from ppl.distributions.continuous import Beta, Cauchy, Exponential, Gamma, Laplace, Normal
from ppl.distributions.discrete import Bernoulli, Categorical, Poisson
from ppl.distributions.distribution import Independent
from ppl.distributions.kl import kl_divergence, register_kl
from ppl.distributions.multivariate import Dirichlet, MultivariateNormal, MultivariateNormalDiag
from ppl.errors import NoClosedFormError

SETTINGS = settings(max_examples=30, deadline=None)
pos = hst.floats(0.2, 5.0)
real = hst.floats(-3.0, 3.0)

COV_P = np.array([[1.0, 0.3, 0.1], [0.3, 0.5, -0.2], [0.1, -0.2, 0.8]])
COV_Q = np.array([[0.7, -0.1, 0.0], [-0.1, 1.5, 0.4], [0.0, 0.4, 0.9]])
LOC_P, LOC_Q = np.array([0.1, 0.2, -0.4]), np.array([-0.3, 0.4, 0.5])
DIAG_P, DIAG_Q = np.array([0.5, 1.5, 0.8]), np.array([1.0, 0.8, 1.3])

# One pair per closed form, several batched, so the MC check also covers broadcasting.
PAIRS = {
    "Normal": (Normal(np.array([0.3, -1.0]), 1.2), Normal(-0.5, np.array([0.7, 2.0]))),
    "MVN-MVN": (MultivariateNormal(LOC_P, covariance_matrix=COV_P), MultivariateNormal(LOC_Q, covariance_matrix=COV_Q)),
    "MVN-Diag": (MultivariateNormal(LOC_P, covariance_matrix=COV_P), MultivariateNormalDiag(LOC_Q, DIAG_Q)),
    "Diag-MVN": (MultivariateNormalDiag(LOC_P, DIAG_P), MultivariateNormal(LOC_Q, covariance_matrix=COV_Q)),
    "Diag-Diag": (MultivariateNormalDiag(np.stack([LOC_P, LOC_Q]), DIAG_P), MultivariateNormalDiag(LOC_Q, DIAG_Q)),
    "Bernoulli-probs": (Bernoulli(probs=np.array([0.3, 0.9])), Bernoulli(probs=0.6)),
    "Bernoulli-logits": (Bernoulli(logits=np.array([-1.0, 2.5])), Bernoulli(logits=0.4)),
    "Categorical": (Categorical(probs=np.array([0.2, 0.5, 0.3])),
                    Categorical(logits=np.array([[0.1, 0.2, -0.5], [1.0, -1.0, 0.0]]))),
    "Gamma": (Gamma(np.array([2.0, 0.7]), 3.0), Gamma(1.5, 1.0)),
    "Beta": (Beta(2.0, np.array([3.0, 0.8])), Beta(1.2, 0.9)),
    "Dirichlet": (Dirichlet(np.array([1.0, 2.0, 3.0])), Dirichlet(np.array([2.0, 2.0, 0.5]))),
    "Exponential": (Exponential(np.array([2.0, 0.3])), Exponential(0.7)),
    "Poisson": (Poisson(np.array([3.0, 0.4])), Poisson(4.5)),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_closed_form_against_monte_carlo(name):
    p, q = PAIRS[name]
    exact = kl_divergence(p, q)
    batch = np.broadcast_shapes(p.batch_shape, q.batch_shape)
    assert np.shape(exact) == batch
    draws = p.expand(batch).sample(np.random.default_rng(0), (100_000,))
    terms = p.log_prob(draws) - q.log_prob(draws)
    stderr = terms.std(0, ddof=1) / np.sqrt(len(terms))
    assert np.all(np.abs(terms.mean(0) - exact) < 4 * stderr + 1e-12)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_kl_of_a_distribution_with_itself_is_zero(name):
    for d in PAIRS[name]:
        assert np.allclose(kl_divergence(d, d), 0.0, atol=1e-12)


def _quad_kl(ref_p, ref_q, low, high):
    """KL by adaptive quadrature of p(x) (log p(x) - log q(x)) with scipy's densities."""
    def integrand(x):
        return ref_p.pdf(x) * (ref_p.logpdf(x) - ref_q.logpdf(x))

    return scipy.integrate.quad(integrand, low, high, epsabs=1e-12, epsrel=1e-10, limit=200)[0]


@given(a=real, b=pos, c=real, d=pos)
@settings(max_examples=10, deadline=None)
def test_normal_against_scipy_quadrature(a, b, c, d):
    ref = _quad_kl(st.norm(a, b), st.norm(c, d), -np.inf, np.inf)
    assert np.isclose(kl_divergence(Normal(a, b), Normal(c, d)), ref, rtol=1e-7, atol=1e-9)


@given(a=pos, b=pos, c=pos, d=pos)
@settings(max_examples=8, deadline=None)
def test_gamma_beta_exponential_against_scipy_quadrature(a, b, c, d):
    a, c = a + 0.5, c + 0.5  # keep the densities bounded at 0 so quad converges to 1e-9
    assert np.isclose(kl_divergence(Gamma(a, b), Gamma(c, d)),
                      _quad_kl(st.gamma(a, scale=1 / b), st.gamma(c, scale=1 / d), 0, np.inf), rtol=1e-6, atol=1e-8)
    assert np.isclose(kl_divergence(Beta(a, b + 0.5), Beta(c, d + 0.5)),
                      _quad_kl(st.beta(a, b + 0.5), st.beta(c, d + 0.5), 0, 1), rtol=1e-6, atol=1e-8)
    assert np.isclose(kl_divergence(Exponential(b), Exponential(d)),
                      _quad_kl(st.expon(scale=1 / b), st.expon(scale=1 / d), 0, np.inf), rtol=1e-7, atol=1e-9)


@given(p=hst.floats(0.0, 1.0), q=hst.floats(1e-6, 1 - 1e-6))
@SETTINGS
def test_bernoulli_against_scipy(p, q):
    ref = st.entropy([p, 1 - p], [q, 1 - q])
    assert np.isclose(kl_divergence(Bernoulli(probs=p), Bernoulli(probs=q)), ref, rtol=1e-9, atol=1e-12)
    logit = lambda x: np.log(x) - np.log1p(-x)  # noqa: E731
    if 0 < p < 1:
        assert np.isclose(kl_divergence(Bernoulli(logits=logit(p)), Bernoulli(logits=logit(q))), ref,
                          rtol=1e-8, atol=1e-12)


@given(data=hst.data(), k=hst.integers(2, 6))
@SETTINGS
def test_categorical_against_scipy(data, k):
    rng = np.random.default_rng(data.draw(hst.integers(0, 2**32 - 1)))
    p, q = rng.dirichlet(np.ones(k)), rng.dirichlet(np.ones(k))
    p[0] = 0.0  # an impossible category in p costs nothing (0 log 0 = 0)
    p /= p.sum()
    assert np.isclose(kl_divergence(Categorical(probs=p), Categorical(probs=q)), st.entropy(p, q), rtol=1e-9)
    assert np.isclose(kl_divergence(Categorical(probs=p), Categorical(logits=np.log(q) + 3.0)), st.entropy(p, q),
                      rtol=1e-9)


@given(a=hst.floats(0.05, 30.0), b=hst.floats(0.05, 30.0))
@SETTINGS
def test_poisson_against_scipy(a, b):
    k = np.arange(200)  # the mass of p beyond 200 is below 1e-80
    log_p, log_q = st.poisson(a).logpmf(k), st.poisson(b).logpmf(k)
    assert np.isclose(kl_divergence(Poisson(a), Poisson(b)), np.sum(np.exp(log_p) * (log_p - log_q)),
                      rtol=1e-8, atol=1e-12)


def test_multivariate_normal_against_an_independent_formula():
    def reference(mp, cp, mq, cq):
        diff = mq - mp
        return 0.5 * (np.trace(np.linalg.solve(cq, cp)) + diff @ np.linalg.solve(cq, diff) - len(mp)
                      + np.linalg.slogdet(cq)[1] - np.linalg.slogdet(cp)[1])

    for name, (cp, cq) in {"MVN-MVN": (COV_P, COV_Q), "MVN-Diag": (COV_P, np.diag(DIAG_Q**2)),
                           "Diag-MVN": (np.diag(DIAG_P**2), COV_Q)}.items():
        p, q = PAIRS[name]
        assert np.isclose(kl_divergence(p, q), reference(LOC_P, cp, LOC_Q, cq), rtol=1e-12), name
    # a Cholesky or precision parameterization is the same distribution, so the same KL
    q_precision = MultivariateNormal(LOC_Q, precision_matrix=np.linalg.inv(COV_Q))
    q_tril = MultivariateNormal(LOC_Q, scale_tril=np.linalg.cholesky(COV_Q))
    p = PAIRS["MVN-MVN"][0]
    assert np.isclose(kl_divergence(p, q_precision), kl_divergence(p, q_tril), rtol=1e-10)


def test_dirichlet_against_scipy_densities():
    p, q = PAIRS["Dirichlet"]
    draws = np.random.default_rng(3).dirichlet(p.concentration, size=100_000)
    terms = st.dirichlet(p.concentration).logpdf(draws.T) - st.dirichlet(q.concentration).logpdf(draws.T)
    assert abs(terms.mean() - kl_divergence(p, q)) < 4 * terms.std() / np.sqrt(len(terms))


@given(loc=real, scale=pos, loc2=real, scale2=pos)
@SETTINGS
def test_gibbs_inequality_and_consistent_families(loc, scale, loc2, scale2):
    kl = kl_divergence(Normal(loc, scale), Normal(loc2, scale2))
    assert kl >= 0
    # the same Gaussians seen as 1-d multivariate ones, diagonal or full
    diag = kl_divergence(MultivariateNormalDiag(np.array([loc]), np.array([scale])),
                         MultivariateNormalDiag(np.array([loc2]), np.array([scale2])))
    full = kl_divergence(MultivariateNormal(np.array([loc]), scale_tril=np.array([[scale]])),
                         MultivariateNormal(np.array([loc2]), scale_tril=np.array([[scale2]])))
    assert np.isclose(diag, kl, rtol=1e-10, atol=1e-14) and np.isclose(full, kl, rtol=1e-10, atol=1e-14)
    # Exponential(r) is Gamma(1, r)
    assert np.isclose(kl_divergence(Exponential(scale), Exponential(scale2)),
                      kl_divergence(Gamma(1.0, scale), Gamma(1.0, scale2)), rtol=1e-10, atol=1e-14)


def test_extreme_logits_and_impossible_outcomes():
    assert kl_divergence(Bernoulli(logits=800.0), Bernoulli(logits=-800.0)) == 800.0
    assert kl_divergence(Bernoulli(logits=-800.0), Bernoulli(logits=800.0)) == 800.0
    assert kl_divergence(Bernoulli(logits=800.0), Bernoulli(logits=800.0)) == 0.0
    assert kl_divergence(Bernoulli(probs=0.5), Bernoulli(probs=0.0)) == np.inf  # p has mass where q has none
    assert np.isclose(kl_divergence(Bernoulli(probs=0.0), Bernoulli(probs=0.3)), -np.log(0.7))
    p, q = Categorical(probs=np.array([0.5, 0.5, 0.0])), Categorical(probs=np.array([0.0, 0.5, 0.5]))
    assert kl_divergence(p, q) == np.inf and kl_divergence(p, p) == 0.0


def test_gradients_against_finite_differences():
    def kl(theta):
        return anp.sum(kl_divergence(Normal(theta[0], anp.exp(theta[1])), Normal(theta[2], anp.exp(theta[3]))))

    def mvn(theta):
        p = MultivariateNormalDiag(theta[:3], anp.exp(theta[3:]))
        return kl_divergence(p, MultivariateNormal(LOC_Q, covariance_matrix=COV_Q))

    for f, x in ((kl, np.array([0.3, -0.2, 1.0, 0.5])), (mvn, np.array([0.1, -0.3, 0.2, 0.0, -0.5, 0.4]))):
        numeric = np.array([(f(x + e) - f(x - e)) / 2e-6 for e in 1e-6 * np.eye(len(x))])
        assert np.allclose(autograd.grad(f)(x), numeric, rtol=1e-6, atol=1e-8)
    # Bernoulli at extreme logits: finite gradients
    g = autograd.grad(lambda a: kl_divergence(Bernoulli(logits=a), Bernoulli(logits=-800.0)))(800.0)
    assert np.isfinite(g)


# ---------------------------------------------------------------- the registry


def test_independent_sums_and_expanded_broadcasts():
    p, q = Normal(np.array([0.0, 1.0, 2.0]), 1.5), Normal(0.5, np.array([1.0, 2.0, 0.5]))
    elementwise = kl_divergence(p, q)
    assert np.isclose(kl_divergence(p.to_event(1), q.to_event(1)), elementwise.sum())
    assert np.allclose(kl_divergence(Normal(0.0, 1.0).expand((4, 3)), q), np.broadcast_to(
        kl_divergence(Normal(0.0, 1.0), q), (4, 3)))
    assert kl_divergence(p, Normal(0.0, 1.0).expand((2, 3))).shape == (2, 3)
    # Independent of an Expanded: both wrappers at once
    assert np.isclose(kl_divergence(Normal(0.0, 1.0).expand((3,)).to_event(1), q.to_event(1)),
                      kl_divergence(Normal(0.0, 1.0), q).sum())
    with pytest.raises(NoClosedFormError, match="event shapes"):
        kl_divergence(Independent(Normal(np.zeros((2, 3)), 1.0), 1), Independent(Normal(np.zeros((2, 3)), 1.0), 2))


def test_subclasses_use_their_parents_formula_and_registrations_win():
    class MyNormal(Normal):
        pass

    assert np.isclose(kl_divergence(MyNormal(0.0, 1.0), Normal(1.0, 1.0)), 0.5)

    class Special(Normal):
        pass

    @register_kl(Special, Normal)
    def _special(p, q):
        return 42.0

    assert kl_divergence(Special(0.0, 1.0), Normal(1.0, 1.0)) == 42.0
    assert np.isclose(kl_divergence(Normal(0.0, 1.0), Special(1.0, 1.0)), 0.5)  # (Normal, Normal) still


def test_unregistered_pairs_name_both_families():
    with pytest.raises(NoClosedFormError, match="Cauchy.*Laplace"):
        kl_divergence(Cauchy(0.0, 1.0), Laplace(0.0, 1.0))
    with pytest.raises(NoClosedFormError, match="Normal.*Poisson"):
        kl_divergence(Normal(0.0, 1.0), Poisson(1.0))


def test_mismatched_events_are_refused():
    with pytest.raises(ValueError, match="categories"):
        kl_divergence(Categorical(probs=np.array([0.5, 0.5])), Categorical(probs=np.array([0.2, 0.3, 0.5])))
    with pytest.raises(ValueError, match="event_shape"):
        kl_divergence(MultivariateNormalDiag(np.zeros(2), np.ones(2)), MultivariateNormalDiag(np.zeros(3), np.ones(3)))
    with pytest.raises(ValueError, match="event_shape"):
        kl_divergence(MultivariateNormal(np.zeros(2), covariance_matrix=np.eye(2)),
                      MultivariateNormalDiag(np.zeros(3), np.ones(3)))
