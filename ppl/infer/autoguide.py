"""Guides built automatically from one trace of the model.

Each latent site of the model gets guide parameters in the unconstrained
space: a site with support S is drawn as ``u`` on R^n and placed at
``T(u)`` with ``T = biject_to(S)``, and ``log q`` gains ``-log|det dT/du|``
(a ``Delta`` site carrying that log-density). A site with real support is
drawn directly.

- ``AutoDelta``: a point per site, in the model's own space (MAP).
- ``AutoNormal``: mean-field Gaussian, ``scale = softplus(raw)``.
- ``AutoMultivariateNormal``: one full-rank Gaussian over all sites,
  ``scale_tril = diag(softplus(raw)) (I + A)``, A strictly lower triangular.
"""
import autograd.numpy as anp
import numpy as np

from .. import kernels
from ..core import Handler, isolated, param, sample
from ..distributions import MultivariateNormal, Normal
from ..distributions.delta import Delta
from ..distributions.transforms import IdentityTransform, biject_to
from ..errors import GuideStructureError
from ..handlers import seed, trace
from .init import init_to_uniform


softplus = kernels.softplus  # log(1 + e^x) in one fused node; the Gaussian autoguides' scale map


def inverse_softplus(y):
    return y + np.log(-np.expm1(-y))


class SitePrototype:
    """What a guide needs to know about one latent site of the model."""

    def __init__(self, site):
        self.name = site.name
        self.fn = site.fn
        self.shape = tuple(np.shape(site.value))
        self.event_dim = len(site.fn.event_shape)
        self.batch_shape = self.shape[:len(self.shape) - self.event_dim]
        self.support = site.fn.support
        self.transform = biject_to(self.support)
        self.is_identity = isinstance(self.transform, IdentityTransform)
        event = self.shape[len(self.batch_shape):]
        inverse_shape = getattr(self.transform, "inverse_shape", None)
        self.unconstrained_event = tuple(inverse_shape(event)) if inverse_shape and event else event
        self.unconstrained_shape = self.batch_shape + self.unconstrained_event
        self.size = int(np.prod(self.unconstrained_shape, dtype=int))
        self.dtype = np.result_type(site.value) if np.issubdtype(np.result_type(site.value), np.floating) \
            else np.float64

    def constrain(self, u, transform=None):
        """``T(u)`` and ``log|det dT/du|`` summed over the site's event axes.

        ``transform`` is the map built from the site as it ran, for a support
        that depends on other latents; by default the one built at setup.
        """
        transform = self.transform if transform is None else transform
        value = transform(u)
        if isinstance(transform, IdentityTransform):
            return value, 0.0
        log_det = transform.log_abs_det_jacobian(u, value)
        extra = self.event_dim - transform.event_dim
        if extra > 0:
            log_det = anp.sum(log_det, axis=tuple(range(-extra, 0)))
        return value, log_det


def init_uniform(proto, rng, radius=2.0):
    """Uniform in (-radius, radius) in the unconstrained space (Stan's default)."""
    return rng.uniform(-radius, radius, proto.unconstrained_shape).astype(proto.dtype)


def _initial_unconstrained(strategy, proto, rng):
    if isinstance(strategy, dict):
        if proto.name not in strategy:
            return init_uniform(proto, rng)
        value = np.asarray(strategy[proto.name], dtype=proto.dtype)
        if value.shape != proto.shape:
            value = np.broadcast_to(value, proto.shape)
        return np.asarray(proto.transform.inv(value), dtype=proto.dtype)
    if strategy == "uniform":
        return init_uniform(proto, rng)
    if strategy == "median":  # the median of a few prior draws, per coordinate
        draws = proto.fn.sample(rng, (15,))
        return np.asarray(proto.transform.inv(np.median(draws, axis=0)), dtype=proto.dtype)
    if strategy == "mean":
        return np.asarray(proto.transform.inv(np.broadcast_to(proto.fn.mean, proto.shape)), dtype=proto.dtype)
    if callable(strategy):
        return np.asarray(proto.transform.inv(strategy(proto.name, proto.fn, rng)), dtype=proto.dtype)
    raise ValueError(f"init_loc_fn must be 'uniform', 'median', 'mean', a dict or a function; got {strategy!r}")


class AutoGuide:
    """Base: on its first call the guide traces the model once and keeps a prototype per latent site."""

    def __init__(self, model, init_loc_fn="uniform"):
        if not (isinstance(init_loc_fn, dict) or callable(init_loc_fn)
                or init_loc_fn in ("uniform", "median", "mean")):
            raise ValueError(f"{type(self).__name__}: unknown init_loc_fn {init_loc_fn!r}; "
                             "use 'uniform', 'median', 'mean', a dict of site values or a function")
        self.model = model
        self.init_loc_fn = init_loc_fn
        self.prototypes = None

    def setup(self, *args, **kwargs):
        """Trace the model once (its params at their initial values) and record its latent sites.

        A second trace with other draws finds the supports that depend on
        other latents (``Uniform(0, 1 - a)``): their bounds change with the
        draws. Such a model is run again at every draw of the guide to build
        those transforms from the values of the moment (``_constrain``).
        """
        with isolated():  # the guide may itself be running under handlers
            model_trace = trace(init_to_uniform(seed(self.model, 0))).get_trace(*args, **kwargs)
            other = trace(init_to_uniform(seed(self.model, 1))).get_trace(*args, **kwargs)
        self.model_args = (args, kwargs)
        # the deepest batch of any site: draws for a dependent support ride left of it (as particles do)
        self.batch_ndim = max((len(site.fn.batch_shape) for site in model_trace.values() if site.type == "sample"),
                              default=0)
        self.dependent = {name for name, site in model_trace.items()
                          if site.is_latent and name in other and not _same_bounds(site.fn.support,
                                                                                   other[name].fn.support)}
        self.prototypes = {}
        for site in model_trace.values():
            if not site.is_latent:
                continue
            if not (type(site.scale) is float and site.scale == 1.0) and site.plates:
                raise GuideStructureError(
                    f"{type(self).__name__}: site {site.name!r} is inside a subsampled plate "
                    f"{site.plates}; autoguides need the full data there (write a guide for minibatches)")
            self.prototypes[site.name] = SitePrototype(site)
            self.prototypes[site.name].dependent = site.name in self.dependent
        if isinstance(self.init_loc_fn, dict):
            unknown = sorted(set(self.init_loc_fn) - set(self.prototypes))
            if unknown:
                raise GuideStructureError(f"{type(self).__name__}: init_loc_fn names {unknown}, which are not "
                                          f"latent sites of the model ({sorted(self.prototypes)})")

    def __call__(self, *args, **kwargs):
        if self.prototypes is None:
            self.setup(*args, **kwargs)
        return self.draw(*args, **kwargs)

    def init_loc(self, proto):
        return lambda rng: _initial_unconstrained(self.init_loc_fn, proto, rng)

    # Posterior summaries in the model's own space, from fitted params.
    def median(self, params):
        if self.dependent:
            locs = {name: self._loc(params, proto) for name, proto in self.prototypes.items()}
            return {name: np.asarray(value) for name, (value, _) in
                    self._constrain(locs, *self.model_args[0], **self.model_args[1]).items()}
        return {name: self._unconstrained_point(params, proto) for name, proto in self.prototypes.items()}

    def mean(self, params, num_samples=2000, rng_seed=0):
        return self._moments(params, num_samples, rng_seed)[0]

    def std(self, params, num_samples=2000, rng_seed=0):
        return self._moments(params, num_samples, rng_seed)[1]

    def sample_posterior(self, params, num_samples, rng_seed=0):
        """``num_samples`` joint draws per site, shape ``(num_samples,) + site shape``, vectorized."""
        rng = np.random.default_rng(rng_seed)
        draws = self._sample_unconstrained(params, num_samples, rng)
        if self.dependent:
            nd = self.batch_ndim
            padded = {name: np.reshape(draws[name], (num_samples,) + (1,) * (nd - len(p.batch_shape))
                                       + p.unconstrained_shape) for name, p in self.prototypes.items()}
            values = self._constrain(padded, *self.model_args[0], **self.model_args[1])
            return {name: np.reshape(np.asarray(values[name][0]), (num_samples,) + p.shape)
                    for name, p in self.prototypes.items()}
        return {name: np.asarray(proto.constrain(draws[name])[0]) for name, proto in self.prototypes.items()}

    def _constrain(self, pieces, *args, **kwargs):
        """``{site: (T(u), log|det dT/du|)}`` for unconstrained ``pieces``.

        With no dependent support each site's map is the one built at setup;
        otherwise the model runs once, on its own, with each latent set to
        ``T(u)`` for the ``T`` of its support at that moment, so a bound
        computed from other latents is always honoured.
        """
        if not self.dependent:
            return {name: self.prototypes[name].constrain(u) for name, u in pieces.items()}
        setter = _set_unconstrained(self.prototypes, pieces)
        with isolated(), setter:
            self.model(*args, **kwargs)
        return setter.values

    def _unconstrained_point(self, params, proto):
        return np.asarray(proto.transform(self._loc(params, proto)))

    def _moments(self, params, num_samples, rng_seed):
        means, stds = {}, {}
        closed = self._gaussian_moments(params)
        draws = None
        for name, proto in self.prototypes.items():
            if proto.is_identity and closed is not None:
                means[name], stds[name] = closed[name]
                continue
            if draws is None:
                draws = self.sample_posterior(params, num_samples, rng_seed)
            means[name], stds[name] = draws[name].mean(0), draws[name].std(0)
        return means, stds

    def _gaussian_moments(self, params):
        return None


class AutoDelta(AutoGuide):
    """A point mass per latent site, a param in the site's own constrained space.

    With it the ELBO is the log joint at the point, so SVI is MAP: the mode of
    the posterior density in the model's parameterization (no Jacobian).
    """

    def draw(self, *args, **kwargs):
        if self.dependent:  # points kept unconstrained: a support that moves cannot be a param's constraint
            points = {name: param(f"{name}.loc", self.init_loc(proto)) for name, proto in self.prototypes.items()}
            return {name: sample(name, Delta(value, event_dim=self.prototypes[name].event_dim))
                    for name, (value, _) in self._constrain(points, *args, **kwargs).items()}
        values = {}
        for name, proto in self.prototypes.items():
            init_u = self.init_loc(proto)
            point = param(f"{name}.loc", lambda rng, p=proto, f=init_u: np.asarray(p.transform(f(rng))),
                          constraint=proto.support)
            values[name] = sample(name, Delta(point, event_dim=proto.event_dim))
        return values

    def _loc(self, params, proto):
        if self.dependent:
            return params[f"{proto.name}.loc"]
        return proto.transform.inv(params[f"{proto.name}.loc"])

    def _unconstrained_point(self, params, proto):
        return np.asarray(params[f"{proto.name}.loc"])

    def _gaussian_moments(self, params):
        return {name: (np.asarray(params[f"{name}.loc"]), np.zeros(proto.shape))
                for name, proto in self.prototypes.items()}

    def _sample_unconstrained(self, params, num_samples, rng):
        return {name: np.broadcast_to(self._loc(params, p), (num_samples,) + p.unconstrained_shape)
                for name, p in self.prototypes.items()}

    def _moments(self, params, num_samples, rng_seed):
        points = self.median(params)
        return points, {name: np.zeros(np.shape(value)) for name, value in points.items()}


class AutoNormal(AutoGuide):
    """Mean-field Gaussian in the unconstrained space: ``u ~ Normal(loc, softplus(raw))``.

    ``init_scale_raw=-4`` starts every scale at softplus(-4) ~ 0.018, the
    course's initialisation.
    """

    def __init__(self, model, init_loc_fn="uniform", init_scale_raw=-4.0):
        super().__init__(model, init_loc_fn)
        self.init_scale_raw = float(init_scale_raw)

    def draw(self, *args, **kwargs):
        if self.dependent:  # every draw first, then the model maps them onto the supports of the moment
            pieces = {name: sample(f"{name}.unconstrained", self._q(proto), infer={"is_auxiliary": True})
                      for name, proto in self.prototypes.items()}
            return _place_constrained(self._constrain(pieces, *args, **kwargs), self.prototypes)
        return {name: _place(name, proto, self._q(proto)) for name, proto in self.prototypes.items()}

    def _q(self, proto):
        loc = param(f"{proto.name}.loc", self.init_loc(proto))
        raw = param(f"{proto.name}.scale_raw", self.init_scale(proto))
        return Normal(loc, softplus(raw)).to_event(len(proto.unconstrained_event))

    def init_scale(self, proto):
        # a function, not an array: once SVI supplies the param, the guide never builds its initial value
        return lambda rng: np.full(proto.unconstrained_shape, self.init_scale_raw, proto.dtype)

    def _loc(self, params, proto):
        return params[f"{proto.name}.loc"]

    def _gaussian_moments(self, params):
        return {name: (np.asarray(params[f"{name}.loc"]), np.asarray(softplus(params[f"{name}.scale_raw"])))
                for name in self.prototypes}

    def _sample_unconstrained(self, params, num_samples, rng):
        out = {}
        for name, proto in self.prototypes.items():
            loc, scale = np.asarray(params[f"{name}.loc"]), np.asarray(softplus(params[f"{name}.scale_raw"]))
            out[name] = loc + scale * rng.standard_normal((num_samples,) + loc.shape).astype(loc.dtype)
        return out


class AutoMultivariateNormal(AutoGuide):
    """One full-rank Gaussian over every latent site, flattened in the unconstrained space.

    ``u ~ MultivariateNormal(loc, scale_tril=L)`` with ``L = diag(s) (I + A)``:
    ``s = softplus(scale_raw)`` the row scales and ``A`` strictly lower
    triangular (NumPyro's ``scaled_unit_lower_cholesky``). Each site takes its
    slice of ``u``.

    Why rows scaled by ``s``: an entry ``A_ij = L_ij / s_i`` is a ratio, the
    same whatever the units of ``u_i``; Adam moves every parameter by about
    its learning rate per step, so an absolute ``L_ij`` (the former
    parameterization) jittered by 0.05 per step next to posterior scales of
    0.01-0.05 and the loss ran away (issue 18: nes1972's loss rose from 2 836
    to 11 081). ``A = 0`` and ``s = softplus(init_scale_raw)`` at the start.
    """

    def __init__(self, model, init_loc_fn="uniform", init_scale_raw=-4.0):
        super().__init__(model, init_loc_fn)
        self.init_scale_raw = float(init_scale_raw)

    def draw(self, *args, **kwargs):
        protos = list(self.prototypes.values())
        dim = sum(p.size for p in protos)
        dtype = np.result_type(*[p.dtype for p in protos]) if protos else np.float64
        loc = param("auto.loc", lambda rng: np.concatenate(
            [self.init_loc(p)(rng).ravel() for p in protos]).astype(dtype))
        scale_raw = param("auto.scale_raw", lambda rng: np.full(dim, self.init_scale_raw, dtype))
        unit_tril = param("auto.unit_tril", lambda rng: np.zeros((dim, dim), dtype))
        tril = self._scale_tril(scale_raw, unit_tril)
        u = sample("_auto_latent", MultivariateNormal(loc, scale_tril=tril), infer={"is_auxiliary": True})
        lead, offset, pieces = anp.shape(u)[:-1], 0, {}
        for proto in protos:
            piece = u[..., offset:offset + proto.size]
            offset += proto.size
            # The particle plate puts u at (P, 1, ..., 1, D): keep the leading axes the site lacks.
            target = lead[:max(len(lead) - len(proto.batch_shape), 0)] + proto.unconstrained_shape
            pieces[proto.name] = anp.reshape(piece, target)
        return _place_constrained(self._constrain(pieces, *args, **kwargs), self.prototypes)

    @staticmethod
    def _scale_tril(scale_raw, unit_tril):
        """``diag(s) (I + A)``, A the strictly lower part of ``unit_tril``: the diagonal of L is s."""
        dim = anp.shape(scale_raw)[-1]
        return (anp.tril(unit_tril, -1) + anp.eye(dim)) * softplus(scale_raw)[..., :, None]

    @staticmethod
    def params_from(loc, scale_tril):
        """The guide's params for a given mean and lower Cholesky factor (the inverse of ``scale_tril``)."""
        scale_tril = np.asarray(scale_tril, dtype=float)
        diag = np.diagonal(scale_tril)
        if np.any(diag <= 0):
            raise ValueError("AutoMultivariateNormal.params_from: scale_tril needs a positive diagonal")
        return {"auto.loc": np.asarray(loc, dtype=float), "auto.scale_raw": inverse_softplus(diag),
                "auto.unit_tril": np.tril(scale_tril / diag[:, None], -1)}

    def scale_tril(self, params):
        return np.asarray(self._scale_tril(params["auto.scale_raw"], params["auto.unit_tril"]))

    def covariance(self, params):
        """The covariance of ``u`` in the unconstrained space, sites in trace order."""
        tril = self.scale_tril(params)
        return tril @ tril.T

    def _slices(self):
        offset = 0
        for name, proto in self.prototypes.items():
            yield name, proto, slice(offset, offset + proto.size)
            offset += proto.size

    def _loc(self, params, proto):
        dict_slices = {n: s for n, _, s in self._slices()}
        return np.reshape(params["auto.loc"][dict_slices[proto.name]], proto.unconstrained_shape)

    def _gaussian_moments(self, params):
        loc, std = np.asarray(params["auto.loc"]), np.sqrt(np.diag(self.covariance(params)))
        return {name: (loc[s].reshape(p.unconstrained_shape), std[s].reshape(p.unconstrained_shape))
                for name, p, s in self._slices()}

    def _sample_unconstrained(self, params, num_samples, rng):
        loc = np.asarray(params["auto.loc"])
        draws = loc + rng.standard_normal((num_samples, loc.size)).astype(loc.dtype) @ self.scale_tril(params).T
        return {name: draws[:, s].reshape((num_samples,) + p.unconstrained_shape) for name, p, s in self._slices()}


def _same_bounds(a, b, depth=0):
    """Whether two constraints from two runs are the same set (their bounds did not move with the draws)."""
    if type(a) is not type(b):
        return False
    if depth > 4 or not hasattr(a, "__dict__"):
        return True
    for key, value in vars(a).items():
        other = vars(b).get(key)
        if hasattr(value, "__dict__") and not isinstance(value, np.ndarray):
            if not _same_bounds(value, other, depth + 1):
                return False
        elif isinstance(value, (np.ndarray, float, int)) and not np.array_equal(value, other):
            return False
    return True


class _set_unconstrained(Handler):
    """Set each latent site to ``T(u)``, ``T`` built from its support as the model runs; score nothing.

    The guide runs the model on its own here (no trace, no plates of the
    engine): an observed site is only passed through, never checked against
    a particle axis it cannot see.
    """

    def __init__(self, prototypes, pieces):
        super().__init__()
        self.prototypes, self.pieces, self.values = prototypes, pieces, {}

    def process(self, site):
        if site.type != "sample":
            return
        if site.is_observed:
            site.is_observed = False  # this private run scores nothing: skip the observed-shape check
            return
        if site.value is None and site.name in self.pieces:
            proto = self.prototypes[site.name]
            transform = biject_to(site.fn.support) if proto.dependent else None
            site.value, log_det = proto.constrain(self.pieces[site.name], transform)
            self.values[site.name] = (site.value, log_det)


def _place_constrained(constrained, prototypes):
    """One ``Delta`` site per latent at its constrained value, carrying ``-log|det dT/du|``."""
    return {name: sample(name, Delta(value, -log_det, event_dim=prototypes[name].event_dim))
            for name, (value, log_det) in constrained.items()}


def _place(name, proto, q):
    """Sample the site from ``q`` directly, or through an auxiliary draw and ``T`` for a constrained support."""
    if proto.is_identity:
        return sample(name, q)
    u = sample(f"{name}.unconstrained", q, infer={"is_auxiliary": True})
    value, log_det = proto.constrain(u)
    return sample(name, Delta(value, -log_det, event_dim=proto.event_dim))
