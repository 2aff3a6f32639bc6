"""Entropy and KL divergence in nats or bits, of probability vectors or distributions.

    H(p) = -sum_x p(x) log p(x),      KL(p || q) = sum_x p(x) log(p(x) / q(x))

with 0 log 0 = 0. ``units="bits"`` divides by log 2 (the course's log_2).

What comes back:

* probability vectors, and distributions with a closed form: a plain ``float``
  (or an array of them, one per batch element / leading axis);
* distributions without one (``NoClosedFormError``): an ``Estimate(value, stderr)``
  from ``num_samples`` draws of ``p`` with ``numpy.random.default_rng(rng_seed)``,
  the sample mean of -log p(x) (entropy) or log p(x) - log q(x) (KL) and its
  standard error. Both are in the requested units.

These are for reporting numbers, not for optimizing: the results are plain
NumPy values, with no autograd boxes inside.
"""
import copy
from collections import namedtuple

import numpy as np
from scipy.special import xlogy

from .distributions.distribution import Distribution
from .distributions.kl import kl_divergence as _closed_form_kl
from .errors import NoClosedFormError

Estimate = namedtuple("Estimate", ["value", "stderr"])
Estimate.__doc__ = "A Monte Carlo estimate and its standard error (same units, same shape)."

_NATS_PER_UNIT = {"nats": 1.0, "bits": float(np.log(2.0))}


def entropy(p, units="nats", num_samples=10_000, rng_seed=0):
    """H(p) of a probability vector (outcomes on the last axis) or of a ``Distribution``.

    A closed form gives a float (or array); otherwise an ``Estimate`` by Monte Carlo.
    """
    per_unit = _nats_per_unit(units)
    if isinstance(p, Distribution):
        try:
            return _plain(p.entropy()) / per_unit
        except NoClosedFormError:
            draws = _draws(p, num_samples, rng_seed)
            return _estimate(-_plain_array(p.log_prob(draws)), per_unit)
    p = _probability_vector(p, "p")
    return _plain(-np.sum(xlogy(p, p), axis=-1)) / per_unit


def kl_divergence(p, q, units="nats", num_samples=10_000, rng_seed=0):
    """KL(p || q) of two probability vectors or two ``Distribution`` objects.

    Infinite where p puts mass on an outcome q gives none. A closed form gives a float (or
    array); otherwise an ``Estimate`` by Monte Carlo over draws of ``p``.
    """
    per_unit = _nats_per_unit(units)
    p_is_dist, q_is_dist = isinstance(p, Distribution), isinstance(q, Distribution)
    if p_is_dist and q_is_dist:
        try:
            return _plain(_closed_form_kl(p, q)) / per_unit
        except NoClosedFormError:
            return _monte_carlo_kl(p, q, per_unit, num_samples, rng_seed)
    if p_is_dist or q_is_dist:
        raise TypeError(
            f"kl_divergence: p and q must both be distributions or both be probability vectors; "
            f"got p: {type(p).__name__}, q: {type(q).__name__}"
        )
    p, q = _probability_vector(p, "p"), _probability_vector(q, "q")
    if p.shape[-1] != q.shape[-1]:
        raise ValueError(f"kl_divergence: p has {p.shape[-1]} outcomes (shape {p.shape}) "
                         f"but q has {q.shape[-1]} (shape {q.shape})")
    # p log p - p log q, where p > 0 = q gives +inf (xlogy(p, 0) = -inf) and p = 0 gives 0
    with np.errstate(divide="ignore"):
        terms = xlogy(p, p) - xlogy(p, q)
    return _plain(np.sum(terms, axis=-1)) / per_unit


def _monte_carlo_kl(p, q, per_unit, num_samples, rng_seed):
    draws = _draws(p, num_samples, rng_seed)
    # Draws outside q's support have log q = -inf (KL = inf), not a validation error.
    q_unchecked = copy.copy(q)
    q_unchecked.validate_args = False
    log_ratio = _plain_array(p.log_prob(draws)) - _plain_array(q_unchecked.log_prob(draws))
    return _estimate(log_ratio, per_unit)


def _nats_per_unit(units):
    if units not in _NATS_PER_UNIT:
        raise ValueError(f"units must be 'nats' or 'bits'; got units={units!r}")
    return _NATS_PER_UNIT[units]


def _probability_vector(p, name):
    """``p`` as a float array whose last axis sums to 1, or a ValueError naming ``name``."""
    array = np.asarray(p)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.floating)
                                     or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"{name} must be a probability vector (an array of numbers); got {type(p).__name__}")
    tolerance = max(1e-9, 100 * float(np.finfo(array.dtype).eps)) if array.dtype.kind == "f" else 1e-9
    array = array.astype(float)
    if array.ndim == 0 or array.shape[-1] == 0:
        raise ValueError(f"{name} must be a probability vector with outcomes on its last axis; got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must have finite entries; got {array}")
    if np.any(array < 0):
        raise ValueError(f"{name} must be non-negative; got the entry {array.min()} (shape {array.shape})")
    sums = array.sum(axis=-1)
    if np.any(np.abs(sums - 1) > tolerance):
        raise ValueError(f"{name} must sum to 1 along its last axis; got sums {sums}")
    return array


def _draws(p, num_samples, rng_seed):
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 2:
        raise ValueError(f"num_samples must be an integer >= 2 (a standard error needs two draws); "
                         f"got num_samples={num_samples!r}")
    return p.sample(np.random.default_rng(rng_seed), (int(num_samples),))


def _estimate(terms, per_unit):
    """The mean of ``terms`` over the leading (draw) axis and its standard error, in units."""
    terms = terms / per_unit
    value = terms.mean(axis=0)
    finite = np.isfinite(value)
    with np.errstate(invalid="ignore"):
        spread = np.where(finite, terms.std(axis=0, ddof=1), 0.0)  # an infinite mean is certain
    return Estimate(_plain(value), _plain(spread / np.sqrt(terms.shape[0])))


def _plain_array(x):
    return np.asarray(x, dtype=float)


def _plain(x):
    """A 0-d result as a Python float; anything else as a plain array (float32 stays float32)."""
    x = np.asarray(x)
    return float(x) if x.ndim == 0 else x
