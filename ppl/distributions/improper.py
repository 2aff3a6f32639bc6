"""ImproperUniform: the flat "prior" of a Stan parameter declared with bounds and given no prior.

``real<lower=0> sigma;`` with no sampling statement puts density 1 on (0, inf).
That is not a probability distribution (it has no normalising constant), but
a posterior built on it usually is, and every engine that works in
unconstrained space (NUTS, ADVI, MAP, Laplace) needs only the log-density (0
on the support) and ``biject_to(support)``. Drawing from it is impossible, so
``sample`` is an error telling the user to give the site a value.
"""
import numpy as onp
from autograd.tracer import getval

from ..errors import NoClosedFormError, SiteError
from . import constraints
from .distribution import Distribution, broadcast_shapes


class ImproperUniform(Distribution):
    """log p(x) = 0 for x in ``support`` (-inf outside): an improper flat density.

    ``batch_shape`` and ``event_shape`` say what a value looks like (the flat density
    has no parameters to infer them from); the support's own event axes must fit in
    ``event_shape``. The support's bounds may be autograd boxes that depend on other
    latents (``constraints.interval(0, 1 - alpha1)``): they are compared, never
    converted to arrays, so a gradient can still flow through the rest of the model.
    """

    arg_constraints = {}

    def __init__(self, support, batch_shape=(), event_shape=(), validate_args=True):
        if not isinstance(support, constraints.Constraint):
            raise TypeError(f"ImproperUniform: 'support' must be a Constraint (e.g. constraints.positive); "
                            f"got {support!r}")
        batch_shape, event_shape = _shape_tuple("batch_shape", batch_shape), _shape_tuple("event_shape", event_shape)
        if support.event_dim > len(event_shape):
            raise ValueError(f"ImproperUniform: the support {support!r} has {support.event_dim} event axes, "
                             f"more than event_shape {event_shape} has")
        self._support = support
        super().__init__(batch_shape, event_shape, validate_args)

    @property
    def support(self):
        return self._support

    def sample(self, rng, sample_shape=()):
        raise SiteError(f"ImproperUniform has no sampler: it is a flat density on {self._support!r}, not a "
                        f"probability distribution; give the site a value (condition, replace, or an engine's "
                        f"init)", None)

    def _inside(self, value):
        """Whether each value (over its batch axes) lies in the support, as a plain boolean array."""
        ok = getval(self._support.check(value))
        extra = self.event_dim - self._support.event_dim  # event axes the support does not reduce itself
        if extra:
            ok = onp.all(ok, axis=tuple(range(-extra, 0)))
        return onp.asarray(ok, dtype=bool)

    def log_prob(self, value):
        shape = onp.shape(getval(value))
        if self.event_dim and shape[len(shape) - self.event_dim:] != self.event_shape:
            raise ValueError(f"ImproperUniform.log_prob: value of shape {shape} does not end in the event_shape "
                             f"{self.event_shape}")
        inside = self._inside(value)
        if self.validate_args and not inside.all():
            bad = tuple(int(i) for i in onp.argwhere(~inside)[0]) if inside.ndim else ()
            raise ValueError(f"ImproperUniform.log_prob: value outside the support {self._support!r}"
                             + (f" at batch index {bad} (value of shape {shape})" if bad else ""))
        batch = broadcast_shapes(shape[:len(shape) - self.event_dim], self.batch_shape)
        dtype = onp.result_type(getval(value))
        dtype = dtype if onp.issubdtype(dtype, onp.floating) else onp.float64
        # a constant: the flat density contributes nothing to any gradient
        return onp.where(onp.broadcast_to(inside, batch), 0.0, -onp.inf).astype(dtype)

    @property
    def mean(self):
        raise NoClosedFormError(f"ImproperUniform on {self._support!r} is improper: it has no mean")

    @property
    def variance(self):
        raise NoClosedFormError(f"ImproperUniform on {self._support!r} is improper: it has no variance")

    def entropy(self):
        raise NoClosedFormError(f"ImproperUniform on {self._support!r} is improper: it has no entropy")

    def __repr__(self):
        return f"ImproperUniform({self._support!r}, batch_shape={self.batch_shape}, event_shape={self.event_shape})"


def _shape_tuple(name, shape):
    try:
        shape = tuple(int(n) for n in shape)
    except TypeError:
        raise TypeError(f"ImproperUniform: {name!r} must be a tuple of ints; got {shape!r}") from None
    if any(n < 0 for n in shape):
        raise ValueError(f"ImproperUniform: {name!r} must have nonnegative sizes; got {shape}")
    return shape
