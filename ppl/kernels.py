"""Fused NumPy primitives with hand-derived gradients, for the hot paths of SVI.

Each is one autograd primitive (``autograd.extend``): its forward pass is a
few NumPy calls and its vector-Jacobian product is derived by hand, so a
log-density or a dense layer costs one node on the tape instead of the
half-dozen elementwise nodes (and their broadcasting bookkeeping) the plain
expression would record. Gradients are reduced back to each argument's
shape ("unbroadcast"), and float32 stays float32 throughout.
"""
import numpy as np
from autograd.extend import defvjp, defvjp_argnums, primitive
from autograd.tracer import isbox

LOG_SQRT_2PI = float(0.5 * np.log(2 * np.pi))  # a Python float: weakly typed, float32 stays float32


def unbroadcast(g, target):
    """Sum ``g`` over the axes along which ``target`` was broadcast, giving ``target``'s shape."""
    shape = np.shape(target)
    if np.shape(g) == shape:
        return g
    g = np.sum(g, axis=tuple(range(np.ndim(g) - len(shape)))) if np.ndim(g) > len(shape) else g
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and np.shape(g)[i] != 1)
    if axes:
        g = np.sum(g, axis=axes, keepdims=True)
    dtype = getattr(target, "dtype", None)
    return g.astype(dtype, copy=False) if dtype is not None and np.ndim(g) else g


def fast_path(kernel):
    """Call the raw NumPy function when no argument is being differentiated (no autograd box).

    autograd's own dispatch costs a few microseconds per call, which is most
    of the work for a scalar site.
    """
    raw = kernel.fun

    def call(*args):
        for arg in args:
            if isbox(arg):
                return kernel(*args)
        return raw(*args)

    call.__name__, call.__doc__, call.primitive = kernel.__name__, kernel.__doc__, kernel
    return call


# ---------------------------------------------------------------- Normal log-density


@primitive
def normal_log_prob(value, loc, scale):
    """log N(value; loc, scale) = -z^2/2 - log scale - log sqrt(2 pi), z = (value - loc) / scale, broadcast."""
    z = (value - loc) / scale
    return -0.5 * z * z - np.log(scale) - LOG_SQRT_2PI


def _normal_log_prob_vjp(argnums, ans, args, kwargs):
    """d/dvalue = -z/scale, d/dloc = z/scale, d/dscale = (z^2 - 1)/scale, from one z."""
    value, loc, scale = args
    inv_scale = 1.0 / scale
    z = (value - loc) * inv_scale

    def vjp(g):
        g_loc = g * z * inv_scale
        grads = []
        for argnum in argnums:
            if argnum == 0:
                grads.append(unbroadcast(-g_loc, value))
            elif argnum == 1:
                grads.append(unbroadcast(g_loc, loc))
            else:
                grads.append(unbroadcast(g * (z * z - 1.0) * inv_scale, scale))
        return grads

    return vjp


defvjp_argnums(normal_log_prob, _normal_log_prob_vjp)


# ---------------------------------------------------------------- Bernoulli on logits


def _softplus(x):
    # max(x, 0) + log(1 + e^-|x|): one exp and one log, no overflow (np.logaddexp is several times slower)
    return np.maximum(x, 0.0) + np.log(1.0 + np.exp(-np.abs(x)))


def _sigmoid(x):
    # e^min(x,0) / (1 + e^-|x|): stable in both tails, dtype-preserving, no branch
    e = np.exp(-np.abs(x))
    return np.exp(np.minimum(x, 0.0)) / (1.0 + e) if np.ndim(x) else (1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e))


@primitive
def bernoulli_logits_log_prob(value, logits):
    """log Bernoulli(value; sigmoid(logits)) = value logits - softplus(logits), finite at |logits| = 800."""
    return value * logits - _softplus(logits)


def _bernoulli_vjp(argnums, ans, args, kwargs):
    """d/dlogits = value - sigmoid(logits); for binary values that is (2v - 1)(1 - e^ans), one exp."""
    value, logits = args

    def vjp(g):
        grads = []
        for argnum in argnums:
            if argnum == 0:
                grads.append(unbroadcast(g * logits, value))
            else:
                binary = np.shape(value) == np.shape(ans) and np.all((value == 0) | (value == 1))
                d = (2.0 * value - 1.0) * (1.0 - np.exp(ans)) if binary else value - _sigmoid(logits)
                grads.append(unbroadcast(g * d, logits))
        return grads

    return vjp


defvjp_argnums(bernoulli_logits_log_prob, _bernoulli_vjp)


# ---------------------------------------------------------------- layers


@primitive
def dense(x, w, b):
    """x @ w + b for x of shape (..., n_in): one 2-D matrix product on a contiguous reshape."""
    x2 = np.reshape(x, (-1, x.shape[-1]))
    return np.reshape(np.dot(x2, w) + b, x.shape[:-1] + (w.shape[1],))


def _dense_vjp(argnums, ans, args, kwargs):
    """gx = g w', gw = x' g, gb = sum of g over rows: plain np.dot on 2-D arrays, no tensordot."""
    x, w, b = args

    def vjp(g):
        g2 = np.reshape(g, (-1, g.shape[-1]))
        grads = []
        for argnum in argnums:
            if argnum == 0:
                grads.append(np.reshape(np.dot(g2, w.T), np.shape(x)))
            elif argnum == 1:
                grads.append(np.dot(np.reshape(x, (-1, x.shape[-1])).T, g2))
            else:
                grads.append(unbroadcast(np.sum(g2, axis=0), b))
        return grads

    return vjp


defvjp_argnums(dense, _dense_vjp)


@primitive
def elu(x):
    """x for x > 0, e^x - 1 otherwise (as max(x, 0) + e^min(x, 0) - 1: no branch)."""
    return np.maximum(x, 0.0) + (np.exp(np.minimum(x, 0.0)) - 1.0)


defvjp(elu, lambda ans, x: lambda g: g * (np.minimum(ans, 0.0) + 1.0))  # elu' = 1 or e^x = ans + 1


@primitive
def softplus(x):
    """log(1 + e^x), stable; its derivative is sigmoid(x)."""
    return _softplus(x)


defvjp(softplus, lambda ans, x: lambda g: g * _sigmoid(x))


@primitive
def normal_rsample(loc, scale, eps):
    """loc + scale * eps with fixed noise eps: a reparameterized Normal draw."""
    return loc + scale * eps


defvjp(normal_rsample,
       lambda ans, loc, scale, eps: lambda g: unbroadcast(g, loc),
       lambda ans, loc, scale, eps: lambda g: unbroadcast(g * eps, scale),
       lambda ans, loc, scale, eps: lambda g: unbroadcast(g * scale, eps))


@primitive
def sigmoid(x):
    """1 / (1 + e^-x), stable in both tails; its derivative is s (1 - s)."""
    return _sigmoid(x)


defvjp(sigmoid, lambda ans, x: lambda g: g * ans * (1 - ans))


# The public names take the fast path when nothing is differentiated.
normal_log_prob = fast_path(normal_log_prob)
normal_rsample = fast_path(normal_rsample)
bernoulli_logits_log_prob = fast_path(bernoulli_logits_log_prob)
dense = fast_path(dense)
elu = fast_path(elu)
softplus = fast_path(softplus)
sigmoid = fast_path(sigmoid)
