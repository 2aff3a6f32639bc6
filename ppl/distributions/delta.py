"""``Delta``: a point mass, carrying an optional log-density.

Guides use it to place a latent at a computed value: ``AutoDelta`` (MAP,
log_density 0) and the autoguides for constrained sites, where the value is
``T(u)`` of an unconstrained draw ``u`` and ``log_density = -log|det dT/du|``
adds the change of variables to log q.
"""
import autograd.numpy as np
import numpy as onp

from ..tape import nondifferentiable
from . import constraints
from .distribution import Distribution, broadcast_to


class Delta(Distribution):
    """p(x) = 1 if x = v: ``log_prob(v) = log_density``, -inf elsewhere."""

    arg_constraints = {}
    support = constraints.real
    has_rsample = True

    def __init__(self, v, log_density=0.0, event_dim=0, validate_args=True):
        shape = np.shape(v)
        if event_dim > len(shape):
            raise ValueError(f"Delta: event_dim={event_dim} exceeds the value's ndim {len(shape)}")
        self.v, self.log_density = v, log_density
        split = len(shape) - event_dim
        super().__init__(shape[:split], shape[split:], validate_args)

    def sample(self, rng, sample_shape=()):
        shape = tuple(sample_shape) + np.shape(self.v)
        return broadcast_to(self.v, shape)

    def log_prob(self, value):
        lp = self.log_density
        if np.shape(lp) != self.batch_shape:
            lp = broadcast_to(lp, self.batch_shape)
        if value is self.v:  # the guide's own draw, the common case
            return lp
        return lp + np.where(_equal(value, self.v, self.event_dim), 0.0, -np.inf)

    @property
    def mean(self):
        return self.v

    @property
    def variance(self):
        return np.zeros(np.shape(self.v))


@nondifferentiable
def _equal(value, v, event_dim):
    eq = onp.asarray(value) == onp.asarray(v)
    return onp.all(eq, axis=tuple(range(-event_dim, 0))) if event_dim else eq
