"""Special functions for the log-densities, loaded from autograd's scipy wrappers on first use.

Importing scipy.special costs about 0.4 s and autograd.scipy (which pulls in
scipy.stats and scipy.signal) about 1.2 s, more than the rest of ppl: a
model that never needs a gamma function should not pay for it.
"""
import autograd.numpy as anp
import numpy as onp

from ..kernels import sigmoid as expit  # noqa: F401  (the logistic function, a fused primitive)
from ..tape import nondifferentiable


def _on_first_use(module, name):
    def function(*args, **kwargs):
        import importlib

        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    function.__name__ = name
    function.__doc__ = f"{module}.{name}, imported when first called."
    return function


gammaln = _on_first_use("autograd.scipy.special", "gammaln")
digamma = _on_first_use("autograd.scipy.special", "digamma")
betaln = _on_first_use("autograd.scipy.special", "betaln")
solve_triangular = _on_first_use("autograd.scipy.linalg", "solve_triangular")


@nondifferentiable
def _finite_max(x, axis):
    top = onp.max(x, axis=axis, keepdims=True)
    return onp.where(onp.isfinite(top), top, 0.0)


def logsumexp(x, axis=None, keepdims=False):
    """log sum exp(x), stable: the maximum (held constant for the gradient, which is softmax) is factored out."""
    top = _finite_max(x, axis)
    with onp.errstate(divide="ignore"):  # all terms -inf: the answer is -inf, as in scipy, without a warning
        out = anp.log(anp.sum(anp.exp(x - top), axis=axis, keepdims=True)) + top
    return out if keepdims else anp.squeeze(out, axis=axis) if axis is not None else anp.reshape(out, ())
