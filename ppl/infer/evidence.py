"""The importance-weighted evidence bound (IWAE; Burda et al. 2016).

    log p(x) >= E[ log (1/K) sum_k p(x, z_k) / q(z_k) ],   z_k ~ q

K = 1 is the ELBO; the bound rises with K and reaches log p(x). The K
particles are drawn in vectorized chunks, combined with a running
log-sum-exp, so memory stays bounded for K = 5000 on MNIST-sized data.
"""
import numpy as np

from ..core import fold_in, site_log_prob
from ..distributions.special import logsumexp
from .elbo import max_batch_ndim, run_guide_and_model, take_particle, vectorized_or_looped


def log_evidence(model, guide, params, *args, num_samples=1000, rng_seed=0, chunk_size=None, data_plate=None,
                 **kwargs):
    """The IWAE bound on ``log p(x)`` with ``num_samples`` importance samples from ``guide``.

    With ``data_plate="data"`` (a model whose every latent lives inside that
    plate, like a VAE's per-image codes) the bound is taken per data point,
    ``sum_n log (1/K) sum_k w_kn``, which is far tighter than one bound on the
    whole data set; a latent outside the plate is then an error.
    ``chunk_size`` particles run at a time (default: a chunk whose largest
    log-density array has about 2e7 entries).
    """
    if isinstance(num_samples, bool) or int(num_samples) != num_samples or num_samples < 1:
        raise ValueError(f"log_evidence: num_samples must be an int >= 1, got {num_samples!r}")
    plain = run_guide_and_model(model, guide, params, rng_seed, args, kwargs)
    nd = max_batch_ndim(*plain)
    if data_plate is not None:
        _check_inside(plain, data_plate)

    size = chunk_size
    if size is None:
        # The largest array a particle carries: observed values stand in for the model's intermediates.
        biggest = max((max(np.size(s.value), np.size(site_log_prob(s))) for t in plain for s in t.values()
                       if s.type == "sample" and not s.intervened), default=1)
        size = int(max(1, min(num_samples, 2e7 // max(biggest, 1))))
    chunks = [min(size, num_samples - done) for done in range(0, num_samples, size)]

    def vectorized():
        total, constant = None, 0.0
        for chunk, k in enumerate(chunks):
            traces = run_guide_and_model(model, guide, params, fold_in(rng_seed, chunk), args, kwargs, k, -(nd + 1))
            part, constant = _log_weights(traces, k, nd, data_plate)
            total = _log_add(total, logsumexp(part, axis=0))  # per data point (or one column)
        return total, constant

    def looped():  # one particle at a time, with the vectorized run's draws
        total, constant = None, 0.0
        for chunk, k in enumerate(chunks):
            for i in range(k):
                with take_particle(i, k, -(nd + 1)):
                    traces = run_guide_and_model(model, guide, params, fold_in(rng_seed, chunk), args, kwargs)
                part, constant = _log_weights(traces, 1, nd, data_plate)
                total = _log_add(total, part[0])
        return total, constant

    total, constant = vectorized_or_looped(model, vectorized, looped, "importance samples")
    return float(np.sum(total - np.log(num_samples)) + constant)


def _log_weights(traces, k, nd, data_plate):
    """``log p(x, z_k) - log q(z_k)``, shape ``(k, N)`` per data point (``(k, 1)`` without a data plate)."""
    guide_trace, model_trace = traces
    log_p, constant = _sum_sites(model_trace, k, nd, data_plate)
    log_q, _ = _sum_sites(guide_trace, k, nd, data_plate, latent_only=True)
    return log_p - log_q, constant


def _log_add(total, part):
    return part if total is None else np.logaddexp(total, part)


def _scored(site):
    return site.type == "sample" and not site.intervened or site.type == "factor"


def _check_inside(traces, data_plate):
    for t in traces:
        for s in t.values():
            if s.is_latent and not (s.infer or {}).get("is_auxiliary") and data_plate not in _names(s):
                raise ValueError(f"log_evidence: latent site {s.name!r} is outside plate {data_plate!r}; "
                                 "the per-data-point bound needs every latent inside it")


def _names(site):
    return [p.name for p in site.plates]


def _sum_sites(tr, k, nd, data_plate, latent_only=False):
    """Log-densities summed to ``(k, N)`` per data point (``(k, 1)`` without a data plate), and the
    particle-independent total of sites outside the data plate, which counts once, not per point."""
    columns, constant = np.zeros((k, 1)), 0.0
    for site in tr.values():
        if not _scored(site) or latent_only and not site.is_latent:
            continue
        lp = np.asarray(site_log_prob(site))
        lp = lp.reshape((1,) * (nd + 1 - lp.ndim) + lp.shape)
        dims = [p.dim for p in site.plates if p.name == data_plate]
        if dims:
            axis = nd + 1 + dims[0]
            columns = columns + np.sum(lp, axis=tuple(a for a in range(1, nd + 1) if a != axis))
        elif data_plate is not None:
            if lp.shape[0] != 1:
                raise ValueError(f"log_evidence: site {site.name!r} outside plate {data_plate!r} depends on "
                                 "the latents; the per-data-point bound does not apply")
            constant += float(np.sum(lp))
        else:
            columns = columns + np.sum(lp, axis=tuple(range(1, nd + 1)))[:, None]
    return columns, constant


