"""ppl: a small, exact, fast probabilistic programming language.

A model is a plain Python function that calls ``sample`` / ``observe``;
effect handlers give those calls their meaning, and inference (MAP, ADVI,
SVI) is built from nothing but the handlers.
"""
from . import distributions, errors
from .core import (Handler, Site, apply_stack, deterministic, factor, fold_in, observe, param, plate,
                   sample, set_rng_seed)
from .handlers import Trace, block, condition, do, log_joint, mask, replace, scale, seed, trace

__version__ = "0.1.0"

__all__ = [
    "Handler", "Site", "Trace", "apply_stack", "block", "condition", "deterministic", "distributions",
    "do", "errors", "factor", "fold_in", "log_joint", "mask", "observe", "param", "plate", "replace",
    "sample", "scale", "seed", "set_rng_seed", "trace",
]
