"""The potential energy of a model on a flat unconstrained vector: what NUTS, HMC and Laplace move on.

For latent sites z_1..z_K with supports S_k, each gets the bijection
T_k = ``biject_to(S_k)`` from the reals, and the flat vector u concatenates
the unconstrained pieces u_k in trace order. The potential is

    U(u) = -( log p(x, T(u)) + sum_k log|det dT_k/du_k| ),

whose exp(-U) is the posterior density of u. A support may depend on other
latents (``Uniform(0, 1 - a)``): its transform is rebuilt from the site as it
runs, so a draw never leaves its support; a support that does not depend on
them is transformed by a map built once.

The structure (sites, shapes, transforms, whether the model broadcasts over
chains) is found once; an evaluation then runs the model under one small
handler that sets each latent from its slice of u and adds up log-densities
and log-Jacobians, and autograd gives the gradient in the same reverse pass
(each site's slice is its own root on the tape: no slicing nodes).

After a few evaluations of a shape (one flat vector, or C chains) the model
does not run at all: the third records its arithmetic (``ppl.tape``), the
recording is checked against the first, fresh, run at its point, and every
later evaluation replays it, without the handlers, the distributions'
constructors or autograd's boxes (10x faster on eight schools,
``benchmarks/nuts.py``). Batches of more than ``RECORD_MAX_CHAINS`` are not
recorded: their cost is arithmetic, not Python. A model whose arithmetic depends on its values
(control flow, a value read out of autograd's sight) keeps running as
Python (``replay_problem`` says why); ``replay_agrees`` lets a sampler check
the replay at its draws.

A leading axis of flats, shape (C, D), is C chains: the model runs once
inside a plate of size C left of every batch axis (as the ELBO's particles),
so the C log-densities and gradients cost one evaluation. A model that does
not broadcast over that axis falls back to a loop over chains, with one
warning saying why.
"""
import autograd.numpy as anp
import numpy as np
from autograd.tracer import getval, isbox

from .. import kernels
from ..autodiff import value_and_grads
from ..core import Handler, plate, site_log_prob, sum_all
from ..distributions.constraints import Constraint
from ..distributions.transforms import IdentityTransform, biject_to
from ..errors import SiteError
from ..handlers import seed, trace
from ..tape import NotReplayable, Tape, record
from .elbo import NOT_BROADCASTING, NotVectorizable, particle_reducer, vectorized_or_looped
from .init import init_to_uniform

CHAINS = "_chains"
RECORD_AT = 3  # the evaluation of a shape at which its arithmetic is recorded
# A larger batch (Pathfinder's thousand draws, Laplace's Hessian points) is evaluated a few times, and its
# cost is arithmetic, which a replay does not cut: recording it would only add the recording.
RECORD_MAX_CHAINS = 128


class _Site:
    """The layout of one latent site: where its piece of u lives and how it maps to the model's space."""

    __slots__ = ("name", "shape", "batch_ndim", "ushape", "offset", "size", "transform", "pad")

    def __init__(self, name, shape, batch_ndim, ushape, offset, transform):
        self.name, self.shape, self.batch_ndim, self.ushape = name, shape, batch_ndim, ushape
        self.offset, self.size = offset, int(np.prod(ushape, dtype=int))
        self.transform = transform  # None: the support depends on other latents, rebuilt per run
        self.pad = ()


class _Evaluate(Handler):
    """Set each latent site from its piece of u; collect log-densities and log-Jacobians as terms.

    ``reduce`` turns a log-density array into a scalar (one run) or a (C,)
    vector (a chain axis); ``record`` keeps constrained and deterministic
    values for ``unravel``; ``inverse`` maps given constrained values back
    to u instead (for initial points from a dict).
    """

    def __init__(self, sites, pieces, reduce, record=False, inverse=None):
        super().__init__()
        self.sites, self.pieces, self.reduce = sites, pieces, reduce
        self.terms, self.used = [], 0
        self.values = {} if record else None
        self.inverse = inverse

    def process(self, site):
        if site.type != "sample" or site.value is not None:
            return
        layout = self.sites.get(site.name)
        if layout is None:
            raise SiteError(f"potential: latent site {site.name!r} did not exist when the model was first "
                            f"traced (latent sites: {list(self.sites)}); the set of latent sites must not "
                            "depend on their values", site.name)
        transform = layout.transform or biject_to(site.fn.support)
        if self.inverse is not None:
            u = self.inverse(layout, transform, site)
        else:
            u = self.pieces[site.name]
        y = transform(u)
        site.value = y
        self.used += 1
        if type(transform) is not IdentityTransform:
            self.terms.append(self.reduce(transform.log_abs_det_jacobian(u, y)))

    def postprocess(self, site):
        if site.type == "sample" and not site.intervened or site.type == "factor":
            self.terms.append(self.reduce(site_log_prob(site)))
        if self.values is not None and (site.type == "deterministic" or site.name in self.sites):
            self.values[site.name] = site.value

    def total(self):
        if not self.terms:
            return 0.0
        return kernels.add_n(*self.terms, signs=(1.0,) * len(self.terms))


def _depends_on_tape(constraint, depth=0):
    """Whether a constraint holds an autograd box, i.e. its bounds are computed from the latents."""
    if depth > 4 or not isinstance(constraint, Constraint):
        return False
    for value in vars(constraint).values():
        if isbox(value) or isinstance(value, Constraint) and _depends_on_tape(value, depth + 1):
            return True
    return False


class _Unrecorded:
    """A shape evaluated fewer than ``RECORD_AT`` times: its first point and result (what its recording
    will be checked against), and how many times it has been evaluated."""

    __slots__ = ("pieces", "result", "count")

    def __init__(self, pieces, result):
        self.pieces = [np.array(p) for p in pieces]  # copies: the pieces are views the caller may reuse
        self.result, self.count = result, 1


class Potential:
    """U(u) = -(log joint + log|Jacobian|) of a model at flat unconstrained vectors; see the module docstring.

    ``dim`` is D, ``site_names`` and ``shapes`` the latent sites in flat
    order with their shapes in the model's space.
    """

    def __init__(self, model, args=(), kwargs=None, rng_seed=0, replay=True):
        self.model, self.args, self.kwargs = model, tuple(args), dict(kwargs or {})
        self._plan = None  # None: not tried with chains yet; "vectorize" or "loop"
        self.replay, self.replay_problem = replay, None
        self._tapes = {}  # number of chains (None: one flat) -> its Tape, or _Unrecorded until recorded
        self._setup(rng_seed)

    # ------------------------------------------------------------ structure, found once

    def _setup(self, rng_seed):
        tr = trace(init_to_uniform(seed(self.model, rng_seed))).get_trace(*self.args, **self.kwargs)
        self.sites, offset = {}, 0
        for name, site in tr.items():
            if not site.is_latent:
                continue
            if site.fn.support.is_discrete:
                raise SiteError(f"potential: latent site {name!r} ({type(site.fn).__name__}) is discrete; "
                                "HMC and NUTS need continuous latents (marginalise it, or observe it)", name)
            shape = tuple(np.shape(site.value))
            try:
                transform = biject_to(site.fn.support)
            except NotImplementedError as err:
                raise SiteError(f"potential: latent site {name!r}: {err}", name) from err
            ushape = tuple(transform.inverse_shape(shape))
            self.sites[name] = _Site(name, shape, len(site.fn.batch_shape), ushape, offset, transform)
            offset += self.sites[name].size
        self.dim = offset
        self.site_names = list(self.sites)
        self.shapes = {name: s.shape for name, s in self.sites.items()}
        self.deterministic_shapes = {n: tuple(np.shape(s.value)) for n, s in tr.items() if s.type == "deterministic"}
        self.batch_ndim = max((len(s.fn.batch_shape) for s in tr.values() if s.type == "sample"), default=0)
        for s in self.sites.values():  # a latent's value in a chain run: (C,) + ones + its own shape
            s.pad = (1,) * (self.batch_ndim - s.batch_ndim)
        self._find_dependent_supports(tr)

    def _find_dependent_supports(self, tr):
        """Run once on the tape: a support whose bounds are boxes is computed from the latents."""
        dependent = set()

        class _Spy(Handler):
            def process(self, site):
                if site.type == "sample" and site.name in sites and _depends_on_tape(site.fn.support):
                    dependent.add(site.name)

        sites = self.sites
        u = np.zeros(self.dim)
        spy = _Spy()
        with spy:
            value_and_grads(lambda *pieces: self._run(pieces, sum_all)[0], self._split(u))
        for name in dependent:
            self.sites[name].transform = None

    # ------------------------------------------------------------ evaluations

    def _split(self, flat, num_chains=None):
        """The pieces of u per site, shaped as the site's unconstrained value (plus the chain axes)."""
        if num_chains is None:
            return [flat[s.offset:s.offset + s.size].reshape(s.ushape) for s in self.sites.values()]
        return [flat[:, s.offset:s.offset + s.size].reshape((num_chains,) + s.pad + s.ushape)
                for s in self.sites.values()]

    def _run(self, pieces, reduce, record=False, num_chains=None, inverse=None):
        handler = _Evaluate(self.sites, dict(zip(self.site_names, pieces)), reduce, record, inverse)
        if num_chains is None:
            with handler:
                self.model(*self.args, **self.kwargs)
        else:
            with handler, plate(CHAINS, num_chains, dim=-(self.batch_ndim + 1)):
                self.model(*self.args, **self.kwargs)
        if handler.used != len(self.sites):
            raise SiteError(f"potential: the model ran {handler.used} of its {len(self.sites)} latent sites "
                            f"{self.site_names}; the set of latent sites must not depend on their values")
        return handler.total(), handler

    def _check_flat(self, flat):
        flat = np.asarray(flat, dtype=float)
        if flat.ndim not in (1, 2) or flat.shape[-1] != self.dim:
            raise ValueError(f"potential: flat must have shape ({self.dim},) or (chains, {self.dim}) for the "
                             f"sites {self.shapes}, got shape {flat.shape}")
        return flat

    def _single(self, flat):
        value, grads = self._evaluate(None, self._split(flat))
        return float(value), self._join(grads, ())

    def _single_objective(self, *pieces):
        u = -self._run(pieces, sum_all)[0]
        return u, u

    def _objective(self, key):
        """What is differentiated for a shape: one flat vector (``key`` None) or a batch of ``key`` chains."""
        return self._single_objective if key is None else self._batched_objective(key)

    def _evaluate(self, key, pieces):
        """The value and gradients at ``pieces``, replayed from the tape of this shape ``key`` once there is
        one (the sampler's hot path: nothing else is built). A shape is recorded at its ``RECORD_AT``-th
        evaluation (a shape met once or twice, as Laplace's Hessian batches are, does not pay for a
        recording), and the tape is kept only if its replay at the shape's first point equals that point's
        fresh evaluation."""
        tape = self._tapes.get(key)
        if type(tape) is Tape:
            return tape.value_and_grads(pieces)
        objective = self._objective(key)
        if not self.replay or self.replay_problem is not None or key is not None and key > RECORD_MAX_CHAINS:
            return _fresh(objective, pieces)
        if tape is None:
            result = _fresh(objective, pieces)
            self._tapes[key] = _Unrecorded(pieces, result)
            return result
        if tape.count + 1 < RECORD_AT:
            tape.count += 1
            return _fresh(objective, pieces)
        first = tape
        try:
            tape = record(objective, pieces)
        except NotReplayable as err:
            self.stop_replay(str(err))
            return _fresh(objective, pieces)
        if not tape.agrees(lambda _: first.result, first.pieces):
            self.stop_replay("its replay at another point differs from running the model there "
                             "(its arithmetic depends on the values)")
            return _fresh(objective, pieces)
        self._tapes[key] = tape
        return tape.value_and_grads(pieces)

    def replay_agrees(self, flat):
        """Whether every recorded tape, replayed at the rows of ``flat`` (N, D), equals a fresh run of the
        model there: a sampler's check, at its draws, that the recording holds where it went. A
        potential that does not replay agrees trivially."""
        flat = self._check_flat(flat).reshape(-1, self.dim)
        if not len(flat):
            return True
        for key, tape in self._tapes.items():
            if not isinstance(tape, Tape):
                continue
            if key is None:
                points = [self._split(row) for row in flat]
            else:  # the rows in batches of ``key`` (the last one filled up from the first rows)
                rows = np.resize(flat, (-(-len(flat) // key) * key, self.dim)).reshape(-1, key, self.dim)
                points = [self._split(batch, key) for batch in rows]
            objective = self._objective(key)
            if not all(tape.agrees(lambda p: _fresh(objective, p), pieces) for pieces in points):
                return False
        return True

    def tape_source(self, num_chains=None):
        """The Python the replay runs for a flat vector (or a batch of ``num_chains``), once recorded; else None."""
        tape = self._tapes.get(num_chains)
        return tape.source if isinstance(tape, Tape) else None

    def stop_replay(self, why):
        """Run the model in Python from now on (``why`` goes to ``replay_problem``)."""
        self.replay_problem, self._tapes = why, {}

    def _join(self, grads, lead):
        if not grads:
            return np.zeros(lead + (0,))
        shape = lead + (-1,)
        return np.concatenate([g.reshape(shape) if type(g) is np.ndarray else np.reshape(g, shape) for g in grads],
                              axis=-1)

    def value_and_grad(self, flat):
        """U and dU/du at ``flat``: a float and (D,) for shape (D,); (C,) and (C, D) for (C, D)."""
        flat = self._check_flat(flat)
        if flat.ndim == 1:
            return self._single(flat)
        if self._plan == "vectorize":
            return self._batched(flat)
        if self._plan == "loop":
            return self._looped(flat)
        return vectorized_or_looped(self.model, lambda: self._first_batched(flat), lambda: self._first_looped(flat),
                                    axis="chains")

    def _first_batched(self, flat):
        result = self._batched(flat)
        self._verify(flat, result)
        self._plan = "vectorize"
        return result

    def _first_looped(self, flat):
        result = self._looped(flat)  # a genuine error in the model raises here too
        self._plan = "loop"
        return result

    def _batched(self, flat):
        c = len(flat)
        values, grads = self._evaluate(c, self._split(flat, c))
        return np.asarray(values, dtype=float), self._join(grads, (c,))

    def _batched_objective(self, c):
        reduce = particle_reducer(c, self.batch_ndim)

        def objective(*pieces):
            values = -self._run(pieces, reduce, num_chains=c)[0]
            shape = anp.shape(values)
            if shape != (c,):
                if shape not in ((), (1,)):
                    raise NotVectorizable(f"the log joint has shape {shape}, not ({c},)")
                values = values + np.zeros(c)
            return kernels.sum(values), values
        return objective

    def _looped(self, flat):
        results = [self._single(row) for row in flat]
        return np.array([r[0] for r in results]), np.stack([r[1] for r in results]) if results else flat.copy()

    def _verify(self, flat, result):
        """Once: the first two chains batched must equal their single evaluations (a model that indexes
        ``x[0]`` may broadcast without error and still mix chains up). A single chain is checked with a
        second, nearby point, since a batch of one hides a wrong broadcast."""
        if len(flat) == 1:
            flat = np.stack([flat[0], flat[0] + 0.1 * np.cos(np.arange(self.dim))])
            result = self._batched(flat)
        for i in range(min(2, len(flat))):
            value, grad = self._single(flat[i])
            if not (np.isclose(result[0][i], value, rtol=1e-7, atol=1e-9)
                    and np.allclose(result[1][i], grad, rtol=1e-6, atol=1e-8)):
                raise NotVectorizable(f"chain {i} evaluated with the others gives U = {result[0][i]!r}, "
                                      f"alone U = {value!r}: the model mixes values across the chain axis")

    @property
    def vectorized(self):
        """Whether chains are evaluated in one run (None until a batch of chains has been evaluated)."""
        return None if self._plan is None else self._plan == "vectorize"

    def value(self, flat):
        """U alone (no gradient), same shapes as ``value_and_grad``."""
        return self.value_and_grad(flat)[0]

    # ------------------------------------------------------------ the model's space

    def unravel(self, flat):
        """The latent (and deterministic) site values at ``flat``, in the model's own space.

        A flat of shape (D,) gives each site its own shape; (N, D) gives
        (N, *shape) per site, from one vectorized run when the model broadcasts.
        """
        flat = self._check_flat(flat)
        if flat.ndim == 1:
            return self._record(flat)
        n = len(flat)
        if self._plan != "loop":
            try:
                _, handler = self._run(self._split(flat, n), particle_reducer(n, self.batch_ndim), True, n)
                values = {}
                shapes = dict(self.shapes, **self.deterministic_shapes)
                for name, value in handler.values.items():
                    value = np.asarray(value)
                    if value.size == n * int(np.prod(shapes[name], dtype=int)):
                        values[name] = value.reshape((n,) + shapes[name])
                    else:
                        values[name] = np.broadcast_to(value, (n,) + shapes[name]).copy()
                return values
            except NOT_BROADCASTING:
                pass  # not the hot path: site by site, row by row
        rows = [self._record(row) for row in flat]
        return {name: np.stack([r[name] for r in rows]) for name in rows[0]} if rows else {}

    def _record(self, flat):
        _, handler = self._run(self._split(flat), sum_all, True)
        return {name: np.asarray(value) for name, value in handler.values.items()}

    def flatten(self, values):
        """The flat u of constrained site ``values`` (a dict over every latent site), through the model."""
        missing = [n for n in self.site_names if n not in values]
        if missing:
            raise KeyError(f"potential.flatten: no value for the latent sites {missing}")
        return self._invert(values, None)

    def _invert(self, values, fallback):
        """u for the sites in ``values`` (mapped back by the transform of the support as it runs), the
        ``fallback`` array's pieces for the rest."""
        u = np.zeros(self.dim) if fallback is None else np.array(fallback, dtype=float)

        def inverse(layout, transform, site):
            if layout.name in values:
                value = np.asarray(values[layout.name], dtype=float)
                if value.shape != layout.shape:
                    raise ValueError(f"potential: value for site {layout.name!r} has shape {value.shape}, "
                                     f"expected {layout.shape}")
                if not site.fn.support.holds(value):
                    raise ValueError(f"potential: value for site {layout.name!r} lies outside its support "
                                     f"{site.fn.support}")
                piece = np.asarray(transform.inv(value), dtype=float)
                u[layout.offset:layout.offset + layout.size] = piece.reshape(-1)
            return u[layout.offset:layout.offset + layout.size].reshape(layout.ushape)

        self._run([None] * len(self.sites), sum_all, inverse=inverse)
        return u

    def init(self, rng, strategy="uniform", num_chains=None, radius=2.0):
        """Initial flat point(s): uniform in (-radius, radius) unconstrained (Stan's jitter), or a dict of
        constrained values for some sites (the others uniform). Shape (D,), or (num_chains, D)."""
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        shape = (self.dim,) if num_chains is None else (int(num_chains), self.dim)
        u = rng.uniform(-radius, radius, size=shape)
        if isinstance(strategy, dict):
            unknown = [k for k in strategy if k not in self.sites]
            if unknown:
                raise KeyError(f"potential.init: no latent site named {unknown[0]!r}; the latent sites are "
                               f"{self.site_names}")
            rows = [self._invert(strategy, row) for row in np.atleast_2d(u)]
            u = rows[0] if num_chains is None else np.stack(rows)
        elif strategy != "uniform":
            raise ValueError(f"potential.init: strategy must be 'uniform' or a dict of site values, got {strategy!r}")
        return u

    def __repr__(self):
        return f"Potential(dim={self.dim}, sites={self.shapes})"


def _fresh(objective, pieces):
    """Run ``objective`` (returning the scalar and the value to report) under autograd."""
    reported = {}

    def scalar(*p):
        out, reported["value"] = objective(*p)
        return out

    _, grads = value_and_grads(scalar, pieces)
    return getval(reported["value"]), grads


def potential(model, *args, **kwargs):
    """The ``Potential`` of ``model(*args, **kwargs)``: U(u) = -(log joint + log|Jacobian|) on flat u."""
    return Potential(model, args, kwargs)
