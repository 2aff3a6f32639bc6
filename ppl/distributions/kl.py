"""KL(p || q) in closed form, by a registry keyed on the pair of families.

``kl_divergence(p, q)`` walks both classes' MROs, so a subclass uses its
parent's formula; ``Independent`` pairs sum the base KL over their
reinterpreted axes and ``Expanded`` ones broadcast. A pair with no formula
raises ``NoClosedFormError`` naming both families.
"""
import autograd.numpy as np

from ..errors import NoClosedFormError
from .continuous import Beta, Exponential, Gamma, Normal
from .discrete import Bernoulli, Categorical, Poisson
from .distribution import Expanded, Independent, broadcast_shapes, broadcast_to, where
from .multivariate import Dirichlet, MultivariateNormal, MultivariateNormalDiag
from .special import betaln, digamma, gammaln

_KL = {}


def register_kl(type_p, type_q):
    """Decorator: ``@register_kl(Normal, Normal) def kl(p, q): ...``."""

    def register(fn):
        _KL[type_p, type_q] = fn
        return fn

    return register


def kl_divergence(p, q):
    """KL(p || q) = E_p[log p - log q], shape: the broadcast batch shape."""
    for type_p in type(p).__mro__:
        for type_q in type(q).__mro__:
            fn = _KL.get((type_p, type_q))
            if fn is not None:
                return fn(p, q)
    raise NoClosedFormError(f"kl_divergence: no closed form registered for {type(p).__name__} || {type(q).__name__}")


def _shape(p, q, value):
    return broadcast_to(value, broadcast_shapes(np.shape(value), p.batch_shape, q.batch_shape))


@register_kl(Expanded, object)
def _kl_expanded_p(p, q):
    return _shape(p, q, kl_divergence(p.base, q))


@register_kl(object, Expanded)
def _kl_expanded_q(p, q):
    return _shape(p, q, kl_divergence(p, q.base))


@register_kl(Independent, Independent)
def _kl_independent(p, q):
    if p.reinterpreted_batch_ndims != q.reinterpreted_batch_ndims or p.event_shape != q.event_shape:
        raise NoClosedFormError(
            f"kl_divergence: no closed form between Independent distributions with different event shapes "
            f"({p.event_shape} over {p.reinterpreted_batch_ndims} axes vs {q.event_shape} over "
            f"{q.reinterpreted_batch_ndims})")
    kl = kl_divergence(p.base, q.base)
    return np.sum(kl, axis=tuple(range(-p.reinterpreted_batch_ndims, 0)))


@register_kl(Normal, Normal)
def _kl_normal(p, q):
    """1/2 [(s_p/s_q)^2 + ((m_p - m_q)/s_q)^2 - 1] - log(s_p/s_q)."""
    ratio = p.scale / q.scale
    return _shape(p, q, 0.5 * (ratio**2 + ((p.loc - q.loc) / q.scale) ** 2 - 1) - np.log(ratio))


def _same_event(p, q):
    if p.event_shape != q.event_shape:
        raise ValueError(f"kl_divergence: p has event_shape {p.event_shape} but q has {q.event_shape}")


@register_kl(MultivariateNormalDiag, MultivariateNormalDiag)
def _kl_mvn_diag(p, q):
    """The univariate Normal formula, summed over the event axis: no matrices."""
    _same_event(p, q)
    ratio = p.scale_diag / q.scale_diag
    kl = 0.5 * (ratio**2 + ((p.loc - q.loc) / q.scale_diag) ** 2 - 1) - np.log(ratio)
    return _shape(p, q, np.sum(broadcast_to(kl, broadcast_shapes(np.shape(kl), p.event_shape)), axis=-1))


@register_kl(MultivariateNormal, MultivariateNormal)
@register_kl(MultivariateNormal, MultivariateNormalDiag)
@register_kl(MultivariateNormalDiag, MultivariateNormal)
def _kl_mvn(p, q):
    """1/2 [tr(Sq^-1 Sp) + (mq - mp)' Sq^-1 (mq - mp) - n + log det Sq - log det Sp]."""
    _same_event(p, q)
    lp, lq = p.scale_tril, q.scale_tril  # MultivariateNormalDiag builds its diagonal matrix
    n = p.event_shape[0]
    lq_inv = np.linalg.inv(lq)
    m = np.matmul(lq_inv, lp)
    trace = np.sum(m**2, axis=(-2, -1))
    diff = q.loc - p.loc
    z = np.sum(lq_inv * diff[..., None, :], axis=-1)
    log_det = 2 * (np.sum(np.log(np.diagonal(lq, axis1=-1, axis2=-2)), -1)
                   - np.sum(np.log(np.diagonal(lp, axis1=-1, axis2=-2)), -1))
    return _shape(p, q, 0.5 * (trace + np.sum(z**2, axis=-1) - n + log_det))


def _weighted_log_ratio(prob, log_p, log_q):
    """prob (log_p - log_q) with 0 (anything) = 0, and +inf where prob > 0 but log_q = -inf."""
    positive = prob > 0
    return where(positive, prob * (where(positive, log_p, 0.0) - where(positive, log_q, 0.0)), 0.0)


@register_kl(Bernoulli, Bernoulli)
def _kl_bernoulli(p, q):
    """sum over x in {0, 1} of p(x) log(p(x)/q(x)), each log from its own parameter: logits give
    -softplus(-+logits) (stable at +-800), probs give log p exactly (-inf at 0, so KL = inf)."""
    (log_p1, log_p0), (log_q1, log_q0) = p._log_probs(), q._log_probs()
    prob = p.probs
    kl = _weighted_log_ratio(prob, log_p1, log_q1) + _weighted_log_ratio(1 - prob, log_p0, log_q0)
    return _shape(p, q, kl)


@register_kl(Categorical, Categorical)
def _kl_categorical(p, q):
    """sum_k p_k (log p_k - log q_k), with 0 log 0 = 0 and +inf where q_k = 0 < p_k."""
    if p.num_categories != q.num_categories:
        raise ValueError(f"kl_divergence: p has {p.num_categories} categories but q has {q.num_categories}")
    return _shape(p, q, np.sum(_weighted_log_ratio(p.probs, p.logits, q.logits), axis=-1))


@register_kl(Gamma, Gamma)
def _kl_gamma(p, q):
    """(a - c) psi(a) - log G(a) + log G(c) + c (log b - log d) + a (d - b) / b, for Gamma(a, b) || Gamma(c, d)."""
    a, b, c, d = p.concentration, p.rate, q.concentration, q.rate
    kl = (a - c) * digamma(a) - gammaln(a) + gammaln(c) + c * (np.log(b) - np.log(d)) + a * (d - b) / b
    return _shape(p, q, kl)


@register_kl(Beta, Beta)
def _kl_beta(p, q):
    """log B(c, d) - log B(a, b) + (a - c) psi(a) + (b - d) psi(b) + (c - a + d - b) psi(a + b)."""
    a, b, c, d = p.concentration1, p.concentration0, q.concentration1, q.concentration0
    kl = (betaln(c, d) - betaln(a, b) + (a - c) * digamma(a) + (b - d) * digamma(b)
          + (c - a + d - b) * digamma(a + b))
    return _shape(p, q, kl)


@register_kl(Dirichlet, Dirichlet)
def _kl_dirichlet(p, q):
    """log G(a0) - sum log G(a_i) - log G(b0) + sum log G(b_i) + sum (a_i - b_i)(psi(a_i) - psi(a0))."""
    a, b = p.concentration, q.concentration
    a0 = np.sum(a, axis=-1)
    kl = (gammaln(a0) - np.sum(gammaln(a), -1) - gammaln(np.sum(b, -1)) + np.sum(gammaln(b), -1)
          + np.sum((a - b) * (digamma(a) - digamma(a0)[..., None]), -1))
    return _shape(p, q, kl)


@register_kl(Exponential, Exponential)
def _kl_exponential(p, q):
    """r - log r - 1 with r = rate_q / rate_p."""
    ratio = q.rate / p.rate
    return _shape(p, q, ratio - np.log(ratio) - 1)


@register_kl(Poisson, Poisson)
def _kl_poisson(p, q):
    """l_p log(l_p / l_q) - l_p + l_q."""
    return _shape(p, q, p.rate * (np.log(p.rate) - np.log(q.rate)) - p.rate + q.rate)
