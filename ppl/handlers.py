"""Every effect handler, each a few lines on ``core.Handler``.

A handler overrides ``process`` (on the way in, innermost handler first)
and/or ``postprocess`` (on the way out, outermost last). Nesting has a
meaning: the innermost handler acts first, and a value set by an inner
handler is not overwritten by an outer one.

Each works as a context manager and as a wrapper::

    >>> import ppl, ppl.distributions as dist
    >>> def model():
    ...     return ppl.sample("x", dist.Normal(0.0, 1.0))
    >>> with trace() as tr:
    ...     _ = model()
    >>> list(tr)
    ['x']
    >>> list(trace(model).get_trace())
    ['x']
"""
import hashlib
import threading

import autograd.numpy as anp
import numpy as np

from .core import Handler, site_log_prob, sum_all
from .errors import DuplicateSiteError, MissingValueError, UnknownSiteError


class Trace(dict):
    """The sites of one run, in order: ``name -> Site``."""

    def log_prob_sum(self):
        """Total scaled, masked log-density of the sample and factor sites (``do`` sites are not scored)."""
        total = 0.0
        for site in self.values():
            if _is_scored(site):
                total = total + sum_all(site_log_prob(site))
        return total

    def compute_log_prob(self):
        """Fill ``site.log_prob`` for every scored site and return the trace."""
        for site in self.values():
            if _is_scored(site):
                site_log_prob(site)
        return self

    def sites(self, type="sample", observed=None):
        """The sites of ``type``; ``observed=True/False`` keeps only observed/latent sample sites."""
        return [s for s in self.values() if s.type == type and (observed is None or s.is_observed == observed)]

    def format(self, log_prob=True):
        """A table a person can read: site, type, distribution, shapes, observed, log-prob."""
        head = ("site", "type", "distribution", "batch", "event", "value", "observed", "log_prob")
        rows = [head if log_prob else head[:-1]]
        for site in self.values():
            fn = site.fn if site.type == "sample" else None
            row = [site.name, site.type, _family(fn) if fn is not None else "-",
                   str(fn.batch_shape) if fn is not None else "-",
                   str(fn.event_shape) if fn is not None else "-",
                   str(anp.shape(site.value)) if site.value is not None and not isinstance(site.value, dict)
                   else ("dict" if isinstance(site.value, dict) else "-"),
                   "yes" if site.is_observed else ("do" if site.intervened else "no")]
            if log_prob:
                row.append(_format_log_prob(site))
            rows.append(row)
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)

    __str__ = format

    def __repr__(self):
        return f"Trace({list(self)})"


def _family(fn):
    """The family's name, seen through the Expanded and Independent wrappers."""
    while hasattr(fn, "base"):
        fn = fn.base
    return type(fn).__name__


def _is_scored(site):
    return (site.type == "sample" and not site.intervened) or site.type == "factor"


def _format_log_prob(site):
    if not _is_scored(site):
        return "-"
    try:
        return f"{float(anp.sum(site_log_prob(site))):.4g}"
    except Exception as err:  # a summary must print even for a broken site
        return f"error: {type(err).__name__}"


class trace(Handler):
    """Record every site, in order, into a ``Trace``.

    An error raised inside gets a note listing the sites recorded so far.

        >>> import ppl, ppl.distributions as dist
        >>> tr = trace(lambda: ppl.sample("x", dist.Normal(0.0, 1.0))).get_trace()
        >>> tr["x"].type, tr["x"].is_observed
        ('sample', False)
    """

    def __enter__(self):
        super().__enter__()
        self.trace = Trace()
        return self.trace

    def __exit__(self, exc_type, exc_value, traceback):
        if isinstance(exc_value, Exception) and not getattr(exc_value, "_ppl_sites_noted", False):
            try:
                exc_value.add_note("sites recorded so far:\n" + (self.trace.format(log_prob=False)
                                                                if self.trace else "(none)"))
                exc_value._ppl_sites_noted = True
            except AttributeError:  # an exception type that refuses attributes
                pass
        return super().__exit__(exc_type, exc_value, traceback)

    def postprocess(self, site):
        if self.trace.setdefault(site.name, site) is not site:  # one dict lookup: this runs for every site
            raise DuplicateSiteError(f"two sites named {site.name!r} in one run of the model", site.name)

    def get_trace(self, *args, **kwargs):
        """Run the wrapped function and return its ``Trace``."""
        self(*args, **kwargs)
        return self.trace


class _SetValues(Handler):
    """Shared by ``condition``, ``replace`` and ``do``: give named sites a value.

    A name in ``data`` that no site of the run used is an error that lists
    the sites that exist (checked when the run ends without error).
    """

    types = ("sample",)

    def __init__(self, fn=None, data=None, strict=True):
        if fn is not None and not callable(fn) and data is None:
            fn, data = None, fn  # handler(data) as a context manager
        if not hasattr(data, "keys"):
            raise TypeError(f"{type(self).__name__}: data must be a dict of site name -> value, got {type(data).__name__}")
        super().__init__(fn)
        self.data, self.strict = data, strict

    def __enter__(self):
        self._seen = []
        return super().__enter__()

    def __exit__(self, exc_type, exc_value, traceback):
        super().__exit__(exc_type, exc_value, traceback)
        if exc_type is None and self.strict and len(self.data):
            seen = set(self._seen)
            unknown = [name for name in self.data if name not in seen]
            if unknown:
                raise UnknownSiteError(
                    f"{type(self).__name__}: no site named {unknown[0]!r}"
                    f"{' (nor ' + ', '.join(map(repr, unknown[1:])) + ')' if unknown[1:] else ''}; "
                    f"the sites are {self._seen}", unknown[0])
        return False

    def process(self, site):
        if site.type in self.types:
            if self.strict:  # the names are only for the unknown-site check
                self._seen.append(site.name)
            if site.value is None and site.name in self.data:
                self.set(site, self.data[site.name])

    def set(self, site, value):
        site.value = value


_ABSENT = object()


class condition(_SetValues):
    """Make the named sample sites observed with the given values.

        >>> import ppl, ppl.distributions as dist
        >>> model = lambda: ppl.sample("x", dist.Normal(0.0, 1.0))
        >>> tr = trace(condition(model, {"x": 0.5})).get_trace()
        >>> tr["x"].value, tr["x"].is_observed
        (0.5, True)
    """

    def set(self, site, value):
        site.value = value
        site.is_observed = True


class replace(_SetValues):
    """Give the named sample, param (or plate) sites a value; sample sites stay latent.

    This is Edward2's interceptor that sets ``value``: the course's criticism
    runs the model forward with its latents replaced by fitted values.

        >>> import ppl, ppl.distributions as dist
        >>> def model():
        ...     z = ppl.sample("z", dist.Normal(0.0, 1.0))
        ...     return ppl.sample("x", dist.Normal(z, 1e-9))
        >>> tr = trace(seed(replace(model, {"z": 3.0}), 0)).get_trace()
        >>> tr["z"].is_observed, round(float(tr["x"].value), 6)
        (False, 3.0)
    """

    types = ("sample", "param", "plate")


class do(_SetValues):
    """Intervene: set the named sites' values without scoring them (Pearl's do-operator).

        >>> import ppl, ppl.distributions as dist
        >>> model = lambda: ppl.sample("x", dist.Normal(0.0, 1.0))
        >>> tr = trace(do(model, {"x": 5.0})).get_trace()
        >>> float(tr.log_prob_sum())
        0.0
    """

    def set(self, site, value):
        site.value = value
        site.intervened = True


class _LogJoint(Handler):
    def __init__(self, fn, values):
        super().__init__(fn)
        self.values = values
        self.total = 0.0
        self.names = set()
        self.used = 0

    def process(self, site):
        if site.type not in ("sample", "param"):
            return
        value = self.values.get(site.name, _ABSENT)
        if value is not _ABSENT:
            self.used += 1
            if site.value is None:
                site.value = value
        elif site.value is None and site.type == "sample":
            raise MissingValueError(
                f"log_joint: latent site {site.name!r} has no value; pass it in values "
                f"(given: {sorted(self.values)})", site.name)

    def postprocess(self, site):
        if site.name in self.names:
            raise DuplicateSiteError(f"two sites named {site.name!r} in one run of the model", site.name)
        self.names.add(site.name)
        if _is_scored(site):
            self.total = self.total + sum_all(site_log_prob(site))


def log_joint(fn):
    """``f(values, *args, **kwargs)``: the model's total log-density with latents set from ``values``.

    Sums (scaled, masked) log-densities as sites pass and keeps no trace;
    differentiable by autograd with respect to ``values``. Every latent
    sample site needs a value; a name in ``values`` that is no site is an
    error.

        >>> import ppl, ppl.distributions as dist
        >>> def model():
        ...     z = ppl.sample("z", dist.Normal(0.0, 1.0))
        ...     ppl.observe("x", dist.Normal(z, 1.0), 0.0)
        >>> round(float(log_joint(model)({"z": 0.0})), 6)  # 2 * log N(0; 0, 1)
        -1.837877
    """

    def log_joint_fn(values, *args, **kwargs):
        handler = _LogJoint(fn, values)
        handler(*args, **kwargs)
        if handler.used < len(values):
            unknown = sorted(set(values) - handler.names)
            raise UnknownSiteError(f"log_joint: no site named {unknown[0]!r}; the sites are "
                                   f"{sorted(handler.names)}", unknown[0])
        return handler.total

    return log_joint_fn


class seed(Handler):
    """Give every site below a generator keyed by ``(rng_seed, site name)``.

    A site's draws depend on the seed and its own name only: adding, removing
    or reordering other sites never changes them, and the same seed gives the
    same draws. One PCG64 per thread is re-keyed per site from a BLAKE2b digest
    (a few microseconds), not a new Generator per site.

        >>> import ppl, ppl.distributions as dist
        >>> model = lambda: ppl.sample("x", dist.Normal(0.0, 1.0))
        >>> seed(model, 0)() == seed(model, 0)()
        True
    """

    def __init__(self, fn=None, rng_seed=None):
        if fn is not None and not callable(fn) and rng_seed is None:
            fn, rng_seed = None, fn  # seed(0) as a context manager
        if isinstance(rng_seed, (bool, float)) or not isinstance(rng_seed, (int, np.integer)):
            raise TypeError(f"seed: rng_seed must be an int, got {rng_seed!r}")
        super().__init__(fn)
        self.rng_seed = int(rng_seed)
        self._digest = hashlib.blake2b(str(self.rng_seed).encode() + b"\x00", digest_size=32)

    def process(self, site):
        if site.rng is None:
            site.rng = self.rng_for  # keyed when the site draws: a replaced or observed site never does

    def rng_for(self, name):
        """The generator of the site ``name``, re-keyed to the start of its stream."""
        digest = self._digest.copy()
        digest.update(name.encode())
        key = digest.digest()
        rng = _thread_generator()
        rng.bit_generator.state = {"bit_generator": "PCG64",
                                   "state": {"state": int.from_bytes(key[:16], "little"),
                                             "inc": int.from_bytes(key[16:], "little") | 1},
                                   "has_uint32": 0, "uinteger": 0}
        return rng


_THREAD = threading.local()


def _thread_generator():
    """One PCG64 per thread, re-keyed for each site just before it draws (building one costs ~50 us)."""
    rng = getattr(_THREAD, "rng", None)
    if rng is None:
        rng = _THREAD.rng = np.random.Generator(np.random.PCG64(0))
    return rng


class block(Handler):
    """Hide sites from the handlers outside this one.

    ``hide`` lists names to hide, ``expose`` names to keep visible, or
    ``hide_fn(site) -> bool`` decides; with none of them every site is hidden.

        >>> import ppl, ppl.distributions as dist
        >>> model = lambda: ppl.sample("x", dist.Normal(0.0, 1.0))
        >>> list(trace(block(model, hide=["x"])).get_trace())
        []
    """

    def __init__(self, fn=None, hide_fn=None, hide=None, expose=None):
        super().__init__(fn)
        if hide_fn is not None:
            self.hide_fn = hide_fn
        elif hide is not None:
            hide = set(hide)
            self.hide_fn = lambda site: site.name in hide
        elif expose is not None:
            expose = set(expose)
            self.hide_fn = lambda site: site.name not in expose
        else:
            self.hide_fn = lambda site: True

    def process(self, site):
        if self.hide_fn(site):
            site.stop = True


class scale(Handler):
    """Multiply the log-densities of sites below by ``factor`` (minibatch scaling, KL annealing).

        >>> import ppl, ppl.distributions as dist
        >>> model = lambda: ppl.observe("x", dist.Normal(0.0, 1.0), 0.0)
        >>> float(trace(scale(model, 2.0)).get_trace().log_prob_sum()) == 2 * float(dist.Normal(0.0, 1.0).log_prob(0.0))
        True
    """

    def __init__(self, fn=None, factor=1.0):
        if not np.all(np.asarray(factor) > 0):
            raise ValueError(f"scale: factor must be positive, got {factor!r}")
        super().__init__(fn)
        self.factor = factor

    def process(self, site):
        if site.type in ("sample", "factor"):
            site.scale = site.scale * self.factor


class mask(Handler):
    """Drop the log-density terms where ``mask`` is False (missing data); values are still drawn.

    ``mask`` is a boolean array for every sample site below, or a dict
    ``{site name: boolean array}`` to mask only those sites (e.g. the missing
    entries of an observed array, leaving the latents alone).

        >>> import numpy as np, ppl, ppl.distributions as dist
        >>> model = lambda: ppl.observe("x", dist.Normal(np.zeros(2), 1.0), np.zeros(2))
        >>> lp = trace(mask(model, np.array([True, False]))).get_trace().log_prob_sum()
        >>> bool(np.isclose(lp, dist.Normal(0.0, 1.0).log_prob(0.0)))
        True
    """

    def __init__(self, fn=None, mask=True):
        masks = mask if isinstance(mask, dict) else {None: mask}
        for name, m in masks.items():
            if np.asarray(m).dtype != bool:
                raise TypeError(f"mask: mask{'' if name is None else f' for site {name!r}'} must be boolean, "
                                f"got dtype {np.asarray(m).dtype}")
        super().__init__(fn)
        self.mask = mask

    def process(self, site):
        if site.type != "sample":
            return
        m = self.mask.get(site.name) if isinstance(self.mask, dict) else self.mask
        if m is not None:
            site.mask = m if site.mask is None else site.mask & m
