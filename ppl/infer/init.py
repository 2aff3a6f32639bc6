"""Initial values of latent sites, shared by the engines: Stan's draw uniform in (-2, 2) unconstrained.

A flat prior (``ImproperUniform``) has no sampler, so a model that uses one
cannot be traced by drawing from its priors. Every engine that traces a
model to learn its structure (autoguides, the potential, Laplace) runs it
under ``init_to_uniform``, which gives such a site the value Stan would
start it at: ``T(u)`` with ``u`` uniform in (-2, 2) and
``T = biject_to(support)`` of the site as it runs, so a bound that depends
on another latent holds.
"""
from ..core import Handler, site_rng
from ..distributions.transforms import biject_to
from ..errors import SiteError


class init_to_uniform(Handler):
    """Draw latent sites uniform in (-radius, radius) on the unconstrained space.

    With ``only_unsampleable=True`` (the default) a site whose distribution
    has a sampler draws from it as usual, and only the others (flat priors)
    get the uniform draw. Put it outside ``seed`` so the sites have their
    generators: ``trace(init_to_uniform(seed(model, 0)))``.

        >>> import numpy as np, ppl, ppl.distributions as dist
        >>> flat = dist.ImproperUniform(dist.constraints.positive, (), ())
        >>> tr = ppl.trace(init_to_uniform(ppl.seed(lambda: ppl.sample("s", flat), 0))).get_trace()
        >>> bool(np.exp(-2) < tr["s"].value < np.exp(2))
        True
    """

    def __init__(self, fn=None, only_unsampleable=True, radius=2.0):
        super().__init__(fn)
        self.only_unsampleable, self.radius = only_unsampleable, radius

    def process(self, site):
        if site.type != "sample" or site.value is not None or site.is_observed:
            return
        if self.only_unsampleable:
            try:
                site.value = site.fn.sample(site_rng(site))
                return
            except SiteError as err:
                if err.site is not None:
                    raise
        site.value = uniform_value(site.fn, site_rng(site), self.radius)


def uniform_value(fn, rng, radius=2.0):
    """``T(u)``, ``u`` uniform in (-radius, radius) of the unconstrained shape of ``fn``'s values."""
    transform = biject_to(fn.support)
    shape = transform.inverse_shape(fn.batch_shape + fn.event_shape)
    return transform(rng.uniform(-radius, radius, shape))
