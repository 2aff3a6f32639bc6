"""Adam and SGD over one flat buffer of parameters.

``ravel(params)`` packs a (nested) dict of arrays into one contiguous 1-D
``buffer`` and hands out views of it per parameter; an optimizer step is then
a handful of vectorized in-place operations on that vector, however many
arrays the model has. Optimizer state is a plain dict of arrays (savable with
``np.savez``, comparable with ``np.array_equal``)::

    flat = ravel({"w": w, "net": {"W0": W0, "b0": b0}})
    opt = Adam(1e-3)
    state = opt.init(flat.buffer)
    state = opt.step(flat.buffer, flat.ravel_like(grads), state)   # flat.unravel() sees the new values
"""
import math
from collections.abc import Mapping

import numpy as np


class Flat:
    """A nested dict of arrays laid out in one contiguous 1-D ``buffer``.

    Leaves are stored in a fixed order (keys sorted at every level), so the
    same structure always gives the same layout. ``paths[i]`` is the key
    tuple of leaf i, ``shapes[i]`` its shape, ``offsets[i]`` where it starts
    in ``buffer``, ``sizes[i]`` how many entries it has.
    """

    def __init__(self, paths, shapes, buffer):
        self.paths, self.shapes, self.buffer = list(paths), [tuple(s) for s in shapes], buffer
        self.sizes = [math.prod(s) for s in self.shapes]
        self.offsets = [0] * len(self.sizes)
        for i in range(1, len(self.sizes)):
            self.offsets[i] = self.offsets[i - 1] + self.sizes[i - 1]
        self.size = sum(self.sizes)

    def views(self, buffer=None):
        """One array per leaf, in ``paths`` order, each a reshaped view into ``buffer`` (default: ours)."""
        buffer = self._check_buffer(buffer)
        return [buffer[o:o + n].reshape(s) for o, n, s in zip(self.offsets, self.sizes, self.shapes)]

    def unravel(self, buffer=None):
        """The nested dict of views into ``buffer`` (default: ours; or any flat vector of this layout).

        Writing into ``buffer`` (e.g. an optimizer step) changes the arrays of the returned dict.
        """
        return nest(self.paths, self.views(buffer))

    def ravel_like(self, params):
        """Pack a nested dict of this structure (e.g. gradients) into a new flat vector of ``buffer``'s dtype."""
        leaves = dict(_leaves(params))
        missing = [_name(p) for p in self.paths if p not in leaves]
        extra = [_name(p) for p in leaves if p not in set(self.paths)]
        if missing or extra:
            raise ValueError(f"ravel_like: params do not match the layout: missing {missing}, unexpected {extra}")
        out = np.empty(self.size, self.buffer.dtype)
        for path, offset, size, shape in zip(self.paths, self.offsets, self.sizes, self.shapes):
            leaf = leaves[path]
            if np.shape(leaf) != shape:
                raise ValueError(f"ravel_like: {_name(path)!r} has shape {np.shape(leaf)}, the layout says {shape}")
            out[offset:offset + size] = np.ravel(leaf)
        return out

    def layout_key(self):
        """What identifies the layout: ((path, shape), ...) and the dtype, to match a checkpoint to a model."""
        return tuple(zip(map(_name, self.paths), self.shapes)), str(self.buffer.dtype)

    def _check_buffer(self, buffer):
        if buffer is None:
            return self.buffer
        if np.ndim(buffer) != 1 or np.shape(buffer)[0] != self.size:
            raise ValueError(f"buffer must be a flat vector of length {self.size} for this layout, "
                             f"got shape {np.shape(buffer)}")
        return buffer


def nest(paths, leaves):
    """The nested dict with ``leaves[i]`` at the key path ``paths[i]`` (the inverse of ``_leaves``)."""
    out = {}
    for path, leaf in zip(paths, leaves):
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = leaf
    return out


def _name(path):
    return "/".join(map(str, path))


def _leaves(params, prefix=()):
    """(path, leaf) pairs of a nested dict, keys sorted at every level."""
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of arrays (or of dicts of arrays), got {type(params).__name__}")
    for key in sorted(params, key=str):
        value = params[key]
        if isinstance(value, Mapping):
            yield from _leaves(value, prefix + (key,))
        else:
            yield prefix + (key,), value


def ravel(params):
    """A ``Flat`` holding a copy of ``params`` (a dict name -> array, or name -> dict of arrays, nested).

    The buffer's dtype is the result dtype of all leaves (all float32 stays
    float32); integer or boolean leaves alone give float64, since an optimizer
    needs a floating buffer.
    """
    items = list(_leaves(params))
    arrays = []
    for path, value in items:
        array = np.asarray(value)
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise TypeError(f"ravel: parameter {_name(path)!r} must be a numeric array, got {type(value).__name__}")
        arrays.append(array)
    dtype = np.result_type(*arrays) if arrays else np.dtype(np.float64)
    if not np.issubdtype(dtype, np.inexact):
        dtype = np.dtype(np.float64)
    flat = Flat([p for p, _ in items], [a.shape for a in arrays], np.empty(sum(a.size for a in arrays), dtype))
    for view, array in zip(flat.views(), arrays):
        view[...] = array
    return flat


# ---------------------------------------------------------------- optimizers

BLOCK = 65536  # entries per block of an optimizer step (see ``_Optimizer._blocks``)


def _positive(name, value):
    """``value`` as a float, or a ValueError naming it unless it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _clip_norm(clip_norm):
    return None if clip_norm is None else _positive("clip_norm", clip_norm)


class _Optimizer:
    """What Adam and SGD share: argument checks, gradient clipping, scratch memory, ``update`` on dicts.

    ``step(buffer, grad, state)`` writes the new parameters into ``buffer``
    and the new moments into the state's own arrays, and returns a new dict
    holding those same arrays (so the state passed in is updated too; copy it
    first to keep it).
    """

    def init(self, buffer):
        """The state before the first step: zero moments shaped like ``buffer`` (or a nested dict's ravel)."""
        if isinstance(buffer, Mapping):
            buffer = ravel(buffer).buffer
        buffer = self._check_buffer(buffer)
        return {"step": np.array(0, dtype=np.int64), **{k: np.zeros_like(buffer) for k in self.moments}}

    def update(self, params, grads, state):
        """One step on nested dicts, for callers who keep no ``Flat``: ravel, step, unravel.

        Returns (new params as a nested dict of views into one new buffer, new state); ``params`` is
        not modified. ``state`` comes from ``init(params)``.
        """
        flat = ravel(params)
        state = self.step(flat.buffer, flat.ravel_like(grads), state)
        return flat.unravel(), state

    def _check_buffer(self, buffer):
        if not isinstance(buffer, np.ndarray) or buffer.ndim != 1 or not np.issubdtype(buffer.dtype, np.inexact):
            raise TypeError(f"buffer must be a 1-D floating numpy array (a Flat's buffer), "
                            f"got {type(buffer).__name__} of shape {np.shape(buffer)}")
        return buffer

    def _check_step(self, buffer, grad, state, out=None):
        self._check_buffer(buffer)
        if np.shape(grad) != buffer.shape:
            raise ValueError(f"grad has shape {np.shape(grad)}, the buffer {buffer.shape}")
        if out is not None and (self._check_buffer(out).shape != buffer.shape or out.dtype != buffer.dtype):
            raise ValueError(f"out has shape {out.shape} and dtype {out.dtype}, the buffer {buffer.shape} "
                             f"and {buffer.dtype}")
        for key in ("step",) + self.moments:
            if key not in state:
                raise ValueError(f"state has no {key!r}: make it with {type(self).__name__}.init(buffer)")
        for key in self.moments:
            if state[key].shape != buffer.shape:
                raise ValueError(f"state[{key!r}] has shape {state[key].shape}, the buffer {buffer.shape}")

    def _clipped(self, grad):
        """g scaled so that its global L2 norm is at most ``clip_norm`` (unchanged if it already is)."""
        if self.clip_norm is not None:
            norm = math.sqrt(float(np.dot(grad, grad)))
            if norm > self.clip_norm:
                grad = grad * (self.clip_norm / norm)
        return grad

    def _blocks(self, buffer):
        """(slice, scratch) pairs covering ``buffer`` in blocks of ``BLOCK`` entries.

        A step makes many passes over its arrays; done block by block, each block's parameters,
        gradient, moments and scratch (about 2.5 MB in float64) stay in cache between passes, which
        for a million parameters halves the step. The scratch is reused across steps.
        """
        size = min(BLOCK, len(buffer))
        scratch = getattr(self, "_tmp", None)
        if scratch is None or scratch.shape != (size,) or scratch.dtype != buffer.dtype:
            scratch = self._tmp = np.empty(size, buffer.dtype)
        for start in range(0, len(buffer), BLOCK):
            stop = min(start + BLOCK, len(buffer))
            yield slice(start, stop), scratch[:stop - start]


class Adam(_Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction, in the PyTorch form; state ``{"step", "m", "v"}``.

        m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2,   t <- t + 1
        x <- x - lr m_hat / (sqrt(v_hat) + eps),   m_hat = m / (1 - b1^t),  v_hat = v / (1 - b2^t)

    ``clip_norm`` first scales g so its global L2 norm is at most ``clip_norm``.
    """

    moments = ("m", "v")

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, clip_norm=None):
        self.lr, self.eps, self.clip_norm = _positive("lr", lr), _positive("eps", eps), _clip_norm(clip_norm)
        try:
            b1, b2 = (float(b) for b in betas)
        except (TypeError, ValueError):
            raise ValueError(f"betas must be a pair of numbers in [0, 1), got {betas!r}") from None
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must be a pair of numbers in [0, 1), got {betas!r}")
        self.betas = (b1, b2)

    def step(self, buffer, grad, state, out=None):
        """Update ``buffer`` (and the state's ``m``, ``v``) in place, in eleven passes with no allocation.

        With ``out`` (an array like ``buffer``) the new parameters go there and ``buffer`` keeps the old
        ones: a caller that keeps the last parameters swaps two buffers instead of copying one.
        """
        self._check_step(buffer, grad, state, out)
        b1, b2 = self.betas
        t = int(state["step"]) + 1
        # lr m_hat / (sqrt(v_hat) + eps) = lr_t m / (sqrt(v) + eps_t): both corrections folded into scalars
        correction2 = math.sqrt(1.0 - b2**t)
        lr_t, eps_t = self.lr * correction2 / (1.0 - b1**t), self.eps * correction2
        grad, m, v = self._clipped(grad), state["m"], state["v"]
        out = buffer if out is None else out
        for block, tmp in self._blocks(buffer):
            g, m_, v_ = grad[block], m[block], v[block]
            np.subtract(g, m_, out=tmp)  # m += (1 - b1)(g - m), i.e. m = b1 m + (1 - b1) g
            tmp *= 1.0 - b1
            m_ += tmp
            np.multiply(g, g, out=tmp)  # v += (1 - b2)(g^2 - v)
            tmp -= v_
            tmp *= 1.0 - b2
            v_ += tmp
            np.sqrt(v_, out=tmp)
            tmp += eps_t
            np.divide(m_, tmp, out=tmp)
            tmp *= lr_t
            np.subtract(buffer[block], tmp, out=out[block])
        return {"step": np.array(t, dtype=np.int64), "m": m, "v": v}


class SGD(_Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum, as in PyTorch; state ``{"step", "velocity"}``.

        u <- momentum u + g,   x <- x - lr u

    ``momentum=0`` is plain SGD; ``clip_norm`` first caps the gradient's global L2 norm.
    """

    moments = ("velocity",)

    def __init__(self, lr, momentum=0.0, clip_norm=None):
        self.lr, self.clip_norm = _positive("lr", lr), _clip_norm(clip_norm)
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float, np.integer, np.floating)) \
                or not math.isfinite(momentum) or momentum < 0:
            raise ValueError(f"momentum must be a finite number >= 0, got {momentum!r}")
        self.momentum = float(momentum)

    def step(self, buffer, grad, state, out=None):
        """Update ``buffer`` (and the state's ``velocity``) in place, in four passes with no allocation;
        with ``out``, the new parameters go there instead (as for ``Adam.step``)."""
        self._check_step(buffer, grad, state, out)
        grad = self._clipped(grad)
        velocity, out = state["velocity"], buffer if out is None else out
        for block, tmp in self._blocks(buffer):
            u = velocity[block]
            u *= self.momentum
            u += grad[block]
            np.multiply(u, self.lr, out=tmp)
            np.subtract(buffer[block], tmp, out=out[block])
        return {"step": np.array(int(state["step"]) + 1, dtype=np.int64), "velocity": velocity}
