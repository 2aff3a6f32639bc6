"""Discrete families: Bernoulli, Categorical, Binomial, Poisson, NegativeBinomial, GammaPoisson, Multinomial.

Log-probabilities are computed on logits where that is the stable form
(x logits - softplus(logits) is finite at logits = +-800) and with 0 log 0 = 0
where probabilities may be exactly 0 or 1. Draws are not reparameterized: they
are float arrays of 0/1 or counts in the parameters' dtype (Categorical:
int64 indices). Entropies are closed forms (Bernoulli, Categorical) or exact
sums over the support (Binomial, Poisson).
"""
import autograd.numpy as np
import numpy as onp
from autograd.tracer import getval

from ..errors import NoClosedFormError
from ..kernels import LOG_SQRT_2PI, bernoulli_logits_log_prob, softplus
from . import constraints
from .special import expit, gammaln, logsumexp
from .distribution import (Distribution, broadcast_shapes, broadcast_to, dtype_of, full_batch, promote_shapes,
                           where)


def _logit(probs):
    """log p - log(1 - p), with p kept a hair inside (0, 1) so the logit stays finite."""
    finfo = onp.finfo(dtype_of(probs))
    p = np.clip(probs, float(finfo.tiny), 1.0 - float(finfo.epsneg))
    return np.log(p) - np.log1p(-p)


def _log(p):
    """log p without a divide-by-zero warning: log 0 = -inf."""
    return where(p > 0, np.log(where(p > 0, p, 1.0)), -np.inf)


def _probs_or_logits(name, probs, logits):
    if (probs is None) == (logits is None):
        raise ValueError(f"{name}: give exactly one of probs or logits")
    return probs, logits


class _ProbsOrLogits:
    """``probs`` and ``logits`` for a family given either one (kept as given; the other derived)."""

    @property
    def probs(self):
        return self._probs if self._probs is not None else expit(self._logits)

    @property
    def logits(self):
        return self._logits if self._logits is not None else _logit(self._probs)


class Bernoulli(_ProbsOrLogits, Distribution):
    """p(1) = probs = sigmoid(logits); log p(x) = x logits - softplus(logits), finite at logits = +-800."""

    support = constraints.boolean

    def __init__(self, probs=None, logits=None, validate_args=True):
        probs, logits = _probs_or_logits("Bernoulli", probs, logits)
        (param,), batch_shape = promote_shapes(probs if logits is None else logits)
        self._probs, self._logits = (param, None) if logits is None else (None, param)
        self.arg_constraints = {"probs": constraints.closed_interval(0.0, 1.0)} if logits is None \
            else {"logits": constraints.real}
        super().__init__(batch_shape, (), validate_args)

    def _log_probs(self):
        """(log p(1), log p(0)); exact at probs 0 and 1 (-inf), stable at logits +-800."""
        if self._logits is not None:
            return -softplus(-self._logits), -softplus(self._logits)
        return _log(self._probs), _log(1 - self._probs)

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
            # validated values are 0 or 1, which the kernel's gradient would otherwise check again
            lp = bernoulli_logits_log_prob(value, self._logits, binary=True if self.validate_args else None)
        else:
            lp = _xlogy(value, self._probs) + _xlogy(1 - value, 1 - self._probs)
        if not self.validate_args:  # validation already refused values outside {0, 1}
            lp = where((value == 0) | (value == 1), lp, -np.inf)
        return full_batch(lp, self.batch_shape)

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
        return broadcast_to(_entropy_terms(p, _log(p)) + _entropy_terms(1 - p, _log(1 - p)), self.batch_shape)


def _entropy_terms(probs, log_probs):
    """-p log p, elementwise, with 0 log 0 = 0 (and no 0 * inf in the value or the gradient)."""
    return where(probs > 0, -probs * where(probs > 0, log_probs, 0.0), 0.0)


class Categorical(Distribution):
    """p(k) = probs[k] = softmax(logits)[k], k in {0, ..., K-1}; the value is an integer index."""

    def __init__(self, probs=None, logits=None, validate_args=True):
        probs, logits = _probs_or_logits("Categorical", probs, logits)
        (param,), shape = promote_shapes(probs if logits is None else logits)
        if len(shape) == 0:
            raise ValueError("Categorical: probs/logits need a last axis of categories")
        if logits is None:
            self.arg_constraints = {"probs": constraints.simplex}
            self._logits = _log(param)
            self._probs = param
        else:
            self.arg_constraints = {"logits": constraints.real_vector}
            self._logits, self._probs = param, None  # validated as given, normalized below
        self.num_categories = shape[-1]
        super().__init__(shape[:-1], (), validate_args)
        if logits is not None:
            self._logits = param - logsumexp(param, axis=-1, keepdims=True)

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
        # select with where, not a one-hot product: logits may be -inf where probs are 0
        lp = np.sum(where(onp.arange(self.num_categories) == index[..., None], logits, 0.0), axis=-1)
        return where(onp.broadcast_to(inside, shape), lp, -np.inf)

    def _indices(self):
        """0, 1, ..., K-1 in the parameters' dtype (an int64 arange would turn float32 into float64)."""
        return onp.arange(self.num_categories, dtype=dtype_of(self._logits))

    @property
    def mean(self):
        return np.sum(self.probs * self._indices(), axis=-1)

    @property
    def variance(self):
        k = self._indices()
        return np.sum(self.probs * k**2, axis=-1) - self.mean**2

    def entropy(self):
        return np.sum(_entropy_terms(self.probs, self._logits), axis=-1)


class Binomial(_ProbsOrLogits, Distribution):
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
    def support(self):
        return constraints.integer_interval(0, self.total_count)

    def sample(self, rng, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        n = onp.broadcast_to(onp.asarray(getval(self.total_count)).astype(onp.int64), shape)
        probs = onp.broadcast_to(onp.asarray(getval(self.probs)), shape)
        return rng.binomial(n, probs).astype(dtype_of(self.total_count, self._param))

    @property
    def _param(self):
        return self._probs if self._probs is not None else self._logits

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
        # values outside the support are -inf (validation off); this is what guards the clip above
        inside = (value >= 0) & (value <= n) & (value == np.floor(value))
        lp = where(inside, lp, -np.inf)
        return full_batch(lp, self.batch_shape)

    @property
    def mean(self):
        return broadcast_to(self.total_count * self.probs, self.batch_shape)

    @property
    def variance(self):
        p = self.probs
        return broadcast_to(self.total_count * p * (1 - p), self.batch_shape)

    def entropy(self):
        """-sum_k p(k) log p(k), summed exactly over k within 20 sd + 30 of the mean.

        The mass outside that window is below 1e-19 (Bernstein's inequality). log p(k) comes
        from Loader's saddle-point form (``_binomial_log_pmf``), exact to rounding at any n,
        so the sum is exact to 1e-12 where three gammaln's would lose 1e-9 at n = 1e6.
        Raises ``NoClosedFormError`` when the window would hold more than 5e7 terms in all.
        """
        n = self.total_count
        if self._logits is not None:  # both tails from the logits: 1 - p would round to 0
            p, q = expit(self._logits), expit(-self._logits)
        else:
            p, q = self._probs, 1 - self._probs
        n_, p_ = onp.asarray(getval(n), dtype=float), onp.asarray(getval(p), dtype=float)
        mean, sd = n_ * p_, onp.sqrt(n_ * p_ * (1 - p_))
        low = onp.clip(onp.floor(mean - 20 * sd - 30), 0, n_)
        high = onp.clip(onp.ceil(mean + 20 * sd + 30), 0, n_)
        k = _window(low, high, self.batch_shape, "Binomial", dtype_of(n, p))
        return broadcast_to(_entropy_from_log_probs(_binomial_log_pmf(k, n, p, q)), self.batch_shape)


def _binomial_log_pmf(k, n, p, q):
    """log C(n, k) p^k q^(n-k) without the cancellation of log n! - log k! - log (n-k)! at large n.

    Loader (2000), "Fast and accurate computation of binomial probabilities": for 0 < k < n,
        log p(k) = s(n) - s(k) - s(n-k) - D(k, np) - D(n-k, nq) + 1/2 log(n / (2 pi k (n-k)))
    with s the Stirling error and D(x, M) = x log(x/M) + M - x (``_deviance``), both small
    and computed without cancellation. At k = 0 and k = n, log C = 0. Outside 0..n: -inf.
    """
    interior = (k > 0) & (k < n) & (p > 0) & (q > 0)
    # safe stand-ins where a branch is not taken, so neither values nor gradients see log 0
    k_in, n_k_in = where(interior, k, 1.0), where(interior, n - k, 1.0)
    n_in = where(interior, n, 2.0)
    np_in, nq_in = where(interior, n * p, 1.0), where(interior, n * q, 1.0)
    inner = (_stirling_error(n_in) - _stirling_error(k_in) - _stirling_error(n_k_in)
             - _deviance(k_in, np_in) - _deviance(n_k_in, nq_in)
             + 0.5 * np.log(n_in / (2 * onp.pi * k_in * n_k_in)))
    edge = _xlogy(k, p) + _xlogy(n - k, q)  # k = 0 or n (or p, q at 0 or 1): log C(n, k) = 0 or unused
    log_comb_zero = (k == 0) | (k == n)
    lp = where(interior, inner, where(log_comb_zero, edge, -np.inf))
    return where((k >= 0) & (k <= n), lp, -np.inf)


def _stirling_error(x):
    """s(x) = log x! - [(x + 1/2) log x - x + 1/2 log(2 pi)], for x >= 1.

    Below 15 directly from gammaln (all terms are small there); above, the asymptotic series,
    whose first omitted term is below 1e-16 at x = 15.
    """
    small = x < 15
    xs, xl = where(small, x, 1.0), where(small, 15.0, x)
    direct = gammaln(xs + 1) - (xs + 0.5) * np.log(xs) + xs - LOG_SQRT_2PI
    inv, inv2 = 1 / xl, 1 / xl**2
    series = inv * (1 / 12 - inv2 * (1 / 360 - inv2 * (1 / 1260 - inv2 * (1 / 1680 - inv2 / 1188))))
    return where(small, direct, series)


def _deviance(x, m):
    """D(x, M) = x log(x/M) + M - x for x, M > 0; near x = M by the series in v = (x-M)/(x+M),

        D = (x - M) v + 2 x (v^3/3 + v^5/5 + ...),

    which keeps full relative precision where the direct form cancels to nothing."""
    v = (x - m) / (x + m)
    near = np.abs(v) < 0.1
    v_near = where(near, v, 0.0)
    v2, power, tail = v_near**2, v_near, 0.0
    for j in range(1, 12):  # |v| < 0.1: the first omitted term is below 1e-22 of the leading one
        power = power * v2
        tail = tail + power / (2 * j + 1)
    series = (x - m) * v_near + 2 * x * tail
    x_far, m_far = where(near, 1.0, x), where(near, 1.0, m)
    direct = x_far * (np.log(x_far) - np.log(m_far)) + m_far - x_far  # x / M could overflow
    return where(near, series, direct)


def _window(low, high, batch_shape, family, dtype):
    """Integers low + 0, 1, ..., on a leading axis, as wide as the widest high - low.

    Entries past an element's own ``high`` are harmless: its log-probability there is
    negligible (inside the support) or -inf (outside).
    """
    low = onp.broadcast_to(low, batch_shape)
    width = int(onp.max(high - low, initial=0)) + 1
    if width * max(1, int(onp.prod(batch_shape))) > 5e7:
        raise NoClosedFormError(f"{family}.entropy: the exact sum would need {width} terms per element")
    return (low + onp.arange(width).reshape((-1,) + (1,) * len(batch_shape))).astype(dtype)


def _entropy_from_log_probs(log_probs):
    """-sum_k p(k) log p(k) over the leading axis of log p(k), where 0 log 0 = 0."""
    return np.sum(_entropy_terms(np.exp(log_probs), log_probs), axis=0)


def _xlogy(x, y):
    """x log y with 0 log 0 = 0 and x log 0 = -inf for x > 0, without a warning in either."""
    with onp.errstate(divide="ignore"):  # log 0 = -inf is the answer here, not an accident
        return where(x == 0, 0.0, x * np.log(where(x == 0, 1.0, y)))


class Poisson(Distribution):
    """p(k) = rate^k exp(-rate) / k!; give exactly one of ``rate`` or ``log_rate``.

    ``log_rate`` is Stan's ``poisson_log``: log p(k) = k log_rate - exp(log_rate) - log k!,
    with no exp/log round trip (finite and exact where exp(log_rate) would underflow).
    """

    support = constraints.nonnegative_integer

    def __init__(self, rate=None, log_rate=None, validate_args=True):
        if (rate is None) == (log_rate is None):
            raise ValueError("Poisson: give exactly one of rate or log_rate")
        (param,), batch_shape = promote_shapes(rate if log_rate is None else log_rate)
        self._rate, self._log_rate = (param, None) if log_rate is None else (None, param)
        self.arg_constraints = {"rate": constraints.positive} if log_rate is None else {"log_rate": constraints.real}
        super().__init__(batch_shape, (), validate_args)

    @property
    def rate(self):
        return self._rate if self._rate is not None else np.exp(self._log_rate)

    @property
    def log_rate(self):
        return self._log_rate if self._log_rate is not None else np.log(self._rate)

    def sample(self, rng, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        draws = rng.poisson(onp.broadcast_to(onp.asarray(getval(self.rate)), shape))
        return draws.astype(dtype_of(self._rate if self._rate is not None else self._log_rate))

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        inside = (value >= 0) & (value == np.floor(value))
        k = where(inside, value, 0.0)
        if self._log_rate is not None:
            lp = k * self._log_rate - np.exp(self._log_rate) - gammaln(k + 1)
        else:
            lp = _xlogy(k, self._rate) - self._rate - gammaln(k + 1)
        lp = where(inside, lp, -np.inf)
        return full_batch(lp, self.batch_shape)

    @property
    def mean(self):
        return broadcast_to(self.rate, self.batch_shape)

    @property
    def variance(self):
        return broadcast_to(self.rate, self.batch_shape)

    def entropy(self):
        """-sum_k p(k) log p(k): summed exactly for rate < 1000, an asymptotic series above.

        Below 1000 the sum runs over k <= rate + 20 sqrt(rate) + 30 (the rest of the mass is below
        1e-19, by Bernstein's inequality). Above, the series

            H = 1/2 log(2 pi e rate) - 1/(12 rate) - 1/(24 rate^2) - 19/(360 rate^3) + O(rate^-4)

        is exact to 1e-12.
        """
        rate = self.rate
        small = rate < _POISSON_SERIES_FROM
        small_rate = where(small, rate, 1.0)
        large_rate = where(small, _POISSON_SERIES_FROM, rate)
        r = onp.asarray(getval(small_rate), dtype=float)
        k = _window(onp.zeros(self.batch_shape), r + 20 * onp.sqrt(r) + 30, self.batch_shape, "Poisson",
                    dtype_of(rate))
        exact = _entropy_from_log_probs(Poisson(small_rate, validate_args=False).log_prob(k))
        series = (0.5 * np.log(2 * onp.pi * onp.e * large_rate) - 1 / (12 * large_rate)
                  - 1 / (24 * large_rate**2) - 19 / (360 * large_rate**3))
        return broadcast_to(where(small, exact, series), self.batch_shape)


_POISSON_SERIES_FROM = 1000.0


def _negative_binomial_log_pmf(k, concentration, log_q0, log_q1):
    """log C(k + a - 1, k) q0^a q1^k, a = concentration, q0 = a / (mean + a), q1 = mean / (mean + a).

    The caller gives log q0 and log q1 in the form that is stable for its parameters (log1p, never
    log of a ratio that rounds to 1).
    """
    a = concentration
    return _log_rising_factorial(a, k) - gammaln(k + 1) + a * log_q0 + _xlogy_log(k, log_q1)


def _log_rising_factorial(a, k):
    """log Gamma(a + k) - log Gamma(a), without the cancellation of two huge gammaln's at large a.

    With x = a - 1 and log Gamma(x + 1) = (x + 1/2) log x - x + log sqrt(2 pi) + s(x) (s the Stirling
    error), the difference is (x + 1/2) log1p(k / x) + k log(x + k) - k + s(x + k) - s(x): every term is
    of the size of the answer. Below a = 16 the two gammaln's are small and exact.
    """
    large = a >= 16
    a_small, x = where(large, 1.0, a), where(large, a, 16.0) - 1
    direct = gammaln(k + a_small) - gammaln(a_small)
    series = (x + 0.5) * np.log1p(k / x) + _xlogy(k, x + k) - k + _stirling_error(x + k) - _stirling_error(x)
    return where(large, series, direct)


def _xlogy_log(k, log_q):
    """k log q given log q, with 0 * (-inf) = 0."""
    return where(k == 0, 0.0, k * log_q)


class NegativeBinomial(Distribution):
    """Stan's ``neg_binomial_2(mu, phi)``: a Poisson whose rate is Gamma(phi, phi / mu).

        p(k) = C(k + phi - 1, k) (phi / (mu + phi))^phi (mu / (mu + phi))^k,

    with mean mu and variance mu + mu^2 / phi (phi = concentration; phi -> inf is Poisson(mu)).
    Same law as scipy's ``nbinom(n=phi, p=phi / (phi + mu))``.
    """

    arg_constraints = {"mean": constraints.positive, "concentration": constraints.positive}
    support = constraints.nonnegative_integer

    def __init__(self, mean, concentration, validate_args=True):
        (self._mean, self.concentration), batch_shape = promote_shapes(mean, concentration)
        super().__init__(batch_shape, (), validate_args)

    def _log_q(self):
        """(log phi / (mu + phi), log mu / (mu + phi)), each through log1p of a ratio."""
        mu, phi = self._mean, self.concentration
        return -np.log1p(mu / phi), -np.log1p(phi / mu)

    def _gamma_rate(self):
        return self.concentration / self._mean

    def sample(self, rng, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        a = onp.broadcast_to(onp.asarray(getval(self.concentration), dtype=float), shape)
        b = onp.broadcast_to(onp.asarray(getval(self._gamma_rate()), dtype=float), shape)
        rate = rng.standard_gamma(a, shape) / b
        return rng.poisson(rate).astype(dtype_of(self._mean, self.concentration))

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        inside = (value >= 0) & (value == np.floor(value))
        k = where(inside, value, 0.0)
        log_q0, log_q1 = self._log_q()
        lp = _negative_binomial_log_pmf(k, self.concentration, log_q0, log_q1)
        return full_batch(where(inside, lp, -np.inf), self.batch_shape)

    @property
    def mean(self):
        return broadcast_to(self._mean, self.batch_shape)

    @property
    def variance(self):
        mu = self._mean
        return broadcast_to(mu + mu**2 / self.concentration, self.batch_shape)


class GammaPoisson(NegativeBinomial):
    """k ~ Poisson(lambda), lambda ~ Gamma(concentration, rate): NegativeBinomial(mean=a/b, concentration=a).

        p(k) = C(k + a - 1, k) (b / (1 + b))^a (1 / (1 + b))^k.
    """

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}

    def __init__(self, concentration, rate=1.0, validate_args=True):
        (self.concentration, self.rate), batch_shape = promote_shapes(concentration, rate)
        self._mean = self.concentration / self.rate
        Distribution.__init__(self, batch_shape, (), validate_args)

    def _log_q(self):
        b = self.rate
        return -np.log1p(1 / b), -np.log1p(b)

    def _gamma_rate(self):
        return self.rate


class _MultinomialSupport(constraints.Constraint):
    """Vectors of nonnegative integer counts summing to ``total_count`` (one event axis)."""

    event_dim = 1
    is_discrete = True

    def __init__(self, total_count):
        self.total_count = total_count

    def check(self, x):
        counts_ok = onp.all((x >= 0) & (x == onp.floor(x)), axis=-1)
        return counts_ok & (onp.sum(x, axis=-1) == getval(self.total_count))

    def __repr__(self):
        return f"multinomial({self.total_count})"


class Multinomial(_ProbsOrLogits, Distribution):
    """Counts of ``total_count`` draws over K categories:

        p(x) = n! / prod_k x_k! prod_k p_k^x_k,  sum_k x_k = n,  event_shape (K,).

    Give exactly one of ``probs`` (on the simplex) or ``logits`` (normalized by log-sum-exp,
    so the log-density needs no log of a probability that underflowed).
    """

    def __init__(self, total_count=1, probs=None, logits=None, validate_args=True):
        probs, logits = _probs_or_logits("Multinomial", probs, logits)
        (param,), shape = promote_shapes(probs if logits is None else logits)
        if len(shape) == 0:
            raise ValueError("Multinomial: probs/logits need a last axis of categories")
        (self.total_count,), count_shape = promote_shapes(total_count)
        self.arg_constraints = {"total_count": constraints.nonnegative_integer,
                                **({"probs": constraints.simplex} if logits is None
                                   else {"logits": constraints.real_vector})}
        self._probs, self._logits = (param, None) if logits is None else (None, param)
        self.num_categories = shape[-1]
        try:
            batch_shape = broadcast_shapes(shape[:-1], count_shape)
        except ValueError:
            raise ValueError(f"Multinomial: total_count of shape {count_shape} does not broadcast with the batch "
                             f"shape {shape[:-1]} of probs/logits") from None
        super().__init__(batch_shape, (self.num_categories,), validate_args)

    @property
    def support(self):
        return _MultinomialSupport(self.total_count)

    @property
    def _param(self):
        return self._probs if self._probs is not None else self._logits

    def _log_probs(self):
        if self._logits is not None:
            return self._logits - logsumexp(self._logits, axis=-1, keepdims=True)
        return _log(self._probs)

    @property
    def probs(self):
        return self._probs if self._probs is not None else np.exp(self._log_probs())

    @property
    def logits(self):
        return self._log_probs()

    def sample(self, rng, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        p = onp.asarray(getval(self.probs), dtype=float)
        p = p / p.sum(axis=-1, keepdims=True)  # numpy checks sum(p[:-1]) <= 1 strictly
        n = onp.broadcast_to(onp.asarray(getval(self.total_count)).astype(onp.int64), shape)
        draws = rng.multinomial(n, onp.broadcast_to(p, shape + (self.num_categories,)))
        return draws.astype(dtype_of(self.total_count, self._param))

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        n = self.total_count
        log_p = self._log_probs()
        if self._logits is not None:
            terms = _xlogy_log(value, log_p)
        else:
            terms = _xlogy(value, self._probs)
        lp = gammaln(n + 1) + np.sum(terms - gammaln(value + 1), axis=-1)
        if not self.validate_args:
            lp = where(self.support.check(getval(value)), lp, -np.inf)
        return full_batch(lp, self.batch_shape)

    @property
    def mean(self):
        return broadcast_to(self.probs * np.expand_dims(self.total_count, -1) if np.ndim(self.total_count)
                            else self.probs * self.total_count, self.batch_shape + self.event_shape)

    @property
    def variance(self):
        p = self.probs
        n = np.expand_dims(self.total_count, -1) if np.ndim(self.total_count) else self.total_count
        return broadcast_to(n * p * (1 - p), self.batch_shape + self.event_shape)
