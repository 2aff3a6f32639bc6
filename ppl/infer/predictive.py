"""Prior and posterior predictive draws, and posterior predictive checks.

The draws are vectorized: all ``num_samples`` runs of the model happen in
one call inside a plate placed left of every batch axis, with a loop only
for a model that does not broadcast.
"""
import numpy as np

from ..core import Handler, fit_observed, fold_in, plate
from ..handlers import replace, seed, trace
from .elbo import PARTICLES, is_aux, max_batch_ndim, run_guide_and_model, take_particle, vectorized_or_looped


class _resample_observed(Handler):
    """Forget the observed values so the model draws replicated data in their place.

    The draws take the data's shape (an unplated vector of data gives a vector
    of draws); ``shared_dims`` are the axes of the samples' plate, which is
    outside this handler and so has not broadcast the site yet.
    """

    def __init__(self, fn=None, shared_dims=()):
        super().__init__(fn)
        self.shared_dims = shared_dims

    def process(self, site):
        if site.type == "sample" and site.is_observed:
            fit_observed(site, self.shared_dims)
            site.value, site.is_observed = None, False


class Predictive:
    """Draws of the model's sites given latent values from ``posterior_samples`` or a fitted ``guide``.

    With neither, the draws are from the prior predictive. Observed sites are
    drawn afresh (replicated data). ``__call__(rng_seed, *args)`` returns
    ``{site: array of shape (num_samples,) + site shape}`` for every sample
    and deterministic site not given in ``posterior_samples`` (or only
    ``return_sites``).

        >>> import ppl, ppl.distributions as dist
        >>> def model():
        ...     mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
        ...     ppl.observe("x", dist.Normal(mu, 1.0), 0.5)
        >>> draws = Predictive(model, num_samples=1000)(0)
        >>> draws["x"].shape, round(float(draws["x"].var()), 0)  # Var x = 1 + 1
        ((1000,), 2.0)
    """

    def __init__(self, model, posterior_samples=None, guide=None, params=None, num_samples=None,
                 return_sites=None, vectorize=True):
        if posterior_samples is not None and guide is not None:
            raise ValueError("Predictive: give posterior_samples or guide, not both")
        if posterior_samples:
            sizes = {name: np.shape(v)[0] for name, v in posterior_samples.items()}
            if len(set(sizes.values())) != 1:
                raise ValueError(f"Predictive: posterior_samples have different leading sizes {sizes}")
            num_samples = num_samples or next(iter(sizes.values()))
            if num_samples != next(iter(sizes.values())):
                raise ValueError(f"Predictive: num_samples={num_samples} but posterior_samples hold {sizes}")
        if num_samples is None or int(num_samples) != num_samples or num_samples < 1:
            raise ValueError(f"Predictive: num_samples must be an int >= 1, got {num_samples!r}")
        self.model, self.guide, self.params = model, guide, dict(params or {})
        self.posterior_samples = posterior_samples or {}
        self.num_samples, self.return_sites, self.vectorize = int(num_samples), return_sites, vectorize

    def __call__(self, rng_seed, *args, **kwargs):
        looped = lambda: self._looped(rng_seed, args, kwargs)  # noqa: E731
        if not self.vectorize:
            return looped()
        return vectorized_or_looped(self.model, lambda: self._vectorized(rng_seed, args, kwargs), looped,
                                    "predictive samples")

    def _plain_shapes(self, rng_seed, args, kwargs):
        """One unvectorized run: each site's own shape and the deepest batch."""
        first = {name: v[0] for name, v in self.posterior_samples.items()}
        if self.guide is not None:
            guide_trace, model_trace = run_guide_and_model(self.model, self.guide, self.params, rng_seed, args, kwargs,
                                                           check=False)
            traces = (guide_trace, model_trace)
        else:
            model_trace = trace(seed(replace(_resample_observed(self.model), {**self.params, **first},
                                             strict=False), rng_seed)).get_trace(*args, **kwargs)
            traces = (model_trace,)
        shapes = {name: np.shape(s.value) for name, s in model_trace.items() if s.type in ("sample", "deterministic")}
        batch = {name: s.fn.batch_shape for name, s in model_trace.items() if s.type == "sample"}
        return shapes, batch, max_batch_ndim(*traces)

    def _vectorized(self, rng_seed, args, kwargs):
        n = self.num_samples
        shapes, batch, nd = self._plain_shapes(rng_seed, args, kwargs)
        dim = -(nd + 1)
        values = dict(self.params)
        for name, v in self.posterior_samples.items():
            site_batch = len(batch.get(name, np.shape(v)[1:]))
            v = np.asarray(v)
            values[name] = v.reshape((n,) + (1,) * (nd - site_batch) + v.shape[1:])
        with plate(PARTICLES, n, dim=dim):
            if self.guide is not None:
                guide_trace = trace(seed(replace(self.guide, self.params, strict=False), fold_in(rng_seed, "guide"))
                                    ).get_trace(*args, **kwargs)
                values.update({k: s.value for k, s in guide_trace.items()
                               if (s.type == "sample" and not s.is_observed and not is_aux(s)) or s.type == "plate"})
            model_trace = trace(seed(replace(_resample_observed(self.model, (dim,)), values, strict=False),
                                     fold_in(rng_seed, "model"))).get_trace(*args, **kwargs)
        out = {}
        for name, site in model_trace.items():
            if self._wanted(name, site):
                value = np.asarray(site.value)
                full = (n,) + shapes[name]
                if value.size != int(np.prod(full)):
                    value = np.broadcast_to(value, value.shape if value.shape[:1] == (n,) else (n,) + value.shape)
                out[name] = np.reshape(value, full)
        return out

    def _looped(self, rng_seed, args, kwargs):
        """One sample at a time, with the draws the vectorized run makes (``take_particle``)."""
        dim = -(self._plain_shapes(rng_seed, args, kwargs)[2] + 1)
        draws = []
        for k in range(self.num_samples):
            values = dict(self.params)
            values.update({name: v[k] for name, v in self.posterior_samples.items()})
            with take_particle(k, self.num_samples, dim):
                if self.guide is not None:
                    guide_trace = trace(seed(replace(self.guide, self.params, strict=False),
                                             fold_in(rng_seed, "guide"))).get_trace(*args, **kwargs)
                    values.update({n: s.value for n, s in guide_trace.items() if s.is_latent and not is_aux(s)})
                model_trace = trace(seed(replace(_resample_observed(self.model), values, strict=False),
                                         fold_in(rng_seed, "model"))).get_trace(*args, **kwargs)
            draws.append({n: np.asarray(s.value) for n, s in model_trace.items() if self._wanted(n, s)})
        return {name: np.stack([d[name] for d in draws]) for name in draws[0]}

    def _wanted(self, name, site):
        if site.type not in ("sample", "deterministic"):
            return False
        if self.return_sites is not None:
            return name in self.return_sites
        return name not in self.posterior_samples


def predictive_check(statistic, observed, replicated):
    """Posterior predictive p-value of ``statistic``: P(T(x_rep) >= T(x_obs)).

    ``replicated`` has a leading axis of draws; ``statistic`` maps one data
    set to a number (or an array, giving elementwise p-values). Returns
    ``(t_observed, t_replicated, p_value)``; p-values near 0 or 1 flag a
    misfit the statistic can see.
    """
    t_obs = np.asarray(statistic(observed))
    t_rep = np.stack([np.asarray(statistic(x)) for x in replicated])
    return t_obs, t_rep, np.mean(t_rep >= t_obs, axis=0)
