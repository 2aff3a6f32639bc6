"""Adam and SGD over one flat buffer of parameters.

``ravel(params)`` packs a (nested) dict of arrays into one contiguous
vector and hands out views of it per parameter; an optimizer step is then a
handful of vectorized in-place operations on that vector, however many
arrays the model has. Optimizer state is a plain dict of arrays (savable
with ``np.savez``, comparable with ``np.array_equal``).
"""
import math

import numpy as np


class Flat:
    """A nested dict of arrays laid out in one 1-D ``buffer``; leaves in sorted key order."""

    def __init__(self, paths, shapes, buffer):
        self.paths, self.shapes, self.buffer = paths, shapes, buffer
        sizes = [int(np.prod(s, dtype=int)) for s in shapes]
        self.offsets = [int(o) for o in np.cumsum([0] + sizes)[:-1]]
        self.sizes = sizes

    def views(self, buffer=None):
        """One array per leaf, each a view into ``buffer`` (default: this one)."""
        buffer = self.buffer if buffer is None else buffer
        return [buffer[o:o + n].reshape(s) for o, n, s in zip(self.offsets, self.sizes, self.shapes)]

    def unravel(self, buffer=None):
        """The nested dict of views into ``buffer``."""
        out = {}
        for path, view in zip(self.paths, self.views(buffer)):
            node = out
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = view
        return out

    def ravel_like(self, params):
        """Pack a nested dict with this layout (e.g. gradients) into a new flat vector."""
        leaves = dict(_leaves(params))
        return np.concatenate([np.ravel(leaves[p]) for p in self.paths]).astype(self.buffer.dtype, copy=False) \
            if self.paths else np.zeros(0, self.buffer.dtype)

    def layout_key(self):
        """What identifies the layout: paths, shapes and dtype (to match a checkpoint to a model)."""
        return tuple(zip(("/".join(map(str, p)) for p in self.paths), map(tuple, self.shapes))), \
            str(self.buffer.dtype)


def _leaves(params, prefix=()):
    for key in sorted(params, key=str):
        value = params[key]
        if isinstance(value, dict):
            yield from _leaves(value, prefix + (key,))
        else:
            yield prefix + (key,), value


def ravel(params):
    """A ``Flat`` holding a copy of ``params`` (a dict name -> array, or -> dict of arrays)."""
    items = [(path, np.asarray(value)) for path, value in _leaves(params)]
    dtype = np.result_type(*[v for _, v in items]) if items else np.float64
    if not np.issubdtype(dtype, np.floating):
        dtype = np.float64
    buffer = np.concatenate([v.ravel() for _, v in items]).astype(dtype) if items else np.zeros(0, dtype)
    return Flat([p for p, _ in items], [v.shape for _, v in items], buffer)


def _check_positive(name, value):
    if not (isinstance(value, (int, float, np.floating)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _clip(grad, clip_norm):
    if clip_norm is not None:
        norm = float(np.sqrt(np.dot(grad, grad)))
        if norm > clip_norm:
            grad = grad * (clip_norm / norm)
    return grad


class Adam:
    """Adam (Kingma & Ba 2015) with bias correction; ``clip_norm`` caps the gradient's global L2 norm.

        m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
        x <- x - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    """

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, clip_norm=None):
        _check_positive("lr", lr)
        _check_positive("eps", eps)
        if not all(0 <= b < 1 for b in betas) or len(betas) != 2:
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        if clip_norm is not None:
            _check_positive("clip_norm", clip_norm)
        self.lr, self.betas, self.eps, self.clip_norm = lr, tuple(betas), eps, clip_norm

    def init(self, buffer):
        return {"step": np.array(0, dtype=np.int64), "m": np.zeros_like(buffer), "v": np.zeros_like(buffer)}

    def step(self, buffer, grad, state):
        """Update ``buffer`` in place with a dozen passes and no allocation; the state's arrays too."""
        b1, b2 = self.betas
        t = int(state["step"]) + 1
        grad = _clip(grad, self.clip_norm)
        m, v = state["m"], state["v"]
        tmp = self._scratch(buffer)
        np.subtract(grad, m, out=tmp)  # m += (1 - b1)(g - m)
        tmp *= 1 - b1
        m += tmp
        np.multiply(grad, grad, out=tmp)  # v += (1 - b2)(g^2 - v)
        tmp -= v
        tmp *= 1 - b2
        v += tmp
        # x -= lr_t m / (sqrt(v) + eps_t): the bias corrections folded into two scalars
        lr_t = self.lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        np.sqrt(v, out=tmp)
        tmp += self.eps * math.sqrt(1 - b2**t)
        np.divide(m, tmp, out=tmp)
        tmp *= lr_t
        buffer -= tmp
        return {"step": np.array(t, dtype=np.int64), "m": m, "v": v}

    def _scratch(self, buffer):
        scratch = getattr(self, "_tmp", None)
        if scratch is None or scratch.shape != buffer.shape or scratch.dtype != buffer.dtype:
            scratch = self._tmp = np.empty_like(buffer)
        return scratch

    def update(self, params, grads, state):
        """Adam on nested dicts (ravels, steps, unravels) for callers who keep no flat buffer."""
        flat = ravel(params)
        state = self.step(flat.buffer, flat.ravel_like(grads), state)
        return flat.unravel(), state


class SGD:
    """SGD with momentum: u <- momentum u + g; x <- x - lr u."""

    def __init__(self, lr, momentum=0.0, clip_norm=None):
        _check_positive("lr", lr)
        if not (isinstance(momentum, (int, float)) and 0 <= momentum):
            raise ValueError(f"momentum must be >= 0, got {momentum!r}")
        if clip_norm is not None:
            _check_positive("clip_norm", clip_norm)
        self.lr, self.momentum, self.clip_norm = lr, momentum, clip_norm

    def init(self, buffer):
        return {"step": np.array(0, dtype=np.int64), "velocity": np.zeros_like(buffer)}

    def step(self, buffer, grad, state):
        grad = _clip(grad, self.clip_norm)
        velocity = state["velocity"]
        velocity *= self.momentum
        velocity += grad
        buffer -= self.lr * velocity
        return {"step": np.array(int(state["step"]) + 1, dtype=np.int64), "velocity": velocity}

    def update(self, params, grads, state):
        flat = ravel(params)
        state = self.step(flat.buffer, flat.ravel_like(grads), state)
        return flat.unravel(), state
