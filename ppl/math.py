"""Numerics that models written from Stan programs need, with gradients (autograd).

- ``logsumexp(x, axis=None, keepdims=False)``: log sum_i exp(x_i), stable; a slice
  that is all -inf gives -inf with a zero (not NaN) gradient.
- ``log_mix(theta, lp1, lp2)``: Stan's two-component ``log_mix``,
  log(theta e^lp1 + (1 - theta) e^lp2). ``log_mix(weights, lps)`` (no ``lp2``)
  is Stan's vector form, log sum_k w_k e^lps_k over the last axis.
- ``log_mix_weights(log_weights, lps, axis=-1)``: the same with log-weights,
  which is what a softmax-parameterised mixture has at hand.
- ``log1mexp(x)``: log(1 - e^x) for x <= 0 (Stan's ``log1m_exp``), stable near 0
  and far below it; NaN for x > 0 as in Stan.
- ``cholesky(a)``: the lower Cholesky factor of a batch (..., n, n) of symmetric
  positive-definite matrices, differentiable, with an error naming the batch
  entry that is not positive definite.
- ``gp_exp_quad_cov(x, alpha, rho)``: Stan's squared-exponential kernel,
  K_ij = alpha^2 exp(-(x_i - x_j)^2 / (2 rho^2)).

All accept autograd boxes and keep float32 inputs float32.
"""
import autograd.numpy as anp
import numpy as np
from autograd.extend import defvjp, primitive
from autograd.tracer import getval

__all__ = ["cholesky", "gp_exp_quad_cov", "log1mexp", "log_mix", "log_mix_weights", "logsumexp"]

_LOG_HALF = -float(np.log(2.0))  # a Python float: float32 inputs stay float32


def _axes(axis, ndim):
    """``axis`` (None, an int or a tuple) as a sorted tuple of nonnegative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
    if any(not -ndim <= a < ndim for a in axes):
        raise ValueError(f"logsumexp: axis {axis!r} does not exist for an array of {ndim} axes")
    return tuple(sorted(int(a) % ndim for a in axes))


@primitive
def logsumexp(x, axis=None, keepdims=False):
    """log sum exp(x) over ``axis`` (all axes if None), stable.

    The maximum m is factored out: log sum e^(x - m) + m, so no term
    overflows and the largest underflows to nothing worse than 1. A slice
    whose entries are all -inf has the value -inf (an empty mixture) and,
    unlike the naive formula, a zero gradient instead of NaN. The gradient is
    softmax(x) along ``axis``.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    axes = _axes(axis, x.ndim)
    top = np.max(x, axis=axes, keepdims=True) if x.size else np.zeros((1,) * x.ndim, x.dtype)
    top = np.where(np.isfinite(top), top, 0).astype(x.dtype)
    with np.errstate(divide="ignore"):  # log(0) = -inf for an all -inf slice is the answer
        out = np.log(np.sum(np.exp(x - top), axis=axes, keepdims=True)) + top
    return out if keepdims else np.squeeze(out, axis=axes)


def _logsumexp_vjp(ans, x, axis=None, keepdims=False):
    shape = np.shape(x)
    axes = _axes(axis, len(shape))
    kept = [1 if i in axes else n for i, n in enumerate(shape)]
    ans_k = anp.reshape(ans, kept)
    empty = getval(ans_k) == -np.inf
    # exp(x - ans) is softmax; on an all -inf slice it would be exp(-inf + inf) = NaN, there it is 0
    weights = anp.exp(x - anp.where(empty, 0.0, ans_k)) * ~empty

    def vjp(g):
        return anp.reshape(g, kept) * weights
    return vjp


defvjp(logsumexp, _logsumexp_vjp)


def log_mix_weights(log_weights, lps, axis=-1):
    """log sum_k exp(log_weights_k + lps_k) along ``axis`` (the two broadcast against each other).

    The log-density of a finite mixture whose component k has weight
    exp(log_weights_k) and log-density lps_k; ``log_weights`` must be
    normalised (log_softmax of logits) for this to be a density.
    """
    return logsumexp(log_weights + lps, axis=axis)


def log_mix(theta, lp1, lp2=None):
    """Stan's ``log_mix``.

    ``log_mix(theta, lp1, lp2)`` = log(theta e^lp1 + (1 - theta) e^lp2), with
    ``theta`` in [0, 1] and the three broadcasting against each other.
    ``log_mix(weights, lps)`` = log sum_k weights_k e^lps_k over the last axis
    (``weights`` a simplex, broadcasting against ``lps``), as Stan's vector form.
    """
    if lp2 is None:
        with np.errstate(divide="ignore"):  # a zero weight is log 0 = -inf: that component drops out
            return log_mix_weights(anp.log(theta), lp1, axis=-1)
    with np.errstate(divide="ignore"):
        first = anp.log(theta) + lp1
        second = anp.log1p(-theta) + lp2
    shape = np.broadcast_shapes(np.shape(first), np.shape(second))
    both = anp.stack([_broadcast(first, shape), _broadcast(second, shape)], axis=-1)
    return logsumexp(both, axis=-1)


def _broadcast(x, shape):
    if np.shape(x) == tuple(shape):
        return x
    return x + anp.zeros(shape, dtype=np.result_type(getval(x)))  # autograd sums the gradient back


@primitive
def log1mexp(x):
    """log(1 - e^x) for x <= 0, Stan's ``log1m_exp``.

    Two formulas, each where it is accurate (Maechler, "Accurately computing
    log(1 - exp(-|a|))"): log(-expm1(x)) for x > -log 2, where 1 - e^x is
    small and expm1 keeps its digits; log1p(-e^x) below, where e^x is small.
    The gradient is -1 / expm1(-x). x = 0 gives -inf; x > 0 gives NaN.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        near_zero = np.log(-np.expm1(np.maximum(x, _LOG_HALF)))
        far = np.log1p(-np.exp(np.minimum(x, _LOG_HALF)))
    return np.where(x > _LOG_HALF, near_zero, far).astype(x.dtype)


defvjp(log1mexp, lambda ans, x: lambda g: -g / anp.expm1(-x))


def cholesky(a):
    """The lower-triangular L with L L^T = a, for a batch (..., n, n) of symmetric positive-definite matrices.

    Differentiable (the VJP of Murray, "Differentiation of the Cholesky
    decomposition", batched over leading axes). A matrix that is not positive
    definite raises ``numpy.linalg.LinAlgError`` naming its batch index.
    """
    shape = np.shape(a)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ValueError(f"cholesky: a must be square in its last two axes, got shape {shape}")
    try:
        return anp.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        value = np.asarray(getval(a))
        bad = [index for index in np.ndindex(*shape[:-2])
               if not np.all(np.linalg.eigvalsh(value[index]) > 0) or not np.all(np.isfinite(value[index]))]
        where = f" at batch index {bad[0]}" if bad and shape[:-2] else ""
        raise np.linalg.LinAlgError(f"cholesky: the matrix{where} of the array of shape {shape} is not "
                                    "positive definite (add jitter to the diagonal, or check its parameters)") \
            from None


def gp_exp_quad_cov(x, alpha, rho):
    """Stan's ``gp_exp_quad_cov``: K_ij = alpha^2 exp(-(x_i - x_j)^2 / (2 rho^2)).

    ``x`` has shape (..., N) (points on the line); ``alpha`` (marginal sd) and
    ``rho`` (length scale) are scalars or arrays of leading batch axes (chains,
    particles) that broadcast against x's. The result has shape (..., N, N).
    """
    if np.ndim(x) < 1:
        raise ValueError(f"gp_exp_quad_cov: x must have at least one axis (the points), got shape {np.shape(x)}")
    alpha = anp.expand_dims(anp.expand_dims(alpha, -1), -1) if np.ndim(alpha) else alpha
    rho = anp.expand_dims(anp.expand_dims(rho, -1), -1) if np.ndim(rho) else rho
    square_distance = (anp.expand_dims(x, -1) - anp.expand_dims(x, -2)) ** 2
    return alpha ** 2 * anp.exp(-0.5 * square_distance / rho ** 2)
