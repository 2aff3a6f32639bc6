"""A tiny multilayer perceptron as plain functions over a dict of arrays.

``init(rng, [784, 200, 200, 4])`` returns ``{"W0": ..., "b0": ..., ...}``;
``apply(params, x)`` runs the layers on x of shape ``(..., n_in)`` with any
leading axes (particles, batch), through the fused ``kernels.dense``.
"""
import autograd.numpy as anp
import numpy as np

from . import kernels

ACTIVATIONS = {
    "elu": kernels.elu,
    "relu": lambda x: x * (x > 0),  # not anp.maximum: its gradient comes back float64 for float32 x
    "tanh": anp.tanh,
    "softplus": kernels.softplus,
    "linear": lambda x: x,
    None: lambda x: x,  # same as "linear"
}


def _check_activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; use one of {sorted(k for k in ACTIVATIONS if k)} or None")


def init(rng, sizes, dtype=np.float64, activation="elu"):
    """Weights for layers ``sizes[i] -> sizes[i+1]``: Glorot-uniform (He-uniform for relu), zero biases.

    Glorot: W ~ U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), so Var W = 2 / (fan_in + fan_out),
    which keeps activations and gradients at the same scale for tanh-like units; He: a = sqrt(6 / fan_in),
    Var W = 2 / fan_in, to make up for relu zeroing half its inputs.
    Keys are ``W0, b0, W1, b1, ...`` (layer numbers zero-padded past 10 layers so they sort in order).
    """
    _check_activation(activation)
    if len(sizes) < 2 or any(int(s) != s or s < 1 for s in sizes):
        raise ValueError(f"init: sizes must be two or more positive ints, got {sizes!r}")
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    width = len(str(len(sizes) - 2))
    params = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        bound = np.sqrt(6.0 / n_in) if activation == "relu" else np.sqrt(6.0 / (n_in + n_out))
        params[f"W{i:0{width}d}"] = rng.uniform(-bound, bound, (n_in, n_out)).astype(dtype)
        params[f"b{i:0{width}d}"] = np.zeros(n_out, dtype)
    return params


def layers(params):
    """The (W, b) pairs in order."""
    weights = sorted(k for k in params if k.startswith("W"))
    return [(params[w], params["b" + w[1:]]) for w in weights]


def apply(params, x, activation="elu", final=None):
    """Hidden layers with ``activation``, the last one linear (or ``final``)."""
    _check_activation(activation)
    _check_activation(final)
    pairs = layers(params)
    if not pairs:
        raise ValueError("apply: params holds no weights W0, W1, ...")
    if not hasattr(x, "shape"):
        x = np.asarray(x)
    if x.ndim < 1 or x.shape[-1] != pairs[0][0].shape[0]:
        raise ValueError(f"apply: x of shape {x.shape} must end in n_in = {pairs[0][0].shape[0]} (the rows of W0)")
    hidden, last = ACTIVATIONS[activation], ACTIVATIONS[final]
    for i, (w, b) in enumerate(pairs):
        x = kernels.dense(x, w, b)
        x = hidden(x) if i < len(pairs) - 1 else last(x)
    return x
