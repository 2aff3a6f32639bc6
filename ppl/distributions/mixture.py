"""MixtureSameFamily: a finite mixture of components of one family (Stan's ``log_mix``).

    p(x) = sum_k w_k p_k(x),   log p(x) = logsumexp_k (log w_k + log p_k(x)),

with the weights from a ``Categorical`` and the K components along the rightmost
batch axis of ``component_distribution``. The log-sum-exp is differentiable in the
weights, the component parameters and the value, so a mixture is a latent-free
(marginalised) model that NUTS, ADVI and MAP can fit directly.
"""
import autograd.numpy as np
import numpy as onp
from autograd.tracer import getval

from .discrete import Categorical
from .distribution import Distribution, broadcast_shapes, broadcast_to
from .special import logsumexp


class MixtureSameFamily(Distribution):
    """Mixture of the K components of ``component_distribution`` (batch_shape B + (K,), event E)
    with weights ``mixing_distribution`` (a Categorical over K, batch_shape broadcasting with B).

    batch_shape is B (broadcast with the mixing batch), event_shape is E. Draws pick a component
    index from the mixing distribution and take that component's draw (not reparameterized).
    """

    arg_constraints = {}

    def __init__(self, mixing_distribution, component_distribution, validate_args=True):
        if not isinstance(mixing_distribution, Categorical):
            raise TypeError(f"MixtureSameFamily: 'mixing_distribution' must be a Categorical; "
                            f"got {type(mixing_distribution).__name__}")
        if not isinstance(component_distribution, Distribution):
            raise TypeError(f"MixtureSameFamily: 'component_distribution' must be a Distribution; "
                            f"got {type(component_distribution).__name__}")
        comp_batch = component_distribution.batch_shape
        k = mixing_distribution.num_categories
        if not comp_batch or comp_batch[-1] != k:
            raise ValueError(f"MixtureSameFamily: the component_distribution's rightmost batch axis must hold the "
                             f"{k} components of the mixing_distribution; its batch_shape is {comp_batch}")
        try:
            batch_shape = broadcast_shapes(mixing_distribution.batch_shape, comp_batch[:-1])
        except ValueError:
            raise ValueError(f"MixtureSameFamily: the mixing_distribution's batch_shape "
                             f"{mixing_distribution.batch_shape} does not broadcast with the components' "
                             f"{comp_batch[:-1]}") from None
        self.mixing_distribution, self.component_distribution = mixing_distribution, component_distribution
        self.num_components = k
        super().__init__(batch_shape, component_distribution.event_shape, validate_args)

    @property
    def support(self):
        return self.component_distribution.support

    def _mixture_axis(self):
        """The component axis of per-component quantities shaped (..., K) + event."""
        return -1 - self.event_dim

    def log_prob(self, value):
        # value: sample + B + E -> sample + B + (1,) + E, scored by all K components at once
        value = np.expand_dims(value, self._mixture_axis())
        component_lp = self.component_distribution.log_prob(value)  # sample + B + (K,)
        return logsumexp(component_lp + self.mixing_distribution.logits, axis=-1)

    def sample(self, rng, sample_shape=()):
        sample_shape = tuple(sample_shape)
        full = sample_shape + self.batch_shape
        # expanded first, so components shared across a larger mixing batch still draw independently
        components = self.component_distribution.expand(self.batch_shape + (self.num_components,))
        draws = onp.asarray(getval(components.sample(rng, sample_shape)))  # S + B + (K,) + E
        index = self.mixing_distribution.expand(self.batch_shape).sample(rng, sample_shape)  # S + B
        index = index.reshape(full + (1,) + (1,) * self.event_dim)
        index = onp.broadcast_to(index, full + (1,) + self.event_shape)
        return onp.take_along_axis(draws, index, axis=len(full)).reshape(full + self.event_shape)

    def _weights(self):
        """The mixing probabilities, shaped B + (K,) + (1,) * event_dim to multiply per-component moments."""
        w = self.mixing_distribution.probs
        return np.reshape(w, np.shape(w) + (1,) * self.event_dim)

    @property
    def mean(self):
        w = self._weights()
        return broadcast_to(np.sum(w * self.component_distribution.mean, axis=self._mixture_axis()),
                            self.batch_shape + self.event_shape)

    @property
    def variance(self):
        # the law of total variance: E[Var(x | k)] + Var(E[x | k])
        w, axis = self._weights(), self._mixture_axis()
        means = self.component_distribution.mean
        mean = np.sum(w * means, axis=axis)
        within = np.sum(w * self.component_distribution.variance, axis=axis)
        between = np.sum(w * (means - np.expand_dims(mean, axis)) ** 2, axis=axis)
        return broadcast_to(within + between, self.batch_shape + self.event_shape)

    def __repr__(self):
        return (f"MixtureSameFamily({self.mixing_distribution!r}, {self.component_distribution!r}, "
                f"batch_shape={self.batch_shape}, event_shape={self.event_shape})")
