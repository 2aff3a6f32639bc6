"""Univariate continuous families.

Each stores its parameters as given (arrays stay arrays, autograd boxes stay
boxes, Python floats stay weakly typed so float32 stays float32) and
broadcasts them in the math. Reparameterized draws transform standard noise
with the parameters, so autograd differentiates a draw w.r.t. them.
"""
import math

import autograd.numpy as np
import numpy as onp
from autograd.extend import defvjp, primitive
from autograd.tracer import getval

from .special import _on_first_use, betaln, digamma, expit, gammaln

from ..kernels import normal_entropy, normal_log_prob, normal_rsample, softplus
from .cdfs import log_ndtr, ndtr, ndtri, student_t_cdf, student_t_icdf
from . import constraints
from .distribution import Distribution, broadcast_to, dtype_of, full_batch, promote_shapes, where

LOG_SQRT_2PI = float(0.5 * np.log(2 * np.pi))  # a Python float: weakly typed, float32 stays float32
LOG_PI = float(np.log(np.pi))
LOG_2 = float(np.log(2.0))
SQRT_2_OVER_PI = float(np.sqrt(2 / np.pi))
SQRT_2 = math.sqrt(2.0)
EULER_GAMMA = 0.5772156649015329
erf = _on_first_use("autograd.scipy.special", "erf")
_F32, _F64 = onp.dtype(onp.float32), onp.dtype(onp.float64)


def _noise(rng, kind, shape, dtype):
    """Standard noise of ``shape`` in ``dtype`` (a scalar when shape is ())."""
    dtype = dtype if dtype == _F32 else _F64
    shape = shape or None  # a Python float for a scalar draw: cheaper than a 0-d array
    if kind == "normal":
        draw = rng.standard_normal(shape, dtype=dtype)
    elif kind == "uniform":
        draw = rng.random(shape, dtype=dtype)
    elif kind == "exponential":
        draw = rng.standard_exponential(shape, dtype=dtype)
    else:
        raise ValueError(kind)
    return draw


class LocationScale(Distribution):
    """A family with a real ``loc`` and a positive ``scale`` (reparameterized); subclasses give the math."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc=0.0, scale=1.0, validate_args=True):
        if type(loc) is float and type(scale) is float:  # scalar parameters: no arrays, no shapes
            self.loc, self.scale, self.batch_shape, self.event_shape = loc, scale, (), ()
            self.validate_args = validate_args
            if validate_args and not (math.isfinite(loc) and scale > 0):
                self._validate_params()  # raises, naming the parameter
            return
        (self.loc, self.scale), batch_shape = promote_shapes(loc, scale)
        super().__init__(batch_shape, (), validate_args)

    def expand(self, batch_shape):
        """Broadcast the parameters where an axis of size 1 grows; prepend axes lazily otherwise.

        Either way a draw's noise is laid out in the order of the expanded
        batch, so the same noise gives the same value whether a leading axis
        (a particle, a chain) came from the parameters or from an expansion:
        what lets a loop over particles reproduce the vectorized draws.
        """
        batch_shape = tuple(batch_shape)
        grows = any(old == 1 and new != 1 for old, new in zip(self.batch_shape[::-1], batch_shape[::-1]))
        if not grows:
            return super().expand(batch_shape)
        expanded = type(self)(broadcast_to(self.loc, batch_shape), broadcast_to(self.scale, batch_shape),
                              validate_args=False)
        expanded.validate_args = self.validate_args
        return expanded


class Normal(LocationScale):
    """p(x) = exp(-(x - loc)^2 / (2 scale^2)) / (scale sqrt(2 pi))."""

    def sample(self, rng, sample_shape=()):
        if not sample_shape and type(self.loc) is float and type(self.scale) is float:
            return self.loc + self.scale * rng.standard_normal()  # the same draw as below, as a Python float
        shape = tuple(sample_shape) + self.batch_shape
        return normal_rsample(self.loc, self.scale, _noise(rng, "normal", shape, dtype_of(self.loc, self.scale)))

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        return full_batch(normal_log_prob(value, self.loc, self.scale), self.batch_shape)

    @property
    def mean(self):
        return broadcast_to(self.loc, self.batch_shape)

    @property
    def variance(self):
        return broadcast_to(self.scale**2, self.batch_shape)

    def entropy(self):
        return broadcast_to(normal_entropy(self.scale), self.batch_shape)

    def cdf(self, value):
        return full_batch(ndtr((value - self.loc) / self.scale), self.batch_shape)

    def log_cdf(self, value):
        return full_batch(log_ndtr((value - self.loc) / self.scale), self.batch_shape)

    def log_survival(self, value):
        return full_batch(log_ndtr((self.loc - value) / self.scale), self.batch_shape)

    def icdf(self, p):
        return full_batch(self.loc + self.scale * ndtri(p), self.batch_shape)


class LogNormal(LocationScale):
    """log x ~ Normal(loc, scale): p(x) = exp(-(log x - loc)^2 / (2 scale^2)) / (x scale sqrt(2 pi)), x > 0."""

    support = constraints.positive

    def sample(self, rng, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        return np.exp(self.loc + self.scale * _noise(rng, "normal", shape, dtype_of(self.loc, self.scale)))

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        inside = value > 0
        log_x = np.log(where(inside, value, 1.0))
        z = (log_x - self.loc) / self.scale
        lp = -0.5 * z * z - np.log(self.scale) - LOG_SQRT_2PI - log_x
        return full_batch(where(inside, lp, -np.inf), self.batch_shape)

    @property
    def mean(self):
        return broadcast_to(np.exp(self.loc + 0.5 * self.scale**2), self.batch_shape)

    @property
    def variance(self):
        s2 = self.scale**2
        return broadcast_to(np.expm1(s2) * np.exp(2 * self.loc + s2), self.batch_shape)

    def entropy(self):
        return broadcast_to(0.5 + LOG_SQRT_2PI + np.log(self.scale) + self.loc, self.batch_shape)

    def _z(self, value):
        """(log x - loc) / scale, with x <= 0 sent to -inf (cdf 0)."""
        inside = value > 0
        return where(inside, (np.log(where(inside, value, 1.0)) - self.loc) / self.scale, -np.inf)

    def cdf(self, value):
        return full_batch(ndtr(self._z(value)), self.batch_shape)

    def log_cdf(self, value):
        return full_batch(log_ndtr(self._z(value)), self.batch_shape)

    def log_survival(self, value):
        return full_batch(log_ndtr(-self._z(value)), self.batch_shape)

    def icdf(self, p):
        return full_batch(np.exp(self.loc + self.scale * ndtri(p)), self.batch_shape)


class HalfNormal(Distribution):
    """|x| of Normal(0, scale): p(x) = 2 N(x; 0, scale) on x >= 0."""

    arg_constraints = {"scale": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, scale=1.0, validate_args=True):
        (self.scale,), batch_shape = promote_shapes(scale)
        super().__init__(batch_shape, (), validate_args)

    def sample(self, rng, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        return self.scale * np.abs(_noise(rng, "normal", shape, dtype_of(self.scale)))

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        z = value / self.scale
        lp = LOG_2 - 0.5 * z * z - np.log(self.scale) - LOG_SQRT_2PI
        return full_batch(where(value >= 0, lp, -np.inf), self.batch_shape)

    @property
    def mean(self):
        return broadcast_to(self.scale * SQRT_2_OVER_PI, self.batch_shape)

    @property
    def variance(self):
        return broadcast_to(self.scale**2 * (1 - 2 / np.pi), self.batch_shape)

    def entropy(self):
        return broadcast_to(0.5 * (LOG_PI - LOG_2) + 0.5 + np.log(self.scale), self.batch_shape)

    def cdf(self, value):
        z = where(value > 0, value, 0.0) / self.scale
        return full_batch(erf(z / SQRT_2), self.batch_shape)

    def log_survival(self, value):
        z = where(value > 0, value, 0.0) / self.scale
        return full_batch(LOG_2 + log_ndtr(-z), self.batch_shape)

    def icdf(self, p):
        return full_batch(self.scale * ndtri(0.5 + 0.5 * p), self.batch_shape)


class Exponential(Distribution):
    """p(x) = rate exp(-rate x) on x >= 0."""

    arg_constraints = {"rate": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, rate=1.0, validate_args=True):
        (self.rate,), batch_shape = promote_shapes(rate)
        super().__init__(batch_shape, (), validate_args)

    def sample(self, rng, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        return _noise(rng, "exponential", shape, dtype_of(self.rate)) / self.rate

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        lp = np.log(self.rate) - self.rate * where(value >= 0, value, 0.0)
        return full_batch(where(value >= 0, lp, -np.inf), self.batch_shape)

    @property
    def mean(self):
        return broadcast_to(1.0 / self.rate, self.batch_shape)

    @property
    def variance(self):
        return broadcast_to(1.0 / self.rate**2, self.batch_shape)

    def entropy(self):
        return broadcast_to(1.0 - np.log(self.rate), self.batch_shape)

    def cdf(self, value):
        return full_batch(-np.expm1(-self.rate * where(value > 0, value, 0.0)), self.batch_shape)

    def log_survival(self, value):
        return full_batch(-self.rate * where(value > 0, value, 0.0), self.batch_shape)

    def icdf(self, p):
        return full_batch(-np.log1p(-p) / self.rate, self.batch_shape)


class Gamma(Distribution):
    """p(x) = rate^a x^(a-1) exp(-rate x) / Gamma(a), a = concentration."""

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.positive

    def __init__(self, concentration, rate=1.0, validate_args=True):
        (self.concentration, self.rate), batch_shape = promote_shapes(concentration, rate)
        super().__init__(batch_shape, (), validate_args)

    def sample(self, rng, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        dtype = dtype_of(self.concentration, self.rate)
        draw = rng.standard_gamma(onp.broadcast_to(getval(self.concentration), shape), shape)
        # A small concentration can underflow a draw to 0, which is outside the support: keep it positive.
        return _at_least_tiny((draw / getval(self.rate)).astype(dtype))

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        a, b = self.concentration, self.rate
        inside = value > 0
        x = where(inside, value, 1.0)
        lp = a * np.log(b) + (a - 1) * np.log(x) - b * x - gammaln(a)
        return full_batch(where(inside, lp, -np.inf), self.batch_shape)

    @property
    def mean(self):
        return broadcast_to(self.concentration / self.rate, self.batch_shape)

    @property
    def variance(self):
        return broadcast_to(self.concentration / self.rate**2, self.batch_shape)

    def entropy(self):
        a = self.concentration
        return broadcast_to(a - np.log(self.rate) + gammaln(a) + (1 - a) * digamma(a), self.batch_shape)


class Beta(Distribution):
    """p(x) = x^(a-1) (1-x)^(b-1) / B(a, b), a = concentration1, b = concentration0."""

    arg_constraints = {"concentration1": constraints.positive, "concentration0": constraints.positive}
    support = constraints.unit_interval

    def __init__(self, concentration1, concentration0, validate_args=True):
        (self.concentration1, self.concentration0), batch_shape = promote_shapes(concentration1, concentration0)
        super().__init__(batch_shape, (), validate_args)

    def sample(self, rng, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        dtype = dtype_of(self.concentration1, self.concentration0)
        a = onp.broadcast_to(getval(self.concentration1), shape)
        b = onp.broadcast_to(getval(self.concentration0), shape)
        draw = onp.asarray(rng.beta(a, b, shape)).astype(dtype)
        # Small concentrations (or rounding to float32) can give exactly 0 or 1, outside the open support.
        return onp.clip(draw, onp.finfo(dtype).tiny, onp.nextafter(dtype.type(1), dtype.type(0)))

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        a, b = self.concentration1, self.concentration0
        inside = (value > 0) & (value < 1)
        x = where(inside, value, 0.5)
        lp = (a - 1) * np.log(x) + (b - 1) * np.log1p(-x) - betaln(a, b)
        return full_batch(where(inside, lp, -np.inf), self.batch_shape)

    @property
    def mean(self):
        a, b = self.concentration1, self.concentration0
        return broadcast_to(a / (a + b), self.batch_shape)

    @property
    def variance(self):
        a, b = self.concentration1, self.concentration0
        return broadcast_to(a * b / ((a + b) ** 2 * (a + b + 1)), self.batch_shape)

    def entropy(self):
        a, b = self.concentration1, self.concentration0
        total = a + b
        return broadcast_to(betaln(a, b) - (a - 1) * digamma(a) - (b - 1) * digamma(b)
                            + (total - 2) * digamma(total), self.batch_shape)


class Uniform(Distribution):
    """p(x) = 1 / (high - low) on (low, high)."""

    arg_constraints = {"low": constraints.real, "high": constraints.real}
    has_rsample = True

    def __init__(self, low=0.0, high=1.0, validate_args=True):
        (self.low, self.high), batch_shape = promote_shapes(low, high)
        super().__init__(batch_shape, (), validate_args)
        if validate_args:
            _check_ordered(getval(self.low), getval(self.high))

    @property
    def support(self):
        # Closed, as in NumPyro and PyTorch: a draw may land on ``low`` exactly, and must score.
        return constraints.closed_interval(self.low, self.high)

    def sample(self, rng, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        return self.low + (self.high - self.low) * _noise(rng, "uniform", shape, dtype_of(self.low, self.high))

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        inside = (value >= self.low) & (value <= self.high)
        return full_batch(where(inside, -np.log(self.high - self.low), -np.inf), self.batch_shape)

    @property
    def mean(self):
        return broadcast_to((self.low + self.high) / 2, self.batch_shape)

    @property
    def variance(self):
        return broadcast_to((self.high - self.low) ** 2 / 12, self.batch_shape)

    def entropy(self):
        return broadcast_to(np.log(self.high - self.low), self.batch_shape)


class Laplace(LocationScale):
    """p(x) = exp(-|x - loc| / scale) / (2 scale)."""

    def sample(self, rng, sample_shape=()):
        # The difference of two standard exponentials is standard Laplace: no log(0) at the ends of a uniform.
        shape = tuple(sample_shape) + self.batch_shape
        dtype = dtype_of(self.loc, self.scale)
        eps = _noise(rng, "exponential", shape, dtype) - _noise(rng, "exponential", shape, dtype)
        return self.loc + self.scale * eps

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        return full_batch(-np.abs(value - self.loc) / self.scale - np.log(2 * self.scale), self.batch_shape)

    @property
    def mean(self):
        return broadcast_to(self.loc, self.batch_shape)

    @property
    def variance(self):
        return broadcast_to(2 * self.scale**2, self.batch_shape)

    def entropy(self):
        return broadcast_to(1 + np.log(2 * self.scale), self.batch_shape)

    def cdf(self, value):
        return full_batch(np.exp(self.log_cdf(value)), self.batch_shape)

    def log_cdf(self, value):
        return full_batch(_laplace_log_cdf((value - self.loc) / self.scale), self.batch_shape)

    def log_survival(self, value):
        return full_batch(_laplace_log_cdf((self.loc - value) / self.scale), self.batch_shape)

    def icdf(self, p):
        u = p - 0.5
        return full_batch(self.loc - self.scale * np.sign(u) * np.log1p(-2 * np.abs(u)), self.batch_shape)


class StudentT(Distribution):
    """Student's t: p(x) = Gamma((df+1)/2) / (Gamma(df/2) sqrt(df pi) scale) (1 + z^2/df)^(-(df+1)/2),
    z = (x - loc) / scale. Reparameterized in loc and scale (not in df)."""

    arg_constraints = {"df": constraints.positive, "loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, df, loc=0.0, scale=1.0, validate_args=True):
        (self.df, self.loc, self.scale), batch_shape = promote_shapes(df, loc, scale)
        super().__init__(batch_shape, (), validate_args)

    def sample(self, rng, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        dtype = dtype_of(self.df, self.loc, self.scale)
        t = onp.asarray(rng.standard_t(onp.broadcast_to(getval(self.df), shape), shape)).astype(dtype)
        return self.loc + self.scale * _t_noise(self.df, t)

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        df = self.df
        z = (value - self.loc) / self.scale
        lp = (gammaln((df + 1) / 2) - gammaln(df / 2) - 0.5 * np.log(df) - 0.5 * LOG_PI - np.log(self.scale)
              - (df + 1) / 2 * np.log1p(z * z / df))
        return full_batch(lp, self.batch_shape)

    @property
    def mean(self):
        return broadcast_to(where(self.df > 1, self.loc, np.nan), self.batch_shape)

    @property
    def variance(self):
        # scale^2 df / (df - 2) for df > 2; infinite for 1 < df <= 2; undefined (NaN) for df <= 1.
        df = self.df
        dtype = dtype_of(self.df, self.loc, self.scale)
        undefined = onp.where(onp.asarray(getval(df)) > 1, onp.inf, onp.nan).astype(dtype)
        var = where(df > 2, self.scale**2 * df / where(df > 2, df - 2, 1.0), undefined)
        return broadcast_to(var, self.batch_shape)

    def entropy(self):
        # (df+1)/2 [psi((df+1)/2) - psi(df/2)] + log(sqrt(df) B(df/2, 1/2)) + log scale; Gamma(1/2) = sqrt(pi).
        df = self.df
        half_df, half_df1 = df / 2, (df + 1) / 2
        log_beta = gammaln(half_df) + 0.5 * LOG_PI - gammaln(half_df1)
        h = half_df1 * (digamma(half_df1) - digamma(half_df)) + 0.5 * np.log(df) + log_beta + np.log(self.scale)
        return broadcast_to(h, self.batch_shape)

    def cdf(self, value):
        """T_df((x - loc) / scale); differentiable in x, loc and scale, not in df (no closed form)."""
        return full_batch(student_t_cdf(self.df, (value - self.loc) / self.scale), self.batch_shape)

    def log_cdf(self, value):
        return np.log(self.cdf(value))

    def log_survival(self, value):
        # the t is symmetric: S(x) = T_df(-z), with no 1 - T cancellation in the right tail
        return full_batch(np.log(student_t_cdf(self.df, (self.loc - value) / self.scale)), self.batch_shape)

    def icdf(self, p):
        return full_batch(self.loc + self.scale * student_t_icdf(self.df, p), self.batch_shape)


class Cauchy(LocationScale):
    """p(x) = 1 / (pi scale (1 + ((x - loc) / scale)^2))."""

    def sample(self, rng, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        u = _noise(rng, "uniform", shape, dtype_of(self.loc, self.scale))
        return self.loc + self.scale * np.tan(np.pi * (u - 0.5))

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / self.scale
        return full_batch(-LOG_PI - np.log(self.scale) - np.log1p(z * z), self.batch_shape)

    @property
    def mean(self):
        return onp.full(self.batch_shape, onp.nan, dtype_of(self.loc, self.scale))  # undefined

    @property
    def variance(self):
        return onp.full(self.batch_shape, onp.inf, dtype_of(self.loc, self.scale))

    def entropy(self):
        return broadcast_to(np.log(4 * np.pi * self.scale), self.batch_shape)

    def cdf(self, value):
        # 1/2 + atan(z)/pi written as atan2(1, -z)/pi: exact far into the left tail
        return full_batch(np.arctan2(1.0, (self.loc - value) / self.scale) / np.pi, self.batch_shape)

    def log_cdf(self, value):
        return np.log(self.cdf(value))

    def log_survival(self, value):
        return full_batch(np.log(np.arctan2(1.0, (value - self.loc) / self.scale) / np.pi), self.batch_shape)

    def icdf(self, p):
        return full_batch(self.loc + self.scale * np.tan(np.pi * (p - 0.5)), self.batch_shape)


def _check_ordered(low, high):
    """Uniform's ``high > low`` everywhere, or a ValueError naming both at the first offending index."""
    low, high = onp.broadcast_arrays(low, high)
    bad = onp.argwhere(~(high > low))
    if len(bad):
        index = tuple(int(i) for i in bad[0])
        where_ = f" at index {index}" if index else ""
        raise ValueError(f"Uniform: parameter 'high' must be greater than parameter 'low'; got low={low[index]}, "
                         f"high={high[index]}{where_}")


@primitive
def _t_noise(df, t):
    """Standard t noise ``t`` drawn with ``df``: the identity on ``t``, but differentiating it in ``df`` raises,
    since the draw depends on df through a gamma variate that is not reparameterized (a silent zero would be wrong)."""
    return t


def _no_gradient_in_df(ans, df, t):
    def vjp(g):
        raise NotImplementedError("StudentT.sample is reparameterized in loc and scale only: no gradient w.r.t. 'df'")

    return vjp


defvjp(_t_noise, _no_gradient_in_df, None)


def _at_least_tiny(x):
    """A positive draw that underflowed to 0 becomes the smallest normal number of its dtype."""
    return onp.maximum(x, onp.finfo(x.dtype).tiny)


def _laplace_log_cdf(z):
    """log F(z) of the standard Laplace: z - log 2 left of 0, log(1 - e^-z / 2) right of it."""
    left = where(z < 0, z, 0.0) - LOG_2
    right = np.log1p(-0.5 * np.exp(-where(z < 0, 0.0, z)))
    return where(z < 0, left, right)


class HalfCauchy(Distribution):
    """|x| of Cauchy(0, scale): p(x) = 2 / (pi scale (1 + (x/scale)^2)) on x >= 0.

    Stan's ``cauchy(0, s)`` on a ``real<lower=0>`` parameter. Mean and variance are infinite.
    """

    arg_constraints = {"scale": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, scale=1.0, validate_args=True):
        (self.scale,), batch_shape = promote_shapes(scale)
        super().__init__(batch_shape, (), validate_args)

    def sample(self, rng, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        u = _noise(rng, "uniform", shape, dtype_of(self.scale))
        return self.scale * np.tan(0.5 * np.pi * u)  # the inverse cdf: u in [0, 1) gives x in [0, inf)

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        z = value / self.scale
        lp = LOG_2 - LOG_PI - np.log(self.scale) - np.log1p(z * z)
        return full_batch(where(value >= 0, lp, -np.inf), self.batch_shape)

    @property
    def mean(self):
        return onp.full(self.batch_shape, onp.inf, dtype_of(self.scale))

    @property
    def variance(self):
        return onp.full(self.batch_shape, onp.inf, dtype_of(self.scale))

    def entropy(self):
        # folding a density symmetric about 0 removes log 2 of entropy: log(4 pi s) - log 2
        return broadcast_to(np.log(2 * np.pi * self.scale), self.batch_shape)

    def cdf(self, value):
        z = where(value > 0, value, 0.0) / self.scale
        return full_batch(np.arctan(z) * (2 / np.pi), self.batch_shape)

    def log_survival(self, value):
        z = where(value > 0, value, 0.0) / self.scale
        return full_batch(np.log(np.arctan2(1.0, z) * (2 / np.pi)), self.batch_shape)

    def icdf(self, p):
        return full_batch(self.scale * np.tan(0.5 * np.pi * p), self.batch_shape)


class HalfStudentT(Distribution):
    """|x| of StudentT(df, 0, scale): p(x) = 2 t_df(x; 0, scale) on x >= 0.

    Stan's ``student_t(df, 0, s)`` on a ``real<lower=0>`` parameter, i.e.
    student_t_lpdf(x | df, 0, s) - student_t_lccdf(0 | df, 0, s) with lccdf(0) = log 1/2.
    Reparameterized in scale (not in df, as StudentT).
    """

    arg_constraints = {"df": constraints.positive, "scale": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, df, scale=1.0, validate_args=True):
        (self.df, self.scale), batch_shape = promote_shapes(df, scale)
        super().__init__(batch_shape, (), validate_args)

    def _t(self):
        return StudentT(self.df, 0.0, self.scale, validate_args=False)

    def sample(self, rng, sample_shape=()):
        return np.abs(self._t().sample(rng, sample_shape))

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        lp = LOG_2 + self._t().log_prob(value)
        return full_batch(where(value >= 0, lp, -np.inf), self.batch_shape)

    @property
    def mean(self):
        # 2 s sqrt(df / pi) Gamma((df+1)/2) / (Gamma(df/2) (df - 1)) for df > 1; infinite otherwise
        df = self.df
        df_ok = where(df > 1, df, 2.0)
        m = (2 * self.scale * np.sqrt(df_ok / np.pi) * np.exp(gammaln((df_ok + 1) / 2) - gammaln(df_ok / 2))
             / (df_ok - 1))
        return broadcast_to(where(df > 1, m, np.inf), self.batch_shape)

    @property
    def variance(self):
        # E[x^2] - mean^2 = s^2 df / (df - 2) - mean^2 for df > 2; infinite for df <= 2
        df = self.df
        df_ok = where(df > 2, df, 3.0)
        m = HalfStudentT(df_ok, self.scale, validate_args=False).mean
        var = self.scale**2 * df_ok / (df_ok - 2) - m**2
        return broadcast_to(where(df > 2, var, np.inf), self.batch_shape)

    def entropy(self):
        return broadcast_to(self._t().entropy() - LOG_2, self.batch_shape)

    def cdf(self, value):
        z = where(value > 0, value, 0.0) / self.scale
        return full_batch(1 - 2 * student_t_cdf(self.df, -z), self.batch_shape)

    def log_survival(self, value):
        z = where(value > 0, value, 0.0) / self.scale
        return full_batch(LOG_2 + np.log(student_t_cdf(self.df, -z)), self.batch_shape)

    def icdf(self, p):
        return full_batch(self.scale * student_t_icdf(self.df, 0.5 + 0.5 * p), self.batch_shape)


class Weibull(Distribution):
    """p(x) = (k / scale) (x / scale)^(k-1) exp(-(x / scale)^k) on x > 0, k = concentration.

    Reparameterized: x = scale E^(1/k) with E standard exponential.
    """

    arg_constraints = {"scale": constraints.positive, "concentration": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(self, scale, concentration, validate_args=True):
        (self.scale, self.concentration), batch_shape = promote_shapes(scale, concentration)
        super().__init__(batch_shape, (), validate_args)

    def sample(self, rng, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        e = _noise(rng, "exponential", shape, dtype_of(self.scale, self.concentration))
        return self.scale * e ** (1 / self.concentration)

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        k = self.concentration
        inside = value > 0
        log_z = np.log(where(inside, value, 1.0)) - np.log(self.scale)
        lp = np.log(k) - np.log(self.scale) + (k - 1) * log_z - np.exp(k * log_z)
        return full_batch(where(inside, lp, -np.inf), self.batch_shape)

    @property
    def mean(self):
        return broadcast_to(self.scale * np.exp(gammaln(1 + 1 / self.concentration)), self.batch_shape)

    @property
    def variance(self):
        k = self.concentration
        g1, g2 = np.exp(gammaln(1 + 1 / k)), np.exp(gammaln(1 + 2 / k))
        return broadcast_to(self.scale**2 * (g2 - g1**2), self.batch_shape)

    def entropy(self):
        k = self.concentration
        return broadcast_to(EULER_GAMMA * (1 - 1 / k) + np.log(self.scale / k) + 1, self.batch_shape)

    def _power(self, value):
        """(x / scale)^k, with x <= 0 sent to 0."""
        return (where(value > 0, value, 0.0) / self.scale) ** self.concentration

    def cdf(self, value):
        return full_batch(-np.expm1(-self._power(value)), self.batch_shape)

    def log_cdf(self, value):
        return np.log(self.cdf(value))

    def log_survival(self, value):
        return full_batch(-self._power(value), self.batch_shape)

    def icdf(self, p):
        return full_batch(self.scale * (-np.log1p(-p)) ** (1 / self.concentration), self.batch_shape)


class Logistic(LocationScale):
    """p(x) = e^-z / (scale (1 + e^-z)^2), z = (x - loc) / scale; its cdf is the logistic sigmoid."""

    def sample(self, rng, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        dtype = dtype_of(self.loc, self.scale)
        u = _noise(rng, "uniform", shape, dtype)
        u = onp.maximum(u, onp.finfo(dtype if dtype == _F32 else _F64).tiny)  # u = 0 would give -inf
        return self.loc + self.scale * (np.log(u) - np.log1p(-u))

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / self.scale
        # -z - 2 log(1 + e^-z) via softplus: finite for |z| up to the float range
        return full_batch(-z - 2 * softplus(-z) - np.log(self.scale), self.batch_shape)

    @property
    def mean(self):
        return broadcast_to(self.loc, self.batch_shape)

    @property
    def variance(self):
        return broadcast_to(self.scale**2 * (np.pi**2 / 3), self.batch_shape)

    def entropy(self):
        return broadcast_to(np.log(self.scale) + 2.0, self.batch_shape)

    def cdf(self, value):
        return full_batch(expit((value - self.loc) / self.scale), self.batch_shape)

    def log_cdf(self, value):
        return full_batch(-softplus((self.loc - value) / self.scale), self.batch_shape)

    def log_survival(self, value):
        return full_batch(-softplus((value - self.loc) / self.scale), self.batch_shape)

    def icdf(self, p):
        return full_batch(self.loc + self.scale * (np.log(p) - np.log1p(-p)), self.batch_shape)
