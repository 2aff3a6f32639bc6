"""Evidence lower bounds, built from ``trace``, ``replace``, ``seed`` and ``plate``.

    ELBO = E_q[log p(x, z) - log q(z)] <= log p(x)

One estimate runs the guide under ``trace``, then the model with its latents
``replace``-d by the guide's draws, and scores both traces. With
``num_particles = P > 1`` and ``vectorize=True`` the particles ride on a
leading array axis: both run once inside a plate of size P placed left of
every batch axis, so there is no Python loop over particles. A model that
does not broadcast falls back to a loop with the same estimator.
"""
import contextlib
import warnings

import autograd.numpy as anp

from .. import kernels
from ..core import Handler, broadcast_to_plate, plate, site_log_prob, site_rng, sum_all
from ..distributions.delta import Delta
from ..distributions.distribution import broadcast_to
from ..distributions.kl import kl_divergence
from ..errors import GuideStructureError, NoClosedFormError, PPLError
from ..handlers import replace, seed, trace

PARTICLES = "_particles"


class NotVectorizable(PPLError):
    """The model's log-densities did not broadcast along the particle axis."""


# What a model that does not broadcast over a leading axis raises: NumPy's broadcast ValueError, a
# ShapeError (a SiteError, so a ValueError too), an index or a len() that meets the extra axis.
NOT_BROADCASTING = (NotVectorizable, ValueError, IndexError, TypeError)
_LOOPING = {}  # model -> the error that showed it does not broadcast; each is warned about once


def vectorized_or_looped(model, vectorized, looped, axis="particles"):
    """``vectorized()``, or ``looped()`` (with one warning per model) when the model does not broadcast.

    Both give the same numbers; the loop only costs time. If the loop fails
    too, its error is the model's real problem and propagates as it is.
    """
    if model in _LOOPING:
        return looped()
    try:
        return vectorized()
    except NOT_BROADCASTING as err:
        result = looped()
        _LOOPING[model] = err
        warnings.warn(
            f"{getattr(model, '__name__', model)!s} does not broadcast over a leading axis of {axis} "
            f"({type(err).__name__}: {err}); running the {axis} in a Python loop instead, with the same numbers. "
            "To vectorize, let every site broadcast over extra leading axes: index latents from the right "
            "(z[..., 0], not z[0]), use np.shape(z)[-1] rather than len(z), and put data axes in a plate or "
            "to_event.", stacklevel=3)
        return result


def run_guide_and_model(model, guide, params, rng_seed, args, kwargs, num_particles=1, particle_dim=None,
                        check=True):
    """Trace the guide, then the model with latents (and subsample indices) from the guide.

    Both run under the same seed, so a subsampled ``plate`` draws the same
    indices in each; ``params`` fills the param sites of both.
    """
    particles = plate(PARTICLES, num_particles, dim=particle_dim) if particle_dim else contextlib.nullcontext()
    with particles:
        guide_trace = trace(seed(replace(guide, params, strict=False), rng_seed)).get_trace(*args, **kwargs)
        values = dict(params)
        for name, site in guide_trace.items():
            if site.type == "plate" or site.type == "sample" and not site.is_observed:
                values[name] = site.value
        model_trace = trace(seed(replace(model, values, strict=False), rng_seed)).get_trace(*args, **kwargs)
    if check:
        check_structure(guide_trace, model_trace)
    return guide_trace, model_trace


def check_structure(guide_trace, model_trace):
    """Every latent of the model has a guide site, and every guide latent is a site of the model.

    A model whose sites change between runs (data-dependent control flow)
    fails here with the site named, not later with a KeyError.
    """
    for name, site in model_trace.items():
        if site.is_latent and name not in guide_trace:
            raise GuideStructureError(f"model latent site {name!r} has no site in the guide (guide sites: "
                                      f"{[n for n, s in guide_trace.items() if s.type == 'sample']}); the model's "
                                      "sites may depend on its inputs, or the guide misses it")
    for name, site in guide_trace.items():
        if site.is_latent and not is_aux(site) and name not in model_trace:
            raise GuideStructureError(f"guide site {name!r} is not a site of the model (model sites: "
                                      f"{[n for n, s in model_trace.items() if s.type == 'sample']})")


class take_particle(Handler):
    """Run particle ``k`` alone, with the draws it gets in the vectorized run.

    Each latent is drawn as the particle plate of size ``num_particles`` at
    batch axis ``dim`` would draw it, and entry ``k`` is kept. So a model that
    does not broadcast over particles, run in a loop, gives the numbers the
    vectorized run gives one that does; the price is drawing every particle's
    noise in each pass, which the loop can afford.
    """

    def __init__(self, k, num_particles, dim):
        super().__init__()
        self.k, self.num_particles, self.dim = k, num_particles, dim

    def process(self, site):
        if site.type != "sample" or site.value is not None:
            return
        fn = broadcast_to_plate(site.fn, self.num_particles, self.dim, PARTICLES, site.name)
        draws = fn.sample(site_rng(site))
        site.value = anp.reshape(draws[self.k], site.fn.shape())


def max_batch_ndim(*traces):
    """The most batch axes any sample site has: the particle axis goes left of them all.

    An observed value scored over its own, larger batch shape has expanded its
    site's distribution when it was recorded (``core.fit_observed``), so its
    axes count here too.
    """
    return max((len(s.fn.batch_shape) for t in traces for s in t.values() if s.type == "sample"), default=0)


def particle_reducer(num_particles, batch_ndim):
    """Sum a log-density array over everything but the particle axis (at ``-(batch_ndim + 1)``)."""

    def reduce(lp):
        shape = anp.shape(lp)
        if len(shape) == batch_ndim + 1 and shape[0] == num_particles:
            if not batch_ndim:
                return lp
            if all(n == 1 for n in shape[1:]):  # a global site: summing axes of size 1 is a reshape, exactly
                return anp.reshape(lp, (num_particles,))
            return kernels.sum(lp, tuple(range(1, batch_ndim + 1)))
        if len(shape) <= batch_ndim or shape[0] == 1:
            return kernels.sum(lp)  # does not depend on the particle: the same term for each
        raise NotVectorizable(f"log-density of shape {shape} has no particle axis of size {num_particles}")

    return reduce


def is_aux(site):
    return bool(site.infer and site.infer.get("is_auxiliary"))


def _weigh(site, term):
    if site.mask is not None:
        term = anp.where(site.mask, term, 0.0)
    if not (type(site.scale) is float and site.scale == 1.0):
        term = term * site.scale
    return term


class Trace_ELBO:
    """The Monte Carlo ELBO with ``num_particles`` draws from the guide.

    ``entropy="mc"`` scores ``-log q(z)`` at the draws; ``entropy="analytic"``
    uses each guide site's closed-form entropy (as Stan's ADVI and the
    course's VAE do), which lowers the variance; a guide site without one is
    an error naming it. Point masses that carry a change of variables
    (``Delta`` sites of the autoguides) always contribute their
    log-Jacobian at the draw.
    """

    def __init__(self, num_particles=1, vectorize=True, entropy="mc"):
        if isinstance(num_particles, bool) or int(num_particles) != num_particles or num_particles < 1:
            raise ValueError(f"Trace_ELBO: num_particles must be an int >= 1, got {num_particles!r}")
        if entropy not in ("mc", "analytic"):
            raise ValueError(f"Trace_ELBO: entropy must be 'mc' or 'analytic', got {entropy!r}")
        self.num_particles, self.vectorize, self.entropy = int(num_particles), vectorize, entropy
        self._plans = {}  # (model, guide) -> max batch ndim

    def loss(self, rng_seed, params, model, guide, *args, **kwargs):
        """The negative ELBO (a scalar, differentiable w.r.t. ``params`` by autograd)."""
        if self.num_particles == 1:  # the common case: no particle axis, no mean
            return -self._score(*run_guide_and_model(model, guide, params, rng_seed, args, kwargs), sum_all)
        particles = self.elbo_particles(rng_seed, params, model, guide, *args, **kwargs)
        # sum / n, not anp.mean: autograd's mean divides its gradient by an int64, which makes float32 float64
        return -kernels.sum(particles) / len(particles)

    def elbo_particles(self, rng_seed, params, model, guide, *args, num_particles=None, **kwargs):
        """The ELBO's per-particle terms, shape ``(num_particles,)``."""
        return self._particles(rng_seed, params, model, guide, args, kwargs, num_particles, self._score)

    def log_weights(self, rng_seed, params, model, guide, *args, num_particles=None, **kwargs):
        """Per-particle importance log weights ``log p(x, z_k) - log q(z_k)`` (always Monte Carlo log q)."""
        return self._particles(rng_seed, params, model, guide, args, kwargs, num_particles, _log_weight)

    def _particles(self, rng_seed, params, model, guide, args, kwargs, num_particles, score):
        n = self.num_particles if num_particles is None else num_particles
        if n == 1:
            guide_trace, model_trace = run_guide_and_model(model, guide, params, rng_seed, args, kwargs)
            return anp.reshape(score(guide_trace, model_trace, sum_all), (1,))
        looped = lambda: self._looped(n, rng_seed, params, model, guide, args, kwargs, score)  # noqa: E731
        if not self.vectorize:
            return looped()
        key = (model, guide)
        return vectorized_or_looped(
            model, lambda: self._vectorized(key, n, rng_seed, params, model, guide, args, kwargs, score), looped)

    def _batch_ndim(self, key, rng_seed, params, model, guide, args, kwargs):
        if key not in self._plans:
            self._plans[key] = max_batch_ndim(*run_guide_and_model(model, guide, params, rng_seed, args, kwargs))
        return self._plans[key]

    def _vectorized(self, key, n, rng_seed, params, model, guide, args, kwargs, score):
        nd = self._batch_ndim(key, rng_seed, params, model, guide, args, kwargs)
        traces = run_guide_and_model(model, guide, params, rng_seed, args, kwargs, n, -(nd + 1))
        return broadcast_to(score(*traces, particle_reducer(n, nd)), (n,))

    def _looped(self, n, rng_seed, params, model, guide, args, kwargs, score):
        nd = self._batch_ndim((model, guide), rng_seed, params, model, guide, args, kwargs)
        terms = []
        for k in range(n):
            with take_particle(k, n, -(nd + 1)):
                guide_trace, model_trace = run_guide_and_model(model, guide, params, rng_seed, args, kwargs)
            terms.append(score(guide_trace, model_trace, sum_all))
        return anp.stack(terms)

    def _score(self, guide_trace, model_trace, reduce):
        terms = _model_terms(model_trace, reduce)
        for site in guide_trace.values():
            if not site.is_latent:
                continue
            if self.entropy == "mc" or isinstance(site.fn, Delta):
                terms.append((-1.0, reduce(site_log_prob(site))))
            else:
                terms.append((1.0, reduce(self._entropy(site))))
        return _total(terms)

    def _entropy(self, site):
        """The guide site's closed-form entropy, weighted like its log-density."""
        try:
            return _weigh(site, site.fn.entropy())
        except NoClosedFormError as err:
            raise NoClosedFormError(f"Trace_ELBO(entropy='analytic'): guide site {site.name!r} "
                                    f"({type(site.fn).__name__}) has no closed-form entropy; "
                                    "use entropy='mc'") from err


class TraceMeanField_ELBO(Trace_ELBO):
    """The ELBO as E_q[log p(x | z)] - KL(q(z) || p(z)), with the KL in closed form where registered.

    A latent of the same name in guide and model whose distribution pair has
    a registered ``kl_divergence`` contributes ``-KL`` instead of the Monte
    Carlo ``log p(z) - log q(z)``; other sites fall back to Monte Carlo.
    """

    def _score(self, guide_trace, model_trace, reduce):
        terms, analytic = [], set()
        for name, q_site in guide_trace.items():
            p_site = model_trace.get(name)
            if not q_site.is_latent or p_site is None or not p_site.is_latent or isinstance(q_site.fn, Delta):
                continue
            try:
                kl = kl_divergence(q_site.fn, p_site.fn)
            except NoClosedFormError:
                continue
            terms.append((-1.0, reduce(_weigh(p_site, kl))))
            analytic.add(name)
        for site in model_trace.values():
            if site.name not in analytic and _scored(site):
                terms.append((1.0, reduce(site_log_prob(site))))
        for site in guide_trace.values():
            if site.is_latent and site.name not in analytic:
                terms.append((-1.0, reduce(site_log_prob(site))))
        return _total(terms)


def _scored(site):
    return (site.type == "sample" and not site.intervened) or site.type == "factor"


def _model_terms(model_trace, reduce):
    """``(+1, reduced log-density)`` for each scored site of the model."""
    return [(1.0, reduce(site_log_prob(site))) for site in model_trace.values() if _scored(site)]


def _log_weight(guide_trace, model_trace, reduce):
    terms = _model_terms(model_trace, reduce)
    terms += [(-1.0, reduce(site_log_prob(site))) for site in guide_trace.values() if site.is_latent]
    return _total(terms)


def _total(terms):
    """sum of sign * term over ``(sign, term)`` pairs, as one node on the tape (``kernels.add_n``)."""
    if not terms:
        return 0.0
    signs, values = zip(*terms)
    return kernels.add_n(*values, signs=signs)
