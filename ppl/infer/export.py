"""A fit as ArviZ data: ``to_arviz(result, model, *args)`` -> ``arviz.InferenceData``.

ArviZ is the Bayesian Python ecosystem's library of diagnostics and plots; handing it a fit gives its
R-hat, ESS, LOO, trace and forest plots for free. Groups made here:

- ``posterior``: every site of the result, dims (chain, draw, ...). An MCMC result keeps its chains; a
  variational result (ADVI, Pathfinder: anything with ``sample(n, rng_seed)``) becomes one chain of
  ``num_samples`` draws.
- ``sample_stats``: an MCMC result's per-draw statistics under ArviZ's names (``diverging``,
  ``tree_depth``, ``energy``, ``lp``, ``acceptance_rate``, ``n_steps``, ``step_size``).
- with the model and its arguments (taken from an MCMC result's potential when not given):
  ``observed_data``; ``log_likelihood``, log p(y_i | theta_s) per draw and observation (pointwise, so
  ``arviz.loo`` and ``arviz.waic`` run); ``posterior_predictive`` (``posterior_predictive=True`` draws it
  with ``Predictive``, or pass a Predictive output).

Axes that lie in a ``plate`` are named after it (an observation ``y`` in ``plate("data", N)`` has dims
(chain, draw, "data") in every group); other axes are ArviZ's ``{site}_dim_{k}``. ArviZ is imported on use.
"""
import warnings

import numpy as np

from ..core import plate
from ..handlers import replace, seed, trace
from .elbo import PARTICLES, max_batch_ndim, vectorized_or_looped

STAT_NAMES = {"accept_prob": "acceptance_rate", "num_steps": "n_steps"}


def _import_arviz():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # its notice of a coming refactor, on every import
            import arviz
    except ImportError as error:
        raise ImportError("to_arviz needs ArviZ: pip install 'ppl[arviz]' (or pip install arviz)") from error
    return arviz


def _posterior_draws(result, num_samples, rng_seed):
    """{site: (chains, draws, *shape)} from an MCMC result's ``samples`` or one chain of ``result.sample``."""
    samples = getattr(result, "samples", None)
    if isinstance(samples, dict) and samples:
        return {name: np.asarray(v) for name, v in samples.items()}
    if callable(getattr(result, "sample", None)):
        return {name: np.asarray(v)[None] for name, v in result.sample(num_samples, rng_seed).items()}
    raise TypeError(f"to_arviz: {type(result).__name__} has neither samples {{site: (chains, draws, ...)}} "
                    "nor a sample(n, rng_seed) method")


def _chains_of(draws, chains, per_chain, what):
    """Draws with a leading axis of chains * per_chain, as (chains, per_chain, ...) (chain-major)."""
    out = {}
    for name, v in draws.items():
        v = np.asarray(v)
        if v.shape[:1] != (chains * per_chain,):
            raise ValueError(f"to_arviz: {what} {name!r} has shape {v.shape}; expected a leading axis of "
                             f"{chains} chains x {per_chain} draws = {chains * per_chain}")
        out[name] = v.reshape((chains, per_chain) + v.shape[1:])
    return out


def _plain_trace(model, args, kwargs, values, rng_seed):
    return trace(seed(replace(model, values, strict=False), rng_seed)).get_trace(*args, **kwargs)


def _axis_names(site, shape):
    """A site's axes named after its plates where it has them, ArviZ's default names elsewhere."""
    names = [f"{site.name}_dim_{k}" for k in range(len(shape))]
    if site.type == "sample":
        batch = len(site.fn.batch_shape)
        for p in site.plates:
            if p.name != PARTICLES and 0 <= batch + p.dim < len(names):
                names[batch + p.dim] = p.name
    return names


def _observation_log_prob(site):
    lp = site.fn.log_prob(site.value)
    return lp if site.mask is None else np.where(site.mask, lp, 0.0)


def pointwise_log_likelihood(model, samples, *args, rng_seed=0, **kwargs):
    """log p(y_i | theta_s) for each observed site: {site: (S, *batch_shape)} given ``samples``
    {latent: (S, *shape)}, one vectorized run of the model over all S draws (a loop for a model that does
    not broadcast). Unscaled: a subsampled plate's N / M weight is not part of an observation's density."""
    samples = {name: np.asarray(v) for name, v in samples.items()}
    n = len(next(iter(samples.values())))
    plain = _plain_trace(model, args, kwargs, {name: v[0] for name, v in samples.items()}, rng_seed)
    observed = {name: s for name, s in plain.items() if s.type == "sample" and s.is_observed}
    batch = {name: s.fn.batch_shape for name, s in plain.items() if s.type == "sample"}
    nd = max_batch_ndim(plain)

    def vectorized():
        values = {}
        for name, v in samples.items():
            site_batch = len(batch.get(name, v.shape[1:]))
            values[name] = v.reshape((n,) + (1,) * (nd - site_batch) + v.shape[1:])
        with plate(PARTICLES, n, dim=-(nd + 1)):
            tr = _plain_trace(model, args, kwargs, values, rng_seed)
        return {name: np.reshape(np.broadcast_to(_observation_log_prob(tr[name]),
                                                 (n,) + (1,) * (nd - len(site.fn.batch_shape))
                                                 + site.fn.batch_shape), (n,) + site.fn.batch_shape)
                for name, site in observed.items()}

    def looped():
        runs = [_plain_trace(model, args, kwargs, {name: v[k] for name, v in samples.items()}, rng_seed)
                for k in range(n)]
        return {name: np.stack([np.asarray(_observation_log_prob(tr[name])) for tr in runs]) for name in observed}

    return vectorized_or_looped(model, vectorized, looped, "posterior draws")


def to_arviz(result=None, model=None, *args, posterior_predictive=None, log_likelihood=True, num_samples=1000,
             rng_seed=0, coords=None, dims=None, model_kwargs=None):
    """``result`` as an ``arviz.InferenceData`` (see the module docstring for the groups).

    ``result``: an ``MCMCResult`` (or anything with ``samples`` {site: (chains, draws, ...)} and optionally
    ``stats`` {name: (chains, draws)}), or a variational result with ``sample(n, rng_seed)`` (one chain of
    ``num_samples`` draws). ``model``, ``*args``, ``model_kwargs``: the model and its arguments, for
    observed_data, log_likelihood and posterior_predictive (an MCMC result remembers its own).
    ``posterior_predictive``: True to draw it, or a Predictive output {site: (S, ...)} with S = chains x
    draws (chain-major) or any S (then one chain). ``coords``, ``dims``: passed to ArviZ, overriding the
    plate names.
    """
    az = _import_arviz()
    potential = getattr(result, "potential", None)
    if model is None and potential is not None and getattr(potential, "model", None) is not None:
        model, args, model_kwargs = potential.model, potential.args, potential.kwargs
    model_kwargs = dict(model_kwargs or {})
    groups, names = {}, {}
    chains = per_chain = None
    if result is not None:
        posterior = _posterior_draws(result, num_samples, rng_seed)
        chains, per_chain = next(iter(posterior.values())).shape[:2]
        groups["posterior"] = posterior
        stats = getattr(result, "stats", None) or {}
        if stats:
            groups["sample_stats"] = {STAT_NAMES.get(k, k): np.asarray(v) for k, v in stats.items()}
    if model is not None:
        draws = {k: v.reshape((-1,) + v.shape[2:]) for k, v in groups.get("posterior", {}).items()}
        first = {k: v[0] for k, v in draws.items()}
        plain = _plain_trace(model, args, model_kwargs, first, rng_seed)
        for site in plain.values():
            if site.type in ("sample", "deterministic"):
                names[site.name] = _axis_names(site, np.shape(site.value))
        observed = {n: s for n, s in plain.items() if s.type == "sample" and s.is_observed}
        groups["observed_data"] = {n: np.asarray(s.value) for n, s in observed.items()}
        if draws and log_likelihood and observed:
            pointwise = pointwise_log_likelihood(model, draws, *args, rng_seed=rng_seed, **model_kwargs)
            groups["log_likelihood"] = _chains_of(pointwise, chains, per_chain, "log-likelihood")
        if posterior_predictive is True:
            if not draws:
                raise ValueError("to_arviz: posterior_predictive=True needs a result to draw from")
            from .predictive import Predictive

            replicated = Predictive(model, posterior_samples=draws)(rng_seed, *args, **model_kwargs)
            posterior_predictive = {n: replicated[n] for n in observed}
    if isinstance(posterior_predictive, dict):
        size = len(next(iter(posterior_predictive.values())))
        fits = chains is not None and size == chains * per_chain
        groups["posterior_predictive"] = _chains_of(posterior_predictive, chains if fits else 1,
                                                    per_chain if fits else size, "posterior_predictive")
    elif posterior_predictive not in (None, True):
        raise TypeError(f"to_arviz: posterior_predictive must be True or a dict of draws, got "
                        f"{type(posterior_predictive).__name__}")
    if not groups:
        raise ValueError("to_arviz: nothing to export; give a result, or a model for its observed data")
    datasets = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        for group, variables in groups.items():
            leading = [] if group == "observed_data" else ["chain", "draw"]
            group_dims = {}
            for name, value in variables.items():
                if name in names and group != "sample_stats":
                    axes = names[name]
                    # an observation's log density has its batch axes only, not its event axes
                    group_dims[name] = axes[:np.ndim(value) - len(leading)]
            group_dims.update({k: v for k, v in (dims or {}).items() if k in variables})
            datasets[group] = az.dict_to_dataset(variables, library=None, coords=coords, dims=group_dims,
                                                 default_dims=leading, index_origin=0)
        return az.InferenceData(**datasets)
