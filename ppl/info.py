"""Entropy and KL divergence in nats or bits, of probability vectors or distributions.

    H(p) = -sum_x p(x) log p(x),      KL(p || q) = sum_x p(x) log(p(x) / q(x))

with 0 log 0 = 0. ``units="bits"`` divides by log 2 (the course's log_2).
Distributions use their closed forms; where none exists, a Monte Carlo
estimate over ``num_samples`` draws is returned as an ``Estimate`` with its
standard error.
"""
from collections import namedtuple

import numpy as np
from scipy.special import xlogy

from .distributions.distribution import Distribution
from .distributions.kl import kl_divergence as _kl_closed
from .errors import NoClosedFormError

Estimate = namedtuple("Estimate", ["value", "stderr"])
Estimate.__doc__ = "A Monte Carlo estimate and its standard error (same units)."

_UNITS = {"nats": 1.0, "bits": float(np.log(2.0))}


def _divisor(units):
    if units not in _UNITS:
        raise ValueError(f"units must be 'nats' or 'bits', got {units!r}")
    return _UNITS[units]


def _probabilities(p, name):
    p = np.asarray(p, dtype=float)
    if p.ndim == 0 or p.shape[-1] == 0:
        raise ValueError(f"{name} must be a probability vector (a last axis of outcomes), got shape {p.shape}")
    if np.any(~np.isfinite(p)) or np.any(p < 0):
        raise ValueError(f"{name} must have finite, non-negative entries")
    if np.any(np.abs(p.sum(-1) - 1) > 1e-8):
        raise ValueError(f"{name} must sum to 1 along its last axis (sums: {p.sum(-1)})")
    return p


def entropy(p, units="nats", num_samples=10_000, rng_seed=0):
    """H(p) of a probability vector (last axis) or a distribution; an ``Estimate`` when no closed form."""
    divisor = _divisor(units)
    if isinstance(p, Distribution):
        try:
            return np.asarray(p.entropy()) / divisor
        except NoClosedFormError:
            draws = p.sample(np.random.default_rng(rng_seed), (num_samples,))
            return _estimate(-np.asarray(p.log_prob(draws)), divisor)
    p = _probabilities(p, "p")
    return -np.sum(xlogy(p, p), axis=-1) / divisor


def kl_divergence(p, q, units="nats", num_samples=10_000, rng_seed=0):
    """KL(p || q) of probability vectors or distributions; an ``Estimate`` when no closed form."""
    divisor = _divisor(units)
    if isinstance(p, Distribution) and isinstance(q, Distribution):
        try:
            return np.asarray(_kl_closed(p, q)) / divisor
        except NoClosedFormError:
            draws = p.sample(np.random.default_rng(rng_seed), (num_samples,))
            return _estimate(np.asarray(p.log_prob(draws)) - np.asarray(q.log_prob(draws)), divisor)
    if isinstance(p, Distribution) or isinstance(q, Distribution):
        raise TypeError("kl_divergence: p and q must both be distributions or both be probability vectors")
    p, q = _probabilities(p, "p"), _probabilities(q, "q")
    if p.shape[-1] != q.shape[-1]:
        raise ValueError(f"kl_divergence: p has {p.shape[-1]} outcomes but q has {q.shape[-1]}")
    if np.any((q == 0) & (p > 0)):
        return np.inf  # p puts mass where q has none
    return np.sum(xlogy(p, p) - xlogy(p, np.where(q > 0, q, 1.0)), axis=-1) / divisor


def _estimate(samples, divisor):
    samples = samples / divisor
    n = samples.shape[0]
    return Estimate(samples.mean(0), samples.std(0, ddof=1) / np.sqrt(n))
