"""Fused NumPy primitives with hand-derived gradients, for the hot paths of SVI.

Each is one autograd primitive (``autograd.extend``): its forward pass is a
few NumPy calls and its vector-Jacobian product is derived by hand, so a
log-density or a dense layer costs one node on the tape instead of the
half-dozen elementwise nodes (and their broadcasting bookkeeping) the plain
expression would record. Gradients are reduced back to each argument's
shape ("unbroadcast"), and float32 stays float32 throughout.
"""
import math

import numpy as np
from autograd.extend import defvjp, defvjp_argnums, primitive
from autograd.tracer import Box

from . import tape

# Python floats, not NumPy scalars: weakly typed, so float32 arrays stay float32
LOG_SQRT_2PI = float(0.5 * np.log(2 * np.pi))
SQRT_2 = math.sqrt(2.0)


def unbroadcast(g, shape, dtype=None):
    """Reduce a gradient ``g`` of a broadcast result to an argument of ``shape`` (and ``dtype``).

    If y = f(broadcast(a)), then dL/da sums dL/dy over every axis along which
    ``a`` was repeated: the leading axes ``a`` lacked, and the axes where ``a``
    had size 1 (kept, with keepdims). ``dtype`` (the argument's) keeps a
    float32 argument's gradient float32 when the other arguments were float64.
    """
    shape = tuple(shape)
    if np.shape(g) != shape:
        extra = np.ndim(g) - len(shape)
        if extra > 0:
            g = np.sum(g, axis=tuple(range(extra)))
        axes = tuple(i for i, n in enumerate(shape) if n == 1 and np.shape(g)[i] != 1)
        if axes:
            g = np.sum(g, axis=axes, keepdims=True)
    if dtype is not None and np.ndim(g):
        g = g.astype(dtype, copy=False)
    return g


def _unbroadcast_to(g, arg):
    """``unbroadcast`` to the shape and dtype of the argument ``arg`` (an array or a Python scalar)."""
    return unbroadcast(g, np.shape(arg), getattr(arg, "dtype", None))


def _log(x):
    # math.log keeps a Python scale a Python float: np.log would make it a float64 scalar, which
    # (unlike a Python float) promotes float32 arrays to float64 under NumPy 2
    return math.log(x) if isinstance(x, (int, float)) else np.log(x)


def fast_path(kernel):
    """Call the raw NumPy function when no argument is being differentiated (no autograd box).

    autograd's own dispatch costs a few microseconds per call, which is most
    of the work for a scalar site.
    """
    raw = kernel.fun
    box_types = Box.types  # autograd's isbox, inlined: this check runs on every call

    def call(*args, **kwargs):
        for arg in args:
            if type(arg) in box_types:
                return kernel(*args, **kwargs)
        return raw(*args, **kwargs)

    call.__name__, call.__doc__, call.primitive = kernel.__name__, kernel.__doc__, kernel
    return call


# ---------------------------------------------------------------- Normal log-density


@primitive
def normal_log_prob(value, loc, scale):
    """log N(value; loc, scale) = -z^2/2 - log scale - log sqrt(2 pi), z = (value - loc) / scale, broadcast.

    Gradient, all from one z:  d/dvalue = -z / scale,  d/dloc = z / scale,  d/dscale = (z^2 - 1) / scale,
    each summed back to its argument's shape. ``scale`` must be > 0 (the distributions check it).
    """
    z = value - loc
    if not (isinstance(z, np.ndarray) and _fits_in(z, scale)):
        z = z / scale
        return -0.5 * z * z - _log(scale) - LOG_SQRT_2PI
    # in the one new array, no temporaries over a large batch: -(diff / (sqrt(2) scale))^2 - log scale - C
    if type(scale) is float or type(scale) is int:
        z *= 1.0 / (SQRT_2 * scale)
    else:
        z /= SQRT_2 * scale
    np.multiply(z, z, out=z)
    return np.subtract(-(_log(scale) + LOG_SQRT_2PI), z, out=z)


def _fits_in(out, arg):
    """Whether ``out op= arg`` gives what ``out op arg`` would (same shape, same floating dtype)."""
    if out.dtype.kind != "f":
        return False
    if type(arg) is float or type(arg) is int:
        return True
    shape, dtype = getattr(arg, "shape", None), getattr(arg, "dtype", None)
    if shape is None or dtype is None or len(shape) > out.ndim:
        return False
    if any(n != 1 and n != m for n, m in zip(reversed(shape), reversed(out.shape))):
        return False
    return np.promote_types(out.dtype, dtype) == out.dtype


def _normal_log_prob_vjp(argnums, ans, args, kwargs):
    """d/dvalue = -(value - loc)/scale^2, d/dloc = (value - loc)/scale^2, d/dscale = (z^2 - 1)/scale.

    Only what the differentiated arguments need is computed: the usual case (value or loc) is one
    array, (value - loc) / scale^2.
    """
    value, loc, scale = args
    diff = value - loc
    if 2 in argnums:
        inv_scale = 1.0 / scale
        z = diff * inv_scale
        d_loc = z * inv_scale
    elif type(scale) is float and scale == 1.0 and type(loc) is float and loc == 0.0:
        d_loc = value  # the standard Normal: read only, never written
    elif isinstance(diff, np.ndarray) and _fits_in(diff, scale):
        diff *= 1.0 / (scale * scale)
        d_loc = diff
    else:
        d_loc = diff / (scale * scale)

    def vjp(g):
        g_loc = g * d_loc
        grads = []
        for argnum in argnums:
            if argnum == 0:
                grads.append(_unbroadcast_to(-g_loc, value))
            elif argnum == 1:
                grads.append(_unbroadcast_to(g_loc, loc))
            else:
                grads.append(_unbroadcast_to(g * (z * z - 1.0) * inv_scale, scale))
        return grads

    return vjp


defvjp_argnums(normal_log_prob, _normal_log_prob_vjp)


# ---------------------------------------------------------------- Bernoulli on logits


def _softplus_fast(x):
    # log(1 + e^x) = max(x, 0) + log(1 + e^-|x|): no overflow, and for float32 about 2.5x faster than
    # log1p (which NumPy does not vectorize). Its error is below one ulp of 1 in absolute terms, which is
    # all a log-density needs; the left tail (x < -37) rounds to 0 instead of e^x, so ``softplus`` uses log1p.
    return np.maximum(x, 0.0) + np.log(1.0 + np.exp(-np.abs(x)))


def _softplus(x):
    # max(x, 0) + log1p(e^-|x|): also relatively exact in the left tail (softplus(-40) = 4.2e-18, not 0),
    # which matters where the result is a scale; np.logaddexp(0, x) gives the same numbers, slower
    if not (isinstance(x, np.ndarray) and x.ndim and x.dtype.kind == "f"):
        return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))
    e = np.abs(x)  # in place from here on: a fresh large array costs page faults as well as a pass
    np.negative(e, out=e)
    np.exp(e, out=e)
    out = np.maximum(x, 0.0)
    out += _log1p_unit(e)
    return out


def _log1p_unit(e):
    """log(1 + e) for an array e in [0, 1], to an ulp or two, overwriting e.

    NumPy's float32 log1p is not vectorized (2x slower than log here), so float32 takes one log:
    with u = fl(1 + e), the rounding error d = (u - 1) - e is exact (Sterbenz), and
    log1p(e) = log(u) - d / u + O(d^2)."""
    if e.dtype != np.float32:
        return np.log1p(e, out=e)
    u = e + 1.0
    d = u - 1.0
    d -= e
    d /= u
    np.log(u, out=e)
    e -= d
    return e


def _sigmoid(x):
    # e^min(x,0) / (1 + e^-|x|): stable in both tails, dtype-preserving, no branch
    e = np.exp(-np.abs(x))
    return np.exp(np.minimum(x, 0.0)) / (1.0 + e) if np.ndim(x) else (1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e))


@primitive
def bernoulli_logits_log_prob(value, logits, binary=None):
    """log Bernoulli(value; sigmoid(logits)) = value logits - softplus(logits), finite at |logits| = 800.

    Gradient:  d/dlogits = value - sigmoid(logits),  d/dvalue = logits, each summed back to its shape.
    ``binary=True`` promises every value is 0 or 1 (a caller that validated them), which spares the
    gradient its own check of that.
    """
    if isinstance(logits, (int, float)):  # keep a Python logit weakly typed (float32 values stay float32)
        return value * logits - math.log1p(math.exp(-abs(logits))) - max(logits, 0.0)
    return value * logits - _softplus_fast(logits)


def _bernoulli_vjp(argnums, ans, args, kwargs):
    """d/dlogits = value - sigmoid(logits); for binary values that is (2v - 1)(1 - e^ans), one exp.

    (v = 1: 1 - sigmoid = 1 - e^{log sigmoid}; v = 0: -sigmoid = -(1 - e^{log(1 - sigmoid)}), and ``ans``
    holds those logs already. Absolute error: one ulp of 1, as for value - sigmoid(logits) computed directly.)
    """
    value, logits = args
    promised = kwargs.get("binary")

    def vjp(g):
        grads = []
        for argnum in argnums:
            if argnum == 0:
                grads.append(_unbroadcast_to(g * logits, value))
            else:
                binary = np.shape(value) == np.shape(ans) and (
                    promised or promised is None and np.all((value == 0) | (value == 1)))
                d = (2.0 * value - 1.0) * (1.0 - np.exp(ans)) if binary else value - _sigmoid(logits)
                grads.append(_unbroadcast_to(g * d, logits))
        return grads

    return vjp


defvjp_argnums(bernoulli_logits_log_prob, _bernoulli_vjp)


# ---------------------------------------------------------------- layers


@primitive
def dense(x, w, b):
    """x @ W + b for x of shape (..., n_in) (leading axes: particles, batch), W (n_in, n_out), b (n_out,).

    One 2-D matrix product on the reshape x2 = x.reshape(-1, n_in). Gradient, with g2 = g.reshape(-1, n_out):
    dx = (g2 W^T).reshape(x.shape),  dW = x2^T g2,  db = sum of g2 over its rows.
    """
    _check_dense_shapes(x, w, b)
    x2 = np.reshape(x, (-1, x.shape[-1]))
    return np.reshape(np.dot(x2, w) + b, x.shape[:-1] + (w.shape[1],))


def _check_dense_shapes(x, w, b):
    # a few tuple comparisons; np.dot's own message would not say which argument is wrong
    if np.ndim(x) < 1:
        raise ValueError(f"dense: x must have at least one axis (..., n_in), got shape {np.shape(x)}")
    if np.ndim(w) != 2 or np.shape(w)[0] != np.shape(x)[-1]:
        raise ValueError(f"dense: W must have shape (n_in, n_out) with n_in = {np.shape(x)[-1]} "
                         f"(the last axis of x, shape {np.shape(x)}), got {np.shape(w)}")
    if np.shape(b) not in ((np.shape(w)[1],), (), (1,)):
        raise ValueError(f"dense: b must have shape (n_out,) = ({np.shape(w)[1]},), got {np.shape(b)}")


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
                grads.append(_unbroadcast_to(np.sum(g2, axis=0), b))
        return grads

    return vjp


defvjp_argnums(dense, _dense_vjp)


@primitive
def elu(x):
    """ELU (alpha = 1): x for x > 0, e^x - 1 otherwise, as max(x, 0) + (e^min(x, 0) - 1) (no branch).

    exp - 1 rather than expm1: float32 expm1 is not vectorized by NumPy (5x slower), and an activation
    needs no relative accuracy near 0.

    Gradient: elu'(x) = 1 for x > 0, e^x = elu(x) + 1 otherwise, i.e. min(elu(x), 0) + 1 from the output alone.
    """
    return np.maximum(x, 0.0) + (np.exp(np.minimum(x, 0.0)) - 1.0)


defvjp(elu, lambda ans, x: lambda g: g * (np.minimum(ans, 0.0) + 1.0))


@primitive
def softplus(x):
    """softplus(x) = log(1 + e^x) = logaddexp(0, x), stable in both tails.

    Gradient: softplus'(x) = sigmoid(x) = e^(x - softplus(x)), one exp from the answer (x - ans <= 0:
    no overflow; relatively exact in the left tail, where x - ans ~ x).
    """
    return _softplus(x)


defvjp(softplus, lambda ans, x: lambda g: g * np.exp(x - ans))


@primitive
def normal_entropy(scale):
    """The entropy of N(loc, scale): 1/2 + log sqrt(2 pi) + log scale; gradient 1 / scale."""
    h = np.log(scale)
    if isinstance(h, np.ndarray):
        h += 0.5 + LOG_SQRT_2PI
        return h
    return h + (0.5 + LOG_SQRT_2PI)


defvjp(normal_entropy, lambda ans, scale: lambda g: g / scale)


@primitive
def normal_rsample(loc, scale, eps):
    """loc + scale * eps with fixed noise eps: a reparameterized Normal draw, broadcast.

    Gradient: d/dloc = g,  d/dscale = g eps,  d/deps = g scale, each summed back to its argument's shape.
    """
    return loc + scale * eps


defvjp(normal_rsample,
       lambda ans, loc, scale, eps: lambda g: _unbroadcast_to(g, loc),
       lambda ans, loc, scale, eps: lambda g: _unbroadcast_to(g * eps, scale),
       lambda ans, loc, scale, eps: lambda g: _unbroadcast_to(g * scale, eps))


@primitive
def sigmoid(x):
    """1 / (1 + e^-x), stable in both tails; its derivative is s (1 - s)."""
    return _sigmoid(x)


defvjp(sigmoid, lambda ans, x: lambda g: g * ans * (1 - ans))


@primitive
def sum(x, axis=None):
    """``np.sum(x, axis)`` whose gradient is a broadcast view of g, not an array of x's size.

    autograd's own sum materializes ``reshape(g) + zeros(x.shape)`` on the way back; the view costs
    nothing, and every consumer of a gradient here only reads it.
    """
    # np.sum's own dispatch costs more than the sum of a few numbers; add.reduce is what it calls
    return np.add.reduce(x, axis=axis) if type(x) is np.ndarray else np.sum(x, axis=axis)


def _sum_vjp(ans, x, axis=None):
    shape = np.shape(x)
    if axis is None:
        kept = (1,) * len(shape)
    else:
        axes = {a % len(shape) for a in ((axis,) if isinstance(axis, int) else axis)}
        kept = tuple(1 if i in axes else n for i, n in enumerate(shape))
    return lambda g: broadcast_view(np.reshape(g, kept), shape)


def broadcast_view(a, shape):
    """``np.broadcast_to(a, shape)`` for ``a`` of the same number of axes, read-only, in about a
    microsecond instead of several: a zero stride along each axis where ``a`` has size 1."""
    if not a.flags.c_contiguous:
        return np.broadcast_to(a, shape)
    strides = tuple(0 if n == 1 else s for n, s in zip(a.shape, a.strides))
    view = np.ndarray(shape, a.dtype, buffer=a, strides=strides)
    view.flags.writeable = False
    return view


defvjp(sum, _sum_vjp)


@primitive
def add_n(*terms, signs):
    """sum_i signs[i] * terms[i], broadcast: the ELBO's log-density terms added in one node.

    A chain of ``+`` puts one node per term on the tape, each paying autograd's broadcasting
    bookkeeping on the way back. Gradient: d/dterms[i] = signs[i] g, summed back to the term's shape.
    """
    total = terms[0] if signs[0] == 1.0 else signs[0] * terms[0]
    for sign, term in zip(signs[1:], terms[1:]):
        total = total + term if sign == 1.0 else total + sign * term
    return total


def _add_n_vjp(argnums, ans, args, kwargs):
    signs = kwargs["signs"]
    return lambda g: [_unbroadcast_to(g if signs[i] == 1.0 else signs[i] * g, args[i]) for i in argnums]


defvjp_argnums(add_n, _add_n_vjp)


# A recorded tape replays these gradients as code (ppl.tape), the same arithmetic as the VJPs above.


def _sum_rule(op, argnum, g, args, ans, let):
    axis = op.args[1] if len(op.args) > 1 else op.kwargs.get("axis")
    shape = np.shape(op.args[0])
    if axis is None:
        kept = (1,) * len(shape)
    else:
        axes = {a % len(shape) for a in ((axis,) if isinstance(axis, int) else axis)}
        kept = tuple(1 if i in axes else n for i, n in enumerate(shape))
    if kept == shape:  # summed over axes of size one only: the view would be the reshape itself
        expr = f"_reshape({g}, {kept!r})"
    else:
        expr = f"_broadcast_view(_reshape({g}, {kept!r}), {shape!r})"
    return tape.Constant(expr, g.value) if isinstance(g, tape.Constant) else expr


def _unbroadcast_code(expr, arg, ans_shape):
    """``_unbroadcast_to`` as code, for a float64 (or Python number) argument; None for another dtype."""
    shape, extra = np.shape(arg), len(ans_shape) - np.ndim(arg)
    if extra > 0:
        expr = f"np.add.reduce({expr}, axis={tuple(range(extra))!r})"
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and ans_shape[extra + i] != 1)
    if axes:
        expr = f"np.add.reduce({expr}, axis={axes!r}, keepdims=True)"
    dtype = getattr(arg, "dtype", None)
    return expr if dtype is None or not shape or dtype == np.float64 else None


def _add_n_rule(op, argnum, g, args, ans, let):
    sign = op.kwargs["signs"][argnum]
    expr = _unbroadcast_code(g if sign == 1.0 else f"{sign!r} * {g}", op.args[argnum], op.shape)
    if isinstance(g, tape.Constant) and expr is not None and np.shape(op.args[argnum]) == op.shape:
        return tape.Constant(expr, sign * g.value)  # the product autograd's vector would hold everywhere
    return expr


def _normal_log_prob_rule(op, argnum, g, args, ans, let):
    """``_normal_log_prob_vjp``'s arithmetic, its branch chosen once from the recorded arguments."""
    value, loc, scale = op.args
    v, m, s = args
    if 2 in (a for a, _ in op.back):
        inv_scale = let(f"1.0 / {s}")
        z = let(f"({v} - {m}) * {inv_scale}")
        d_loc = let(f"{z} * {inv_scale}")
        if argnum == 2:
            return _unbroadcast_code(f"{tape.times(g, f'{z} * {z} - 1.0')} * {inv_scale}", scale, op.shape)
    elif type(scale) is float and scale == 1.0 and type(loc) is float and loc == 0.0:
        d_loc = v
    elif isinstance(diff := value - loc, np.ndarray) and _fits_in(diff, scale):  # as the VJP chooses
        d_loc = let(f"({v} - {m}) * (1.0 / ({s} * {s}))")
    else:
        d_loc = let(f"({v} - {m}) / ({s} * {s})")
    g_loc = let(tape.times(g, d_loc))
    return _unbroadcast_code(f"-{g_loc}" if argnum == 0 else g_loc, op.args[argnum], op.shape)


tape.defrule(sum, _sum_rule, _broadcast_view=broadcast_view)
tape.defrule(add_n, _add_n_rule)
tape.defrule(normal_log_prob, _normal_log_prob_rule)

# The public names take the fast path when nothing is differentiated.
normal_log_prob = fast_path(normal_log_prob)
normal_rsample = fast_path(normal_rsample)
normal_entropy = fast_path(normal_entropy)
bernoulli_logits_log_prob = fast_path(bernoulli_logits_log_prob)
dense = fast_path(dense)
elu = fast_path(elu)
softplus = fast_path(softplus)
sigmoid = fast_path(sigmoid)
sum = fast_path(sum)
add_n = fast_path(add_n)
