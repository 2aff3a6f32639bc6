"""Discrete families, on logits where that is the stable form."""
import autograd.numpy as np
import numpy as onp
from autograd.scipy.special import expit, gammaln, logsumexp
from autograd.tracer import getval

from ..kernels import bernoulli_logits_log_prob
from . import constraints
from .distribution import Distribution, broadcast_shapes, broadcast_to, dtype_of, promote_shapes, where


def softplus(x):
    return np.logaddexp(0.0, x)


def _probs_or_logits(name, probs, logits):
    if (probs is None) == (logits is None):
        raise ValueError(f"{name}: give exactly one of probs or logits")
    return probs, logits


class Bernoulli(Distribution):
    """p(1) = probs = sigmoid(logits); log p(x) = x logits - softplus(logits), finite at logits = +-800."""

    support = constraints.boolean

    def __init__(self, probs=None, logits=None, validate_args=True):
        probs, logits = _probs_or_logits("Bernoulli", probs, logits)
        (param,), batch_shape = promote_shapes(probs if logits is None else logits)
        self._probs, self._logits = (param, None) if logits is None else (None, param)
        self.arg_constraints = {"probs": constraints.closed_interval(0.0, 1.0)} if logits is None \
            else {"logits": constraints.real}
        super().__init__(batch_shape, (), validate_args)

    @property
    def probs(self):
        return self._probs if self._probs is not None else expit(self._logits)

    @property
    def logits(self):
        if self._logits is not None:
            return self._logits
        p = np.clip(self._probs, 1e-300, 1.0)
        return np.log(p) - np.log1p(-np.clip(self._probs, 0.0, 1 - 1e-16))

    def sample(self, rng, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        return (rng.random(shape) < onp.asarray(getval(self.probs))).astype(dtype_of(self._param))

    @property
    def _param(self):
        return self._probs if self._probs is not None else self._logits

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        if self._logits is not None:
            lp = bernoulli_logits_log_prob(value, self._logits)
        else:
            lp = _xlogy(value, self._probs) + _xlogy(1 - value, 1 - self._probs)
        if not self.validate_args:  # validation already refused values outside {0, 1}
            lp = where((value == 0) | (value == 1), lp, -np.inf)
        return broadcast_to(lp, broadcast_shapes(np.shape(lp), self.batch_shape))

    @property
    def mean(self):
        return broadcast_to(self.probs, self.batch_shape)

    @property
    def variance(self):
        p = self.probs
        return broadcast_to(p * (1 - p), self.batch_shape)

    def entropy(self):
        if self._logits is not None:
            x = self._logits
            return broadcast_to(softplus(x) - x * expit(x), self.batch_shape)
        p = self._probs
        return broadcast_to(-_xlogx(p) - _xlogx(1 - p), self.batch_shape)


def _xlogx(p):
    return where(p > 0, p * np.log(where(p > 0, p, 1.0)), 0.0)


class Categorical(Distribution):
    """p(k) = probs[k] = softmax(logits)[k], k in {0, ..., K-1}; the value is an integer index."""

    def __init__(self, probs=None, logits=None, validate_args=True):
        probs, logits = _probs_or_logits("Categorical", probs, logits)
        (param,), shape = promote_shapes(probs if logits is None else logits)
        if len(shape) == 0:
            raise ValueError("Categorical: probs/logits need a last axis of categories")
        if logits is None:
            self.arg_constraints = {"probs": constraints.simplex}
            self._logits = np.log(where(param > 0, param, 1.0)) + where(param > 0, 0.0, -np.inf)
            self._probs = param
        else:
            self.arg_constraints = {"logits": constraints.real_vector}
            self._logits = param - logsumexp(param, axis=-1, keepdims=True)
            self._probs = None
        self.num_categories = shape[-1]
        super().__init__(shape[:-1], (), validate_args)

    @property
    def support(self):
        return constraints.integer_interval(0, self.num_categories - 1)

    @property
    def logits(self):
        return self._logits

    @property
    def probs(self):
        return self._probs if self._probs is not None else np.exp(self._logits)

    def sample(self, rng, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        p = onp.broadcast_to(onp.asarray(getval(self.probs)), shape + (self.num_categories,))
        cdf = onp.cumsum(p, axis=-1)
        u = rng.random(shape + (1,)) * cdf[..., -1:]
        return onp.minimum(onp.sum(cdf <= u, axis=-1), self.num_categories - 1).astype(onp.int64)

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        value = onp.asarray(getval(value))
        inside = (value >= 0) & (value < self.num_categories) & (value == onp.floor(value))
        index = onp.where(inside, value, 0).astype(onp.int64)
        shape = broadcast_shapes(index.shape, self.batch_shape)
        logits = broadcast_to(self._logits, shape + (self.num_categories,))
        index = onp.broadcast_to(index, shape)
        lp = np.sum(logits * (onp.arange(self.num_categories) == index[..., None]), axis=-1)
        return where(onp.broadcast_to(inside, shape), lp, -np.inf)

    @property
    def mean(self):
        k = onp.arange(self.num_categories)
        return np.sum(self.probs * k, axis=-1)

    @property
    def variance(self):
        k = onp.arange(self.num_categories)
        return np.sum(self.probs * k**2, axis=-1) - self.mean**2

    def entropy(self):
        p = self.probs
        return -np.sum(where(p > 0, p * self._logits, 0.0), axis=-1)


class Binomial(Distribution):
    """p(k) = C(n, k) p^k (1-p)^(n-k), n = total_count."""

    def __init__(self, total_count=1, probs=None, logits=None, validate_args=True):
        probs, logits = _probs_or_logits("Binomial", probs, logits)
        (self.total_count, param), batch_shape = promote_shapes(total_count, probs if logits is None else logits)
        self._logits = param if logits is not None else None
        self._probs = param if logits is None else None
        self.arg_constraints = {"total_count": constraints.nonnegative_integer,
                                **({"probs": constraints.closed_interval(0.0, 1.0)} if logits is None
                                   else {"logits": constraints.real})}
        super().__init__(batch_shape, (), validate_args)

    @property
    def probs(self):
        return self._probs if self._probs is not None else expit(self._logits)

    @property
    def logits(self):
        if self._logits is not None:
            return self._logits
        return np.log(self._probs) - np.log1p(-self._probs)

    @property
    def support(self):
        return constraints.integer_interval(0, self.total_count)

    def sample(self, rng, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        n = onp.broadcast_to(onp.asarray(getval(self.total_count)).astype(onp.int64), shape)
        return rng.binomial(n, onp.broadcast_to(onp.asarray(getval(self.probs)), shape)).astype(float)

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        n = self.total_count
        k = np.clip(value, 0, n)
        log_comb = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
        if self._logits is not None:  # k log p + (n-k) log(1-p) = k logits - n softplus(logits)
            lp = log_comb + k * self._logits - n * softplus(self._logits)
        else:
            p = self._probs
            lp = log_comb + _xlogy(k, p) + _xlogy(n - k, 1 - p)
        inside = (value >= 0) & (value <= n) & (value == np.floor(value))
        lp = where(inside, lp, -np.inf)
        return broadcast_to(lp, broadcast_shapes(np.shape(lp), self.batch_shape))

    @property
    def mean(self):
        return broadcast_to(self.total_count * self.probs, self.batch_shape)

    @property
    def variance(self):
        p = self.probs
        return broadcast_to(self.total_count * p * (1 - p), self.batch_shape)

    def entropy(self):
        """Exact, by summing over the support 0..max(total_count)."""
        n_max = int(onp.max(getval(self.total_count)))
        k = onp.arange(n_max + 1).reshape((-1,) + (1,) * len(self.batch_shape))
        lp = Binomial(self.total_count, logits=self.logits, validate_args=False).log_prob(k)
        return -np.sum(where(np.isfinite(lp), np.exp(lp) * lp, 0.0), axis=0)


def _xlogy(x, y):
    return where(x == 0, 0.0, x * np.log(where(x == 0, 1.0, y)))


class Poisson(Distribution):
    """p(k) = rate^k exp(-rate) / k!."""

    arg_constraints = {"rate": constraints.positive}
    support = constraints.nonnegative_integer

    def __init__(self, rate, validate_args=True):
        (self.rate,), batch_shape = promote_shapes(rate)
        super().__init__(batch_shape, (), validate_args)

    def sample(self, rng, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        return rng.poisson(onp.broadcast_to(onp.asarray(getval(self.rate)), shape)).astype(float)

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        inside = (value >= 0) & (value == np.floor(value))
        k = where(inside, value, 0.0)
        lp = _xlogy(k, self.rate) - self.rate - gammaln(k + 1)
        lp = where(inside, lp, -np.inf)
        return broadcast_to(lp, broadcast_shapes(np.shape(lp), self.batch_shape))

    @property
    def mean(self):
        return broadcast_to(self.rate, self.batch_shape)

    @property
    def variance(self):
        return broadcast_to(self.rate, self.batch_shape)

    def entropy(self):
        """Exact to 1e-12: the sum over k up to where the tail mass is negligible."""
        rate = onp.asarray(getval(self.rate), dtype=float)
        k_max = int(onp.max(rate + 20 * onp.sqrt(rate) + 30))
        k = onp.arange(k_max + 1).reshape((-1,) + (1,) * len(self.batch_shape))
        lp = Poisson(self.rate, validate_args=False).log_prob(k)
        return -np.sum(np.exp(lp) * lp, axis=0)
