"""TruncatedDistribution: a univariate continuous family restricted to a half-line or an interval.

Stan's ``y ~ student_t(nu, 0, s) T[L, U]``: the density on [L, U] is the base density
renormalised by the base mass there,

    log p(x) = log p_base(x) - log Z,   Z = F(U) - F(L)  (F the base cdf; F(L) = 0 or F(U) = 1
                                                          for a missing bound).

Z is computed in logs from the base's ``log_cdf``/``log_survival`` so that a truncation far in
either tail keeps its digits: on the right of the median, Z = S(L) - S(U) with S = 1 - F.
Bounds may be arrays or autograd boxes (a bound that is another latent): they are only ever
combined with autograd operations, so gradients flow through them, the base parameters and
the value. Draws are by the inverse cdf where the base has ``icdf``.
"""
import autograd.numpy as np
import numpy as onp
from autograd.tracer import getval

from . import constraints
from .continuous import Normal
from .distribution import Distribution, broadcast_shapes, broadcast_to, full_batch, promote_shapes, where
from .transforms import AffineTransform, ComposeTransform, ExpTransform, register_bijection

LOG_HALF = float(np.log(0.5))


class _LessThan(constraints.Constraint):
    """The half-line (-inf, upper_bound)."""

    def __init__(self, upper_bound):
        self.upper_bound = upper_bound

    def check(self, x):
        return x < self.upper_bound

    def __repr__(self):
        return f"less_than({self.upper_bound})"


@register_bijection(_LessThan)
def _to_less_than(constraint):
    exp = ExpTransform()
    return ComposeTransform([exp, AffineTransform(constraint.upper_bound, -1.0, domain=exp.codomain)])


def _log1mexp(d):
    """log(1 - e^d) for d < 0: log(-expm1(d)) near 0, log1p(-e^d) in the tail (Maechler 2012)."""
    near = d > LOG_HALF
    return where(near, np.log(-np.expm1(where(near, d, LOG_HALF))), np.log1p(-np.exp(where(near, LOG_HALF, d))))


class TruncatedDistribution(Distribution):
    """``base`` (univariate, continuous, with a ``cdf``) restricted to [low, high]; either bound may be None.

    batch_shape is the broadcast of the base's and the bounds'. ``mean`` and ``variance`` are closed
    forms for a Normal base; other bases have none (NotImplementedError).
    """

    arg_constraints = {"low": constraints.real, "high": constraints.real}

    def __init__(self, base, low=None, high=None, validate_args=True):
        if not isinstance(base, Distribution):
            raise TypeError(f"TruncatedDistribution: 'base' must be a Distribution; got {type(base).__name__}")
        if base.event_shape != () or base.support.is_discrete:
            raise ValueError(f"TruncatedDistribution: 'base' must be univariate and continuous; got {base!r} with "
                             f"support {base.support!r}")
        if not hasattr(base, "cdf"):
            raise NotImplementedError(f"TruncatedDistribution: {type(base).__name__} has no cdf to normalise by")
        if low is None and high is None:
            raise ValueError("TruncatedDistribution: give low, high or both")
        bounds = [b for b in (low, high) if b is not None]
        params, shape = promote_shapes(*bounds)
        self.low = params[0] if low is not None else None
        self.high = params[-1] if high is not None else None
        self.base = base
        super().__init__(broadcast_shapes(base.batch_shape, shape), (), validate_args)
        if validate_args and low is not None and high is not None:
            lo, hi = onp.broadcast_arrays(getval(self.low), getval(self.high))
            bad = onp.argwhere(~(hi > lo))
            if len(bad):
                i = tuple(int(j) for j in bad[0])
                raise ValueError(f"TruncatedDistribution: 'high' must be greater than 'low'; got low={lo[i]}, "
                                 f"high={hi[i]}" + (f" at index {i}" if i else ""))

    @property
    def has_rsample(self):
        return self.base.has_rsample and hasattr(self.base, "icdf")

    @property
    def support(self):
        if self.low is not None and self.high is not None:
            return constraints.interval(self.low, self.high)
        if self.low is not None:
            return constraints.greater_than(self.low)
        base = self.base.support
        if isinstance(base, (constraints._GreaterThan, constraints._Nonnegative)):
            # a half-line family cut from above lives on an interval
            return constraints.interval(getattr(base, "lower_bound", 0.0), self.high)
        return _LessThan(self.high)

    # the base's tails, in logs, with fallbacks for a base that has only a cdf
    def _log_cdf(self, x):
        fn = getattr(self.base, "log_cdf", None)
        return fn(x) if fn is not None else np.log(self.base.cdf(x))

    def _log_survival(self, x):
        fn = getattr(self.base, "log_survival", None)
        return fn(x) if fn is not None else np.log1p(-self.base.cdf(x))

    def _log_normalizer(self):
        """log Z, the base mass on [low, high], by the tail that keeps its digits."""
        if self.high is None:
            return self._log_survival(self.low)
        if self.low is None:
            return self._log_cdf(self.high)
        log_f_low, log_f_high = self._log_cdf(self.low), self._log_cdf(self.high)
        right = log_f_low > LOG_HALF  # low right of the median: both bounds in the upper tail
        # each branch sees safe stand-ins where it is not taken, so neither its value nor its gradient is NaN
        left_z = log_f_high + _log1mexp(where(right, -1.0, log_f_low - log_f_high))
        log_s_low, log_s_high = self._log_survival(self.low), self._log_survival(self.high)
        right_z = log_s_low + _log1mexp(where(right, log_s_high - log_s_low, -1.0))
        return where(right, right_z, left_z)

    def _inside(self, value):
        inside = True
        if self.low is not None:
            inside = inside & (value >= self.low)
        if self.high is not None:
            inside = inside & (value <= self.high)
        return inside

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        inside = self._inside(value)
        # the base scores a stand-in inside the support where the value is not, so no NaN reaches the gradient
        safe = where(inside, value, self._a_point_inside())
        lp = self.base.log_prob(safe) - self._log_normalizer()
        return full_batch(where(inside, lp, -np.inf), self.batch_shape)

    def _a_point_inside(self):
        if self.low is not None and self.high is not None:
            return (self.low + self.high) / 2
        return self.low + 1.0 if self.low is not None else self.high - 1.0

    def cdf(self, value):
        """(F(x) - F(low)) / Z on [low, high], 0 below, 1 above."""
        x = np.clip(value, *(getval(b) if b is not None else None for b in (self.low, self.high)))
        f_low = 0.0 if self.low is None else self.base.cdf(self.low)
        f = (self.base.cdf(x) - f_low) / np.exp(self._log_normalizer())
        return full_batch(f, self.batch_shape)

    def sample(self, rng, sample_shape=()):
        if not hasattr(self.base, "icdf"):
            raise NotImplementedError(f"TruncatedDistribution: {type(self.base).__name__} has no icdf to draw by")
        shape = tuple(sample_shape) + self.batch_shape
        u = rng.random(shape or None)
        f_low = 0.0 if self.low is None else self.base.cdf(self.low)
        f_high = 1.0 if self.high is None else self.base.cdf(self.high)
        width = onp.asarray(getval(f_high - f_low))
        if onp.any(width <= 0):
            raise ValueError("TruncatedDistribution.sample: the base mass between low and high rounds to 0 in "
                             "the cdf (a truncation far in a tail): the inverse cdf cannot draw from it")
        x = self.base.icdf(f_low + u * (f_high - f_low))
        # rounding in cdf/icdf can step a hair past a bound: the draw must stay in the support
        if self.low is not None:
            x = np.maximum(x, self.low)
        if self.high is not None:
            x = np.minimum(x, self.high)
        return broadcast_to(x, shape)

    @property
    def mean(self):
        mean, _ = self._normal_moments()
        return mean

    @property
    def variance(self):
        _, variance = self._normal_moments()
        return variance

    def _normal_moments(self):
        """For a Normal base with alpha, beta the standardized bounds and phi the standard density:
        mean = mu + sigma (phi(alpha) - phi(beta)) / Z,
        var = sigma^2 [1 + (alpha phi(alpha) - beta phi(beta)) / Z - ((phi(alpha) - phi(beta)) / Z)^2]."""
        if type(self.base) is not Normal:
            raise NotImplementedError(f"TruncatedDistribution: no closed-form moments for a "
                                      f"{type(self.base).__name__} base")
        mu, sigma = self.base.loc, self.base.scale
        z = np.exp(self._log_normalizer())

        def density_terms(bound):
            if bound is None:  # phi(+-inf) = 0 and bound * phi(bound) = 0
                return 0.0, 0.0
            a = (bound - mu) / sigma
            phi = np.exp(-0.5 * a * a) / np.sqrt(2 * np.pi)
            return phi, a * phi

        phi_a, aphi_a = density_terms(self.low)
        phi_b, bphi_b = density_terms(self.high)
        ratio = (phi_a - phi_b) / z
        mean = mu + sigma * ratio
        variance = sigma**2 * (1 + (aphi_a - bphi_b) / z - ratio**2)
        return broadcast_to(mean, self.batch_shape), broadcast_to(variance, self.batch_shape)

    def __repr__(self):
        return f"TruncatedDistribution({self.base!r}, low={self.low}, high={self.high})"
