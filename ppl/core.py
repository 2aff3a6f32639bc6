"""The runtime: sites, the handler stack, and the primitives.

A primitive call (``sample``, ``observe``, ``param``, ...) builds a ``Site``
and hands it to the stack of active handlers:

1. ``process``: handlers see the site innermost first; each may set fields
   (``value``, ``is_observed``, ``scale``, ...) or set ``stop`` so that outer
   handlers never see it;
2. the default: a sample site with no value draws from its distribution with
   the site's ``rng`` (or the global generator), a param site takes its
   initial value;
3. ``postprocess``: the same handlers see the finished site again, innermost
   first and outermost last, so an outer ``trace`` records the final value.

The stack is a tuple in a ``ContextVar``: every thread (and asyncio task) has
its own, so models running concurrently never see each other's handlers.
"""
import contextlib
import contextvars
import hashlib

import autograd.numpy as anp
import numpy as np

from . import kernels
from .errors import ShapeError, SiteError, SupportError

_STACK = contextvars.ContextVar("ppl_handler_stack", default=())
_GLOBAL_RNG = [np.random.default_rng()]


def set_rng_seed(rng_seed):
    """Reset the global generator that sites draw from when no ``seed`` handler is active."""
    _GLOBAL_RNG[0] = np.random.default_rng(rng_seed)


def global_rng():
    return _GLOBAL_RNG[0]


def fold_in(rng_seed, *data):
    """A 63-bit integer seed fixed by ``rng_seed`` and ``data`` alone (a stable digest, not ``hash``).

    Engines derive each step's seed as ``fold_in(rng_seed, step)``.
    """
    digest = hashlib.blake2b(repr((rng_seed,) + data).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class Site:
    """One primitive call as it travels through the handler stack.

    ``fn`` is the distribution of a sample site and the constraint of a param
    site; ``args`` holds a param's initial value (or function of a generator)
    and a plate's ``(size, subsample_size)``. ``scale`` and ``mask`` weight
    the site's log-density; ``intervened`` marks a value set by ``do``, which
    is not scored. ``rng`` is a ``numpy.random.Generator``, or the function
    ``name -> Generator`` that ``seed`` leaves there, called only if the site
    draws.

    The primitives pass their fields by position: on CPython 3.11 keyword
    arguments to a class cost a dict per call, about 0.35 us a site.
    """

    __slots__ = ("name", "type", "fn", "value", "is_observed", "args", "scale", "mask",
                 "plates", "infer", "rng", "stop", "intervened", "log_prob")

    def __init__(self, name, type, fn=None, value=None, is_observed=False, args=(), infer=None):
        self.name = name
        self.type = type
        self.fn = fn
        self.value = value
        self.is_observed = is_observed
        self.args = args
        self.scale = 1.0
        self.mask = None
        self.plates = ()
        self.infer = infer
        self.rng = None
        self.stop = False
        self.intervened = False
        self.log_prob = None

    @property
    def is_latent(self):
        return self.type == "sample" and not self.is_observed and not self.intervened

    def __repr__(self):
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in ("name", "type", "fn", "is_observed"))
        return f"Site({fields})"


class Handler:
    """Base of every effect handler: override ``process`` and/or ``postprocess``.

    A handler is a context manager (``with trace() as tr: model()``) and, given
    a function, a wrapper (``trace(model)(*args)`` runs ``model`` inside it).
    """

    def __init__(self, fn=None):
        self.fn = fn

    def __enter__(self):
        _STACK.set(_STACK.get() + (self,))
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        stack = _STACK.get()
        if stack and stack[-1] is self:
            _STACK.set(stack[:-1])
        else:  # exited out of order: remove the innermost occurrence
            i = len(stack) - 1 - stack[::-1].index(self)
            _STACK.set(stack[:i] + stack[i + 1:])
        return False

    def process(self, site):
        pass

    def postprocess(self, site):
        pass

    def __call__(self, *args, **kwargs):
        if self.fn is None:
            raise TypeError(f"{type(self).__name__} was created without a function to wrap")
        with self:
            return self.fn(*args, **kwargs)


@contextlib.contextmanager
def isolated():
    """Run a block with no active handlers (a guide tracing its model while being traced itself)."""
    token = _STACK.set(())
    try:
        yield
    finally:
        _STACK.reset(token)


def apply_stack(site, stack=None):
    """Send ``site`` through the active handlers (see the module docstring) and return it.

    ``stack`` is the active stack when the caller has it already.
    """
    handlers = (_STACK.get() if stack is None else stack)[::-1]  # innermost first
    seen = 0
    for handler in handlers:
        seen += 1
        handler.process(site)
        if site.stop:  # the handlers outside this one never see the site
            handlers = handlers[:seen]
            break
    if site.value is None:
        _default(site)
    elif site.is_observed:
        fit_observed(site)
    for handler in handlers:
        handler.postprocess(site)
    return site


def _default(site):
    if site.type == "sample":  # the common unseeded draw skips the call (a tenth of a microsecond a site)
        try:
            site.value = site.fn.sample(_GLOBAL_RNG[0] if site.rng is None else site_rng(site))
        except SiteError as err:
            if err.site is not None:
                raise
            raise type(err)(f"site {site.name!r}: {err}", site.name) from err
    elif site.type == "param":
        init = site.args[0]
        site.value = init(site_rng(site)) if callable(init) else init
    elif site.type == "plate":
        site.value = _plate_indices(lambda: site_rng(site), *site.args)


def site_rng(site):
    """The site's generator, else the global one; a seed's keying function is called here, so only a
    site that draws pays for its generator."""
    rng = site.rng
    if rng is None:
        return _GLOBAL_RNG[0]
    if callable(rng):
        rng = site.rng = rng(site.name)
    return rng


def _plate_indices(get_rng, size, subsample_size, subsample=None):
    """The caller's minibatch, all the indices, or a random subset: only the last needs ``get_rng()``."""
    if subsample is not None:
        return subsample
    if subsample_size == size:
        return np.arange(size)
    return get_rng().choice(size, subsample_size, replace=False)


# ---------------------------------------------------------------- primitives


def sample(name, fn, sample_shape=(), infer=None):
    """A random variable named ``name`` with distribution ``fn``.

    Its value comes from a handler (``condition``, ``replace``, a guide) or is
    drawn. ``sample_shape`` adds independent leading batch axes.
    """
    if sample_shape:
        fn = fn.expand(tuple(sample_shape) + fn.batch_shape)
    stack = _STACK.get()
    if not stack:
        return fn.sample(_GLOBAL_RNG[0])
    return apply_stack(Site(name, "sample", fn, None, False, (), infer), stack).value


def observe(name, fn, value, infer=None):
    """A random variable with a fixed, observed ``value``; returns the value (or a handler's)."""
    if value is None:
        raise SiteError(f"observe({name!r}): value is None; use sample() for a latent variable", name)
    if not _STACK.get():
        return value
    return apply_stack(Site(name, "sample", fn, value, True, (), infer)).value


def param(name, init, constraint=None):
    """A learnable array (or dict of arrays), initialised from ``init``: a value or ``f(rng)``.

    Engines supply its value; the value lives in ``constraint`` (real by default).
    """
    if not _STACK.get():
        return init(_GLOBAL_RNG[0]) if callable(init) else init
    return apply_stack(Site(name, "param", constraint, None, False, (init,))).value


def deterministic(name, value):
    """Record a value derived from other sites in the trace (it is not scored)."""
    if not _STACK.get():
        return value
    return apply_stack(Site(name, "deterministic", value=value)).value


def factor(name, log_weight):
    """Add ``log_weight`` (an array, summed) to the log joint."""
    if _STACK.get():
        apply_stack(Site(name, "factor", value=log_weight))


def fit_observed(site, shared_dims=()):
    """Score an observed value over its own batch shape, as Pyro and NumPyro do.

    A value whose batch shape is larger than the distribution's (a vector of
    data under a scalar ``loc``) expands the distribution to the broadcast
    shape. Only the silent outer product is an error: a broadcast larger than
    both the value's batch shape and the distribution's, except along a plate
    that the value does not carry (data shared by every particle or chain).
    """
    fn, value = site.fn, site.value
    shape = () if type(value) is float else getattr(value, "shape", None)  # np.shape(float) costs a microsecond
    if shape is None:
        shape = np.shape(value)
    event_dim = len(fn.event_shape)
    if shape == (fn.batch_shape + fn.event_shape if event_dim else fn.batch_shape) or event_dim > len(shape):
        return  # the common case; a value short of its event axes is the distribution's error to name
    value_batch = shape[:len(shape) - event_dim]
    batch = fn.batch_shape
    try:
        out = np.broadcast_shapes(value_batch, batch)
    except ValueError:
        raise ShapeError(f"site {site.name!r}: the observed value's batch shape {value_batch} does not broadcast "
                         f"with the distribution's batch shape {batch} ({type(fn).__name__}, event_shape "
                         f"{fn.event_shape}); {_SHAPE_FIX}", site.name) from None
    if out == batch:
        return
    if out != value_batch and not _shared_along_plates(site, value_batch, out, shared_dims):
        raise ShapeError(
            f"site {site.name!r}: the observed value's batch shape {value_batch} and the distribution's batch "
            f"shape {batch} ({type(fn).__name__}) broadcast to {out}, larger than both: a silent outer "
            f"product; {_SHAPE_FIX}", site.name)
    site.fn = fn.expand(out)


_SHAPE_FIX = ("reshape the value or the parameters so their axes line up (e.g. y.reshape(-1) against a (N,) "
              "loc), put the data axis in a plate, or move event axes out of the batch with to_event")


def _shared_along_plates(site, value_batch, out, shared_dims):
    """Whether every axis that the value is broadcast along is a plate's axis that the value lacks."""
    plate_dims = {p.dim for p in site.plates}.union(shared_dims)
    for dim in range(-len(out), 0):
        value_size = value_batch[dim] if -dim <= len(value_batch) else None
        if out[dim] != (value_size or 1) and (value_size is not None or dim not in plate_dims):
            return False
    return True


def sum_all(x):
    """``x`` summed to a scalar (scalars pass through: no array call on the common scalar path)."""
    return kernels.sum(x) if getattr(x, "shape", ()) != () else x


def site_log_prob(site):
    """The (scaled, masked) log-density array of a sample or factor site; cached in ``site.log_prob``.

    A value whose log-density does not have the distribution's batch shape
    (the silent ``(N, 1)`` against ``(N,)`` broadcast) is a ``ShapeError``
    naming the site; a value outside the support a ``SiteError``.
    """
    if site.log_prob is not None:
        return site.log_prob
    if site.type == "factor":
        lp = site.value
    else:
        fn = site.fn
        try:
            lp = fn.log_prob(site.value)
        except SiteError:
            raise
        except ValueError as err:  # the distribution's own check: name the site too
            raise _shape_or_support_error(site, err) from err
        lp_shape = lp.shape if hasattr(lp, "shape") else ()
        if lp_shape != fn.batch_shape:
            raise ShapeError(
                f"site {site.name!r}: value of shape {anp.shape(site.value)} gives log_prob of shape "
                f"{lp_shape}, but the distribution {type(fn).__name__} has batch_shape {fn.batch_shape} "
                f"and event_shape {fn.event_shape}"
                + (f" (inside {', '.join(map(repr, site.plates))})" if site.plates else ""), site.name)
    if site.mask is not None:
        masked = anp.where(site.mask, lp, 0.0)
        if anp.shape(masked) != anp.shape(lp):
            raise ShapeError(f"site {site.name!r}: mask of shape {anp.shape(site.mask)} does not fit the "
                             f"log_prob's shape {anp.shape(lp)}", site.name)
        lp = masked
    if site.scale is not None and not (type(site.scale) is float and site.scale == 1.0):
        lp = lp * site.scale
    site.log_prob = lp
    return lp


def _shape_or_support_error(site, err):
    """A ``ValueError`` from ``log_prob`` is a ``ShapeError`` when the value does not broadcast with the
    distribution (NumPy's own broadcast failure) and a ``SupportError`` otherwise."""
    fn = site.fn
    shape = anp.shape(site.value)
    value_batch = shape[:max(len(shape) - len(fn.event_shape), 0)]
    try:
        np.broadcast_shapes(value_batch, fn.batch_shape)
    except ValueError:
        return ShapeError(f"site {site.name!r}: value of shape {shape} does not broadcast with the batch shape "
                          f"{fn.batch_shape} of {type(fn).__name__} ({err})", site.name)
    if "broadcast" in str(err):
        return ShapeError(f"site {site.name!r}: {err}", site.name)
    return SupportError(f"site {site.name!r}: {err}", site.name)


class plate(Handler):
    """Conditional independence along one array axis of the batch.

    ``with plate("data", N) as idx:`` broadcasts every sample site inside to
    size ``N`` at batch axis ``dim`` (counted from the right of the batch
    shape). With ``subsample_size=M`` it yields ``M`` random indices (a
    ``plate`` site, seeded like any other and replaceable to feed chosen
    minibatches) and multiplies log-densities by ``N / M``, so a minibatch
    estimates the full-data log joint without bias. ``subsample=idx`` (as in
    Pyro) gives the indices of a minibatch the caller chose: nothing is drawn,
    and the plate site records them.
    """

    def __init__(self, name, size, subsample_size=None, dim=-1, subsample=None):
        if not isinstance(dim, int) or dim >= 0:
            raise ValueError(f"plate {name!r}: dim must be a negative int, got {dim!r}")
        if int(size) != size or size < 0:
            raise ValueError(f"plate {name!r}: size must be a non-negative int, got {size!r}")
        if subsample is not None:
            subsample = np.asarray(subsample)
            if subsample.ndim != 1 or subsample_size not in (None, len(subsample)):
                raise ValueError(f"plate {name!r}: subsample must be a vector of indices (of length "
                                 f"subsample_size={subsample_size}), got shape {subsample.shape}")
            subsample_size = len(subsample)
        self.subsample = subsample
        subsample_size = size if subsample_size is None else subsample_size
        if not 0 <= subsample_size <= size:
            raise ValueError(f"plate {name!r}: subsample_size={subsample_size} must lie in [0, size={size}]")
        super().__init__()
        self.name, self.size, self.subsample_size, self.dim = name, int(size), int(subsample_size), dim
        self.scale = self.size / self.subsample_size if self.subsample_size else 1.0

    def __enter__(self):
        if _STACK.get():
            site = apply_stack(Site(self.name, "plate", args=(self.size, self.subsample_size, self.subsample)))
            indices = np.asarray(site.value)
            if indices.shape != (self.subsample_size,):
                raise ShapeError(f"plate {self.name!r}: subsample indices have shape {indices.shape}, "
                                 f"expected ({self.subsample_size},)", self.name)
        else:
            indices = _plate_indices(global_rng, self.size, self.subsample_size, self.subsample)
        super().__enter__()
        return indices

    def process(self, site):
        if site.type == "sample":
            site.fn = broadcast_to_plate(site.fn, self.subsample_size, self.dim, self.name, site.name)
        elif site.type != "factor":
            return
        site.plates = site.plates + (self,)
        if self.scale != 1.0:
            site.scale = site.scale * self.scale

    def __repr__(self):
        return f"plate({self.name!r}, {self.size}, subsample_size={self.subsample_size}, dim={self.dim})"


def broadcast_to_plate(fn, size, dim, plate_name, site_name):
    """``fn`` with its batch shape broadcast to ``size`` at batch axis ``dim``."""
    batch = fn.batch_shape
    if len(batch) < -dim:
        batch = (1,) * (-dim - len(batch)) + batch
    i = len(batch) + dim
    if batch[i] == size:
        return fn if batch == fn.batch_shape else fn.expand(batch)
    if batch[i] != 1:
        raise ShapeError(
            f"site {site_name!r}: batch_shape {fn.batch_shape} has size {batch[i]} at dim {dim}, "
            f"but plate {plate_name!r} there has size {size}", site_name)
    return fn.expand(batch[:i] + (size,) + batch[i + 1:])
