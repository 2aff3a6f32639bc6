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

from .special import betaln, digamma, gammaln

from ..kernels import normal_entropy, normal_log_prob, normal_rsample
from . import constraints
from .distribution import Distribution, broadcast_to, dtype_of, full_batch, promote_shapes, where

LOG_SQRT_2PI = float(0.5 * np.log(2 * np.pi))  # a Python float: weakly typed, float32 stays float32
LOG_PI = float(np.log(np.pi))
LOG_2 = float(np.log(2.0))
SQRT_2_OVER_PI = float(np.sqrt(2 / np.pi))
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
