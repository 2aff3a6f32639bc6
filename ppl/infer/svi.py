"""Stochastic variational inference, and the MAP and ADVI front-ends on it.

``SVI`` holds no data of its own: its state is a plain object (one flat
buffer of unconstrained parameters, the optimizer's state, the step), so a
run can be saved, compared, and resumed bit for bit. Each step runs the
guide once and the model once (times the particles, vectorized), and takes
the loss and its gradient in one reverse pass.
"""
import copy
import math
from dataclasses import dataclass, field

import numpy as np

from ..autodiff import value_and_grads
from ..core import fold_in
from ..distributions import constraints
from ..distributions.transforms import biject_to
from ..errors import CheckpointError, GuideStructureError, NonFiniteError, PPLError
from ..files import atomic_write
from ..optim import Adam, nest, ravel
from .autoguide import AutoDelta, AutoMultivariateNormal, AutoNormal, inverse_softplus
from .elbo import Trace_ELBO, run_guide_and_model


class SVIState:
    """Unconstrained parameters in one flat buffer, the optimizer's state, the step and the seed.

    ``update`` changes the state in place and returns it (no copies on the
    hot path); ``copy()`` keeps a snapshot.
    """

    def __init__(self, flat, optim_state, step, rng_seed, constraints):
        self.flat, self.optim_state, self.step, self.rng_seed = flat, optim_state, step, rng_seed
        self.constraints = constraints
        self.grad = np.zeros_like(flat.buffer)
        self._grad_views = flat.views(self.grad)
        self.previous = None  # the parameters before the last step, whose loss was finite

    def copy(self):
        optim_state = {k: np.array(v, copy=True) for k, v in self.optim_state.items()}
        return SVIState(ravel(self.flat.unravel()), optim_state, self.step, self.rng_seed, self.constraints)

    def save(self, path, losses=None):
        """Write the state (and optional loss history) to one ``.npz``, atomically."""
        arrays = {"ppl_checkpoint": np.array(1), "buffer": self.flat.buffer, "step": np.array(self.step),
                  "rng_seed": np.array(self.rng_seed), "layout": np.array(repr(self.flat.layout_key()))}
        arrays.update({f"optim/{k}": np.asarray(v) for k, v in self.optim_state.items()})
        if losses is not None:
            arrays["losses"] = np.asarray(losses)
        save_npz_atomic(path, arrays)

    def restore(self, path):
        """Load a checkpoint written by ``save`` into this state (same model and guide); returns the losses."""
        try:
            with np.load(path, allow_pickle=False) as data:
                data = {k: data[k] for k in data.files}
        except (OSError, ValueError) as err:
            raise CheckpointError(f"{path}: not a readable .npz checkpoint ({err})") from err
        if "ppl_checkpoint" not in data:
            raise CheckpointError(f"{path}: not a ppl checkpoint (keys {sorted(data)})")
        if str(data["layout"]) != repr(self.flat.layout_key()):
            raise CheckpointError(f"{path}: the checkpoint's parameters {data['layout']} do not match this "
                                  f"model and guide's {self.flat.layout_key()!r}")
        self.flat.buffer[...] = data["buffer"]
        self.previous = None  # the parameters before the restored ones are not known
        self.optim_state = {k.split("/", 1)[1]: data[k] for k in data if k.startswith("optim/")}
        self.step, self.rng_seed = int(data["step"]), int(data["rng_seed"])
        return data.get("losses", np.zeros(0))


def save_npz_atomic(path, arrays):
    """``np.savez`` through ``atomic_write``: a crash mid-write leaves the old file (or none), never half a file."""
    with atomic_write(path, suffix=".npz.tmp") as f:
        np.savez(f, **arrays)


@dataclass
class SVIResult:
    params: dict
    state: SVIState
    losses: np.ndarray


class SVI:
    """Fit ``guide`` to ``model`` by stochastic gradient steps on ``loss`` (an ELBO).

    Parameters are the ``param`` sites of model and guide, in one dict;
    constrained ones are optimised in the unconstrained space of
    ``biject_to(constraint)``.

        >>> import numpy as np, ppl, ppl.distributions as dist
        >>> from ppl.infer import SVI, Trace_ELBO
        >>> from ppl.optim import Adam
        >>> def model():
        ...     mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
        ...     ppl.observe("x", dist.Normal(mu, 1.0), 2.0)
        >>> def guide():
        ...     loc = ppl.param("loc", 0.0)
        ...     ppl.sample("mu", dist.Normal(loc, np.sqrt(0.5)))
        >>> result = SVI(model, guide, Adam(0.05), Trace_ELBO(16)).run(0, 500, progress=False)
        >>> round(float(result.params["loc"]), 1)  # the exact posterior mean is 1
        1.0
    """

    def __init__(self, model, guide, optimizer, loss=None):
        self.model, self.guide, self.optimizer = model, guide, optimizer
        self.loss = Trace_ELBO() if loss is None else loss

    def init(self, rng_seed, *args, **kwargs):
        """Trace guide and model once to find their param sites and initial values."""
        guide_trace, model_trace = run_guide_and_model(self.model, self.guide, {}, fold_in(rng_seed, "init"),
                                                       args, kwargs)
        unconstrained, constraints = {}, {}
        for tr in (guide_trace, model_trace):
            for name, site in tr.items():
                if site.type != "param" or name in unconstrained:
                    continue
                constraints[name] = site.fn
                unconstrained[name] = _unconstrain(name, site.value, site.fn)
        flat = ravel(unconstrained)
        return SVIState(flat, self.optimizer.init(flat.buffer), 0, int(rng_seed), constraints)

    def get_params(self, state):
        """The current parameters, constrained (copies, safe to keep)."""
        return _constrain(nest(state.flat.paths, [v.copy() for v in state.flat.views()]), state.constraints)

    def loss_and_grads(self, state, *args, **kwargs):
        """The loss at this step's seed and its gradient w.r.t. each leaf of the flat buffer."""
        step_seed = fold_in(state.rng_seed, state.step)

        def objective(*leaves):
            params = _constrain(nest(state.flat.paths, leaves), state.constraints)
            return self.loss.loss(step_seed, params, self.model, self.guide, *args, **kwargs)

        return value_and_grads(objective, state.flat.views())

    def evaluate(self, state, *args, num_particles=None, rng_seed=None, **kwargs):
        """The loss (no gradient), optionally with more particles and another seed."""
        seed_ = fold_in(state.rng_seed, state.step) if rng_seed is None else rng_seed
        elbo = self.loss.elbo_particles(seed_, self.get_params(state), self.model, self.guide, *args,
                                        num_particles=num_particles, **kwargs)
        return -float(np.mean(elbo))

    def update(self, state, *args, **kwargs):
        """One optimisation step; returns ``(state, loss)``. A non-finite loss or gradient stops with an error
        naming the step and the first site at fault, leaving ``state`` at its last finite parameters."""
        loss, grads = self.loss_and_grads(state, *args, **kwargs)
        loss = float(loss)
        for view, g in zip(state._grad_views, grads):
            view[...] = g
        if not (math.isfinite(loss) and constraints.real.holds(state.grad)):  # one dot product, not isfinite
            raise self._non_finite(state, loss, grads, args, kwargs)
        # the new parameters go to the spare buffer, and the old ones stay as ``previous``: no copy
        new = np.empty_like(state.flat.buffer) if state.previous is None else state.previous
        state.optim_state = self.optimizer.step(state.flat.buffer, state.grad, state.optim_state, out=new)
        state.previous, state.flat.buffer = state.flat.buffer, new
        state.step += 1
        return state, loss

    def run(self, rng_seed, num_steps, *args, progress=True, state=None, **kwargs):
        """``num_steps`` updates from a fresh ``init(rng_seed)`` (or from ``state``), with a tqdm bar."""
        if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 0:
            raise ValueError(f"num_steps must be an int >= 0, got {num_steps!r}")
        state = self.init(rng_seed, *args, **kwargs) if state is None else state
        losses = np.empty(int(num_steps))
        steps = range(int(num_steps))
        bar = None
        if progress:
            from tqdm.auto import tqdm  # imported on use: `import ppl` stays light

            steps = bar = tqdm(steps, desc="SVI", mininterval=0.25)
        for i in steps:
            state, losses[i] = self.update(state, *args, **kwargs)
            if bar is not None and (i % 10 == 0 or i == num_steps - 1):
                bar.set_postfix(loss=f"{losses[i]:.4g}", refresh=False)
        return SVIResult(self.get_params(state), state, losses)

    def _non_finite(self, state, loss, grads, args, kwargs):
        params = self.get_params(state)
        where = ""
        try:
            traces = run_guide_and_model(self.model, self.guide, params, fold_in(state.rng_seed, state.step),
                                         args, kwargs)
            where = _first_non_finite(traces)
        except Exception as err:  # diagnosing must not hide the original problem
            where = f"(re-running to find the site raised {type(err).__name__}: {err})"
        if not where and math.isfinite(loss):
            bad = [p for p, g in zip(state.flat.paths, grads) if not np.all(np.isfinite(g))]
            where = f"the gradient of param {'.'.join(map(str, bad[0]))!r} is not finite" if bad else ""
        err = NonFiniteError(f"step {state.step}: loss is {loss}" + (f"; {where}" if where else "")
                             + "; err.state holds the last parameters with a finite loss", state.step)
        err.state = state.copy()
        if state.previous is not None:  # step back to the parameters whose loss was finite
            err.state.flat.buffer[...] = state.previous
            err.state.step -= 1
        return err


def _first_non_finite(traces):
    from ..core import site_log_prob

    for label, tr in zip(("guide", "model"), traces):
        for site in tr.values():
            if site.type == "sample" and not site.intervened or site.type == "factor":
                lp = np.asarray(site_log_prob(site))
                if not np.all(np.isfinite(lp)):
                    return f"first non-finite log-density at {label} site {site.name!r} ({type(site.fn).__name__})"
    return ""


def _unconstrain(name, value, constraint):
    if isinstance(value, dict):
        if constraint is not None:
            raise ValueError(f"param {name!r}: a dict of arrays cannot take a constraint")
        return {k: np.array(v, copy=True) for k, v in value.items()}
    value = np.asarray(value)
    if not np.issubdtype(value.dtype, np.floating):
        value = value.astype(np.float64)
    if constraint is None:
        return value.copy()
    return np.asarray(biject_to(constraint).inv(value), dtype=value.dtype)


def _constrain(params, constraints):
    out = dict(params)
    for name, constraint in constraints.items():
        if constraint is not None:
            out[name] = biject_to(constraint)(params[name])
    return out


# ------------------------------------------------------------------ front-ends


@dataclass
class MAPResult:
    """``values``: the point found per site, in the model's own space: the posterior mode when ``converged``.

    ``converged``: whether a Newton step from the point would move it by less than ``MAP_TOL`` of the
    density's own sds (False: a warning said so; None: not checked, ``num_steps`` 0). ``diagnostics``:
    ``newton_decrement`` (that move, in sds: exact from the finite-difference Hessian for up to
    ``MAP_CHECK_MAX_DIM`` parameters, a lower bound along the gradient beyond), ``grad_norm``,
    ``min_eigenvalue`` (full Hessian only) and ``hessian`` ("full" or "along the gradient").
    """

    losses: np.ndarray
    guide: AutoDelta
    params: dict
    values: dict
    state: SVIState = field(repr=False)
    converged: bool = None
    diagnostics: dict = field(default_factory=dict)


MAP_TOL = 0.1  # a MAP point a Newton step would move by more than this many sds has not converged
MAP_CHECK_MAX_DIM = 200  # up to this many parameters the check takes the full Hessian (4 D gradient evaluations)


class MAP:
    """Maximum a posteriori: SVI with ``AutoDelta``; the loss is ``-log p(x, z)`` at the point.

    No Jacobian enters, so the answer is the mode of the posterior density in
    the model's own parameterization (constrained sites are only optimised
    through ``biject_to``). A point estimate: it says nothing of the posterior's
    spread, and a mode need not be near the posterior mean.

    After the steps, a convergence check: Adam stops where ``num_steps`` runs
    out, not at the mode, and on a ridge (an intercept and a slope with
    predictors far from 0) thousands of steps leave it many sds away. The Newton
    decrement sqrt(g^T H^-1 g) of the loss in the unconstrained parameters says
    how far: above ``MAP_TOL`` (or H not positive definite) a warning says the
    point is not the mode and ``result.converged`` is False.
    """

    def __init__(self, model, optimizer=None, init_loc_fn="uniform"):
        self.model = model
        self.optimizer = Adam(0.05) if optimizer is None else optimizer
        self.init_loc_fn = init_loc_fn

    def run(self, num_steps, *args, rng_seed=0, progress=False, **kwargs):
        guide = AutoDelta(self.model, self.init_loc_fn)
        svi = SVI(self.model, guide, self.optimizer, Trace_ELBO())
        fit = svi.run(rng_seed, num_steps, *args, progress=progress, **kwargs)
        result = MAPResult(fit.losses, guide, fit.params, guide.median(fit.params), fit.state)
        if num_steps:
            self._check(result, svi, args, kwargs)
        return result

    def _check(self, result, svi, args, kwargs):
        """Fill ``converged`` and ``diagnostics`` from the Newton decrement at the point; warn if not converged."""
        import warnings

        objective = FlatLoss(svi, result.state, args, kwargs)
        u = result.state.flat.buffer.copy()
        try:
            decrement, grad_norm, min_eigenvalue, how = newton_decrement(objective, u)
        except _REJECTED + (PPLError,) as err:
            warnings.warn(f"MAP: the convergence check could not evaluate the loss next to the point "
                          f"({type(err).__name__}: {err}); the point is not checked", stacklevel=3)
            return
        result.diagnostics.update(newton_decrement=decrement, grad_norm=grad_norm, min_eigenvalue=min_eigenvalue,
                                  hessian=how)
        result.converged = bool(decrement < MAP_TOL and not min_eigenvalue <= 0)
        if result.converged:
            return
        if min_eigenvalue <= 0:
            why = (f"the Hessian at the point is not positive definite (smallest eigenvalue {min_eigenvalue:.3g}): "
                   "far from the mode, at a saddle, or on a flat direction")
        else:
            why = (f"a Newton step would still move the point by {decrement:.3g} sds ("
                   + ("" if how == "full" else "at least; ") + f"gradient norm {grad_norm:.3g})")
        warnings.warn(f"MAP: not converged after {len(result.losses)} steps: {why}; the values are not a mode. "
                      "Run more steps or raise the learning rate", stacklevel=3)


class FlatLoss:
    """An SVI loss as a function of the flat unconstrained parameter buffer: ``(loss, gradient)`` at a
    (D,) point, or ``(losses, gradients)`` at each row of an (N, D) batch (the Hessian's 2D points)."""

    def __init__(self, svi, state, args, kwargs):
        self.svi, self.state, self.args, self.kwargs = svi, state.copy(), args, kwargs
        self.grad = np.zeros_like(self.state.flat.buffer)
        self._grad_views = self.state.flat.views(self.grad)

    def __call__(self, u):
        u = np.asarray(u, dtype=float)
        if u.ndim == 2:
            pairs = [self(row) for row in u]
            return np.array([v for v, _ in pairs]), np.array([g for _, g in pairs])
        self.state.flat.buffer[...] = u
        value, grads = self.svi.loss_and_grads(self.state, *self.args, **self.kwargs)
        for view, g in zip(self._grad_views, grads):
            view[...] = g
        return float(value), self.grad.copy()


def newton_decrement(value_and_grad, u):
    """``(sqrt(g^T H^-1 g), |g|, H's smallest eigenvalue, "full")`` at ``u``, H by central differences of the
    gradient at 1e-4 sds (``scaled_fd_hessian``); for more than
    ``MAP_CHECK_MAX_DIM`` coordinates ``(|g|^2 / sqrt(g^T H g), |g|, nan, "along the gradient")``: the
    decrement of a Newton step restricted to the gradient's direction, a lower bound of the full one
    (2 gradient evaluations instead of 4 D). Raises what the loss raises at ``u``."""
    value, grad = value_and_grad(u)
    if not (math.isfinite(value) and np.all(np.isfinite(grad))):
        raise NonFiniteError(f"the loss at the point is {value} (gradient finite: {np.all(np.isfinite(grad))})")
    grad_norm = float(np.linalg.norm(grad))
    if len(u) <= MAP_CHECK_MAX_DIM:
        hessian = scaled_fd_hessian(value_and_grad, u)
        if not np.all(np.isfinite(hessian)):
            raise NonFiniteError("the loss is not finite at a point of the finite-difference Hessian")
        _, decrement, _ = _newton_direction(hessian, grad)
        return decrement, grad_norm, float(np.linalg.eigvalsh(hessian)[0]), "full"
    if grad_norm == 0.0:
        return 0.0, 0.0, float("nan"), "along the gradient"
    direction = grad / grad_norm
    step = np.finfo(float).eps ** (1 / 3) * max(1.0, float(np.linalg.norm(u)))
    curvature = float(direction @ (value_and_grad(u + step * direction)[1]
                                   - value_and_grad(u - step * direction)[1])) / (2 * step)
    if not curvature > 0:
        return float("inf"), grad_norm, float("nan"), "along the gradient"
    return grad_norm / math.sqrt(curvature), grad_norm, float("nan"), "along the gradient"


@dataclass
class ADVIResult:
    """The fitted guide with posterior summaries per site in the model's own space.

    Trust: ``khat`` is the PSIS k-hat of the fitted guide (None where it was not computed;
    above 0.7 the guide is not to be trusted and a warning said so); ``diverged`` is True
    when the loss ended far above its best (a warning named it, and ``converged_at`` is
    None); ``diagnostics`` holds the numbers behind both.
    """

    losses: np.ndarray
    guide: object
    params: dict
    state: SVIState = field(repr=False)
    converged_at: int = None
    step_size: float = None
    elbo_history: list = None
    khat: float = None
    diverged: bool = False
    diagnostics: dict = field(default_factory=dict)

    @property
    def mean(self):
        return self.guide.mean(self.params)

    @property
    def std(self):
        return self.guide.std(self.params)

    @property
    def median(self):
        return self.guide.median(self.params)

    def sample(self, num_samples, rng_seed=0):
        return self.guide.sample_posterior(self.params, num_samples, rng_seed)


FAMILIES = {"meanfield": AutoNormal, "fullrank": AutoMultivariateNormal}
KHAT_BAD = 0.7  # Vehtari et al.: above it, importance sampling from the guide (and the guide) is unreliable
RISE_NOISE = 3.0  # a final loss this many of its own noise sds above its best stretch is a blow-up
ANNEAL = {"meanfield": 0.0, "fullrank": 0.5}
ANNEAL_AFTER = 1000  # steps before any decay of the learning rate


def loss_rise(losses, chunks=10):
    """How far the loss ended above its best stretch, in units of that stretch's noise.

    The run is cut into ``chunks`` equal stretches; ``rise = (mean of the last - mean of the
    lowest) / sd within the lowest``. A run still improving or settled has rise ~ 0; a run
    whose loss ran away from its optimum (issue 18) has rise in the hundreds.
    Returns ``(rise, mean of the last stretch, mean of the lowest, its sd)``.
    """
    losses = np.asarray(losses, dtype=float)
    n = len(losses) // chunks
    if n < 2:
        return 0.0, float("nan"), float("nan"), float("nan")
    stretches = losses[:n * chunks].reshape(chunks, n)
    means = stretches.mean(1)
    best = int(np.argmin(means))
    noise = float(stretches[best].std()) or np.finfo(float).tiny
    last = float(losses[-n:].mean())
    return (last - float(means[best])) / noise, last, float(means[best]), noise


# draws of the guide for k-hat and the moment check, for models of up to KHAT_BUDGET // KHAT_DRAWS coordinates.
# Why 2000: k-hat from S draws is reliable up to about 1 - 1/log10(S) (Vehtari et al. 2024): 0.63 at S = 500,
# 0.70 at 2000. At 500, full-rank ADVI's guide for eight schools gave k-hat 0.38-0.85 by seed, and 0.84-0.90
# at 2000 (measured); the moment check's standard errors halve too.
KHAT_DRAWS = 2000
KHAT_BUDGET = 50_000  # larger models: fewer draws (at least KHAT_MIN_DRAWS), about this many latent values in all
KHAT_MIN_DRAWS = 100  # a Pareto tail of 20 draws (0.2 S): enough to tell k-hat near 0.5 from k-hat above 1


def khat_draws(dim, requested=None):
    """How many guide draws the k-hat pass uses: ``requested`` if given (0: none), else ``KHAT_DRAWS``
    shrunk for large models so the pass stays a small part of a run (PPCA's 5 002 coordinates: 100)."""
    if requested is not None:
        return int(requested)
    return int(min(KHAT_DRAWS, max(KHAT_MIN_DRAWS, KHAT_BUDGET // max(int(dim), 1))))


# ------------------------------------------------------------------ trust: the guide's moments against PSIS

# Tolerances inside the benchmark's bounds (|z| <= 0.3, sd ratio in [0.7, 1.3]) by a margin for the estimate's
# own error: a guide 0.3 sds off is flagged, one within 0.2 sds (a fit the benchmark calls good) is left alone.
# The sd's margin is wider: where the guide misses a heavy tail, the weighted draws see only part of it
# (full-rank ADVI on eight schools: tau's sd ratio 0.70 against the reference, -0.24 in log, 0.79, by PSIS).
MOMENT_MEAN_TOL = 0.25  # a guide mean this many posterior sds from the PSIS-weighted one is off
MOMENT_SD_TOL = 0.2  # |log(guide sd / PSIS sd)| beyond this (a ratio outside [0.82, 1.22]) is off
MOMENT_SE = 2.0  # ... and only when the difference exceeds this many of its Monte Carlo standard errors
MOMENT_MAX_SIZE = 1000  # deterministic sites of more values are left out of the check (draws x values are kept)


@dataclass
class MomentCheck:
    """The approximation's own moments against PSIS-weighted ones from the same draws, scalar by scalar.

    Why: k-hat <= 0.7 says importance sampling with the approximation as proposal is reliable, not that
    the approximation's moments are right. Laplace's Gaussian on (beta, log sigma) of a regression with
    few observations puts sigma's mean low (the mode of log sigma counts N - 1 degrees of freedom, the
    posterior N - K): on mesquite-logmesquite_logva k-hat is 0.42 and sigma 0.49 posterior sds low;
    the weighted draws see it (measured: -0.50 +- 0.04). Per site, in the model's space (latent and deterministic sites):

    - ``psis_mean``, ``psis_std``: the PSIS estimates, to use instead of the guide's where ``off`` is not empty;
    - ``mean_shift``: (guide mean - PSIS mean) / PSIS sd, and ``mean_shift_se`` its Monte Carlo standard error;
    - ``log_sd_ratio``: log(guide sd / PSIS sd), and ``log_sd_ratio_se``;
    - ``off``: ``(scalar, "mean" or "sd", value, se)`` for every scalar whose shift exceeds its tolerance
      (``MOMENT_MEAN_TOL`` sds, ``MOMENT_SD_TOL`` in log sd) and ``MOMENT_SE`` standard errors, worst first.

    The guide's moments are the unweighted ones of the same draws, so the difference is paired: its
    standard error is that of sum_s (1/S - w_s) f(x_s), by the delta method.
    """

    psis_mean: dict
    psis_std: dict
    mean_shift: dict
    mean_shift_se: dict
    log_sd_ratio: dict
    log_sd_ratio_se: dict
    off: list

    def describe(self, limit=3):
        """The first ``limit`` scalars that are off, in words."""
        words = []
        for scalar, what, value, se in self.off[:limit]:
            if what == "mean":
                words.append(f"{scalar}: mean {value:+.2f} +- {se:.2f} posterior sds off")
            else:
                words.append(f"{scalar}: sd ratio {math.exp(value):.2f} (log {value:+.2f} +- {se:.2f})")
        more = len(self.off) - limit
        return "; ".join(words) + (f"; and {more} more" if more > 0 else "")


def _scalar_name(site, index, shape):
    return site if not shape else f"{site}[{','.join(map(str, np.unravel_index(index, shape)))}]"


def moment_check(draws, log_w):
    """``MomentCheck`` of ``draws`` (site -> (S, *shape), drawn from the approximation) with importance
    log weights ``log_w`` (S,), Pareto-smoothed here. A scalar that is not finite in every draw, or
    constant, gets NaN and is never called off."""
    from .diagnostics import pareto_smooth

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        w = np.exp(pareto_smooth(np.asarray(log_w, dtype=float))[0])
    n = len(w)
    out = {key: {} for key in ("psis_mean", "psis_std", "mean_shift", "mean_shift_se", "log_sd_ratio",
                               "log_sd_ratio_se")}
    off = []
    for site, values in draws.items():
        values = np.asarray(values, dtype=float)
        shape = values.shape[1:]
        x = values.reshape(n, -1)
        with np.errstate(all="ignore"):
            x = np.where(np.isfinite(x).all(0), x, np.nan)
            m_q, m_w = x.mean(0), w @ x
            d_q, d_w = x - m_q, x - m_w
            v_q, v_w = np.mean(d_q ** 2, 0), w @ d_w ** 2
            sd_w = np.sqrt(v_w)
            shift = (m_q - m_w) / sd_w
            shift_se = np.sqrt(np.sum((d_q / n - w[:, None] * d_w) ** 2, 0)) / sd_w
            log_ratio = 0.5 * np.log(v_q / v_w)
            log_ratio_se = np.sqrt(np.sum(((d_q ** 2 - v_q) / (2 * v_q * n)
                                           - w[:, None] * (d_w ** 2 - v_w) / (2 * v_w)) ** 2, 0))
            for what, value, se, tol in (("mean", shift, shift_se, MOMENT_MEAN_TOL),
                                         ("sd", log_ratio, log_ratio_se, MOMENT_SD_TOL)):
                bad = (np.abs(value) > tol) & (np.abs(value) > MOMENT_SE * se)
                off += [(_scalar_name(site, i, shape), what, float(value[i]), float(se[i]))
                        for i in np.flatnonzero(bad)]
        for key, value in zip(out, (m_w, sd_w, shift, shift_se, log_ratio, log_ratio_se)):
            out[key][site] = value.reshape(shape)
    tolerance = {"mean": MOMENT_MEAN_TOL, "sd": MOMENT_SD_TOL}
    off.sort(key=lambda item: -abs(item[2]) / tolerance[item[1]])
    return MomentCheck(off=off, **out)


def record_moment_check(result, draws, log_w, who):
    """Run ``moment_check`` and store it in ``result.diagnostics`` (``moment_check``, ``psis_mean``,
    ``psis_std``); warn, naming the scalars, when the guide's moments are off. Only for k-hat <= 0.7:
    above it the weighted estimates are not reliable either (and a warning has said so)."""
    import warnings

    check = moment_check(draws, log_w)
    result.diagnostics.update(moment_check=check, psis_mean=check.psis_mean, psis_std=check.psis_std)
    if check.off:
        warnings.warn(f"{who}: k-hat = {result.khat:.2f} trusts importance sampling from the approximation, "
                      f"and the importance-weighted moments disagree with its own: {check.describe()}. Its "
                      "means and sds are biased there; result.diagnostics['psis_mean'] and ['psis_std'] hold "
                      "the corrected ones", stacklevel=4)
    return check


def guide_importance_draws(loss, rng_seed, params, model, guide, args, kwargs, num_draws):
    """``(log_w, draws)``: ``loss.log_weights`` (log p - log q at ``num_draws`` draws of the guide, the same
    draws and numbers) and those draws in the model's space: every latent site of the guide, and every
    deterministic site of the model with at most ``MOMENT_MAX_SIZE`` values, as (num_draws, *shape)."""
    from .elbo import _log_weight

    latent = {name: proto.shape for name, proto in guide.prototypes.items()}
    plain = run_guide_and_model(model, guide, params, rng_seed, args, kwargs)[1]
    derived = {name: np.shape(site.value) for name, site in plain.items()
               if site.type == "deterministic" and np.size(site.value) <= MOMENT_MAX_SIZE}
    runs = []

    def score(guide_trace, model_trace, reduce):
        log_w = _log_weight(guide_trace, model_trace, reduce)
        runs.append(({name: guide_trace[name].value for name in latent},
                     {name: model_trace[name].value for name in derived if name in model_trace}))
        return log_w

    log_w = np.asarray(loss._particles(rng_seed, params, model, guide, args, kwargs, num_draws, score),
                       dtype=float)
    runs = runs[-1:] if len(runs) < num_draws else runs[-num_draws:]  # one vectorized run, or one per draw
    draws = {}
    for kind, shapes in ((0, latent), (1, derived)):
        for name, shape in shapes.items():
            values = [np.asarray(run[kind][name]) for run in runs if name in run[kind]]
            if len(runs) == 1 and values:
                draws[name] = _per_draw(values[0], num_draws, shape)
            elif len(values) == num_draws:
                draws[name] = np.stack([np.reshape(v, shape) for v in values])
    return log_w, {name: value for name, value in draws.items() if value is not None}


def _per_draw(value, num_draws, shape):
    """A vectorized run's site value as (num_draws, *shape): the particle axis is the leftmost of size
    > 1; a value with no particle axis is the same in every draw; None when neither fits."""
    size = int(np.prod(shape, dtype=int))
    if value.size == num_draws * size:
        return value.reshape((num_draws,) + tuple(shape))
    if value.size == size:
        return np.broadcast_to(value.reshape(shape), (num_draws,) + tuple(shape))
    return None


INITS = ("auto", None, "laplace", "pathfinder")
AUTO_INIT = "laplace"  # what init="auto" uses; see ADVI's docstring for the measurement behind it


@dataclass
class Start:
    """A Gaussian N(mean, covariance) on the potential's flat unconstrained u, from ``method``, with the
    potential's site layout (``potential``) to map it onto a guide, and the seconds it took."""

    method: str
    mean: np.ndarray
    covariance: np.ndarray
    potential: object = field(repr=False)
    seconds: float = 0.0

    def location_sds(self, guide):
        """The marginal posterior sd of each location coordinate, keyed by the guide's location param."""
        back = np.argsort(flat_order(guide, self.potential))
        sd = np.sqrt(np.diag(self.covariance))[back]
        if isinstance(guide, AutoMultivariateNormal):
            return {"auto.loc": sd}
        out, offset = {}, 0
        for name, proto in guide.prototypes.items():
            out[f"{name}.loc"] = sd[offset:offset + proto.size]
            offset += proto.size
        return out

    def factorized_sd_ratios(self, guide):
        """Per site of ``guide``, in its unconstrained shape: 1 / sqrt((S^-1)_ii) over sqrt(S_ii), S the
        covariance, H = S^-1 the Hessian for Laplace. The first is the sd of the factorized Gaussian closest
        to N(m, S) in KL(q || p), what mean-field ADVI converges to on a Gaussian; the ratio is 1 for
        independent coordinates and sqrt(1 - R^2) for one whose regression on the others has R^2."""
        back = np.argsort(flat_order(guide, self.potential))
        cov = self.covariance[np.ix_(back, back)]
        ratio = 1.0 / np.sqrt(np.diag(np.linalg.inv(cov)) * np.diag(cov))
        out, offset = {}, 0
        for name, proto in guide.prototypes.items():
            out[name] = ratio[offset:offset + proto.size].reshape(proto.unconstrained_shape)
            offset += proto.size
        return out

    def guide_params(self, guide):
        """The guide's params for this Gaussian, site by site in the guide's own layout: location and
        scale_tril (full rank); location and the sds 1 / sqrt(diag(covariance^-1)) (mean-field).

        Why not sqrt(diag(covariance)) for mean-field: the diagonal Gaussian closest to N(m, S) in
        KL(q || p), what mean-field ADVI converges to, has precisions diag(S^-1), the conditional sds; on a
        ridge (kidiq's intercept and slope, correlation -0.99) the marginal sds are 10-50 times wider, and
        the stochastic steps spend the run shrinking them (earnings-earn_height: 12.7 sds off after 2000 steps
        from the marginal sds, measured)."""
        back = np.argsort(flat_order(guide, self.potential))  # potential order -> guide order
        mean, cov = self.mean[back], self.covariance[np.ix_(back, back)]
        if isinstance(guide, AutoMultivariateNormal):
            return AutoMultivariateNormal.params_from(mean, np.linalg.cholesky(cov))
        if not isinstance(guide, AutoNormal):
            raise TypeError(f"ADVI init: no mapping of a Gaussian onto a {type(guide).__name__}")
        params, offset, sd = {}, 0, 1.0 / np.sqrt(np.diag(np.linalg.inv(cov)))
        for name, proto in guide.prototypes.items():
            piece = slice(offset, offset + proto.size)
            offset += proto.size
            params[f"{name}.loc"] = mean[piece].reshape(proto.unconstrained_shape)
            params[f"{name}.scale_raw"] = inverse_softplus(sd[piece]).reshape(proto.unconstrained_shape)
        return params


class ScaledSteps:
    """An optimizer whose every step is multiplied, coordinate by coordinate, by ``scale`` (a buffer-shaped
    array): with Adam, whose step is about ``lr`` in each coordinate whatever the gradient's units, a
    location coordinate with scale = its posterior sd moves about ``lr`` posterior sds per step.

    Why: a location moved 0.05 per step jitters by 7 posterior sds where the sd is 0.007 (kilpisjarvi's
    slope, years near 2000): ADVI started at the exact answer walked 9.5 sds away from it in 2000 steps
    (measured). ``lr`` reads and sets the inner optimizer's (ADVI's annealing changes it)."""

    def __init__(self, inner, scale):
        self.inner, self.scale = inner, scale

    @property
    def lr(self):
        return self.inner.lr

    @lr.setter
    def lr(self, value):
        self.inner.lr = value

    def init(self, buffer):
        return self.inner.init(buffer)

    def step(self, buffer, grad, state, out=None):
        before = buffer.copy() if out is None else buffer
        target = buffer if out is None else out
        state = self.inner.step(buffer, grad, state, out=out)
        target -= before
        target *= self.scale
        target += before
        return state


def fit_start(model, method, init_loc_fn, rng_seed, args, kwargs):
    """The Gaussian ADVI starts from: Laplace's N(mode, H^-1), or the best-ELBO Gaussian of one Pathfinder
    path. Their own warnings are not repeated: ADVI checks its final fit itself (k-hat, loss)."""
    import time
    import warnings

    from .pathfinder import Pathfinder
    from .potential import potential as make_potential

    begin = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if method == "laplace":
            result = Laplace(model, init_loc_fn, khat_samples=0).run(*args, rng_seed=rng_seed, **kwargs)
            pot = make_potential(model, *args, **kwargs)
            order = flat_order(result.guide, pot)
            mean = np.asarray(result.params["auto.loc"])[order]
            cov = result.guide.covariance(result.params)[np.ix_(order, order)]
        else:
            fit = Pathfinder(model, num_paths=1, init=init_loc_fn if isinstance(init_loc_fn, dict) else "uniform"
                             ).run(*args, num_samples=25, rng_seed=rng_seed, **kwargs)
            approximation = fit.paths[0].approximation
            mean, cov = approximation.mean, approximation.covariance()
            pot = make_potential(model, *args, **kwargs)
    for warning in caught:  # the one warning that a model runs its particles in a loop is said once: here
        if "does not broadcast" in str(warning.message):
            warnings.warn(warning.message, stacklevel=3)
    cov = 0.5 * (cov + cov.T)
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(cov))):
        raise NonFiniteError(f"ADVI init: the {method} fit is not finite")
    return Start(method, mean, cov, pot, time.perf_counter() - begin)


# particles per step when the guide starts from a Gaussian fit (unless num_particles is given). Started at the
# answer, the steps refine it and their noise is the error that is left: with one particle, full-rank ADVI
# from Pathfinder's start drifted 0.75 posterior sds in kilpisjarvi's sigma in 500 steps and shrank
# logearn_interaction's sds to 0.67; with 10, 0.06 sds and 0.83 (the particles are one vectorized run: about
# 1.3x the wall time, measured on the posteriordb regressions).
STARTED_PARTICLES = 10
FACTORIZED_SD_MIN = 0.7  # mean-field: a factorized Gaussian's sd below this fraction of the marginal one warns
AUTO_INIT_MAX_DIM = 200  # Laplace's Hessian costs 2 D gradient evaluations: PPCA's 5 002 took 100 s


def _whole_posterior(model, args, kwargs):
    """Whether the model has no ``param`` sites and no subsampled plates (its potential is its posterior)
    and at most ``AUTO_INIT_MAX_DIM`` unconstrained coordinates (a start costs little beside the steps)."""
    from ..core import isolated
    from ..handlers import seed, trace
    from .init import init_to_uniform

    with isolated():
        tr = trace(init_to_uniform(seed(model, 0))).get_trace(*args, **kwargs)
    if any(site.type == "param" or site.type == "sample" and not (type(site.scale) is float and site.scale == 1.0)
           for site in tr.values()):
        return False
    dim = sum(int(np.size(site.value)) for site in tr.values() if site.is_latent)  # constrained size: near enough
    return dim <= AUTO_INIT_MAX_DIM


class ADVI:
    """Automatic differentiation variational inference (Kucukelbir et al. 2017).

    A Gaussian in the unconstrained space: ``family="meanfield"`` (diagonal)
    or ``"fullrank"``. With ``tol`` set, every ``eval_every`` steps a
    ``eval_particles``-sample ELBO is estimated and the run stops, as Stan's
    does, once the mean or the median of the recent relative changes falls
    below ``tol`` *and* the guide's location has stopped moving: over the same
    recent window it moved less than ``param_tol`` of the guide's own standard
    deviation in every coordinate (a slow drift along a ridge changes the ELBO
    by little and is not convergence). ``adapt_step_size=True`` first tries a
    few learning rates for ``adapt_iter`` steps each and keeps the best, as Stan does.

    ``num_particles``: draws of the guide per step. None: 1 from a cold start (the steps travel, and
    their noise matters little), ``STARTED_PARTICLES`` = 10 from a Laplace or Pathfinder start (the
    steps only refine, and one draw's noise moves a ridge's guide by most of a posterior sd).

    ``anneal``: the last fraction of the steps (never the first 1000) decays the learning rate
    linearly to 1% of its value (default: 0.5 for the full-rank family, 0 for mean-field). With a constant
    step, Adam keeps moving the factor's off-diagonals by about the learning rate each
    step, and that jitter biases the fitted scales down (nes1972: sd ratios 0.43-0.95
    at a constant 0.05; 0.89-0.99 annealed).

    After the run: PSIS k-hat of the guide from ``khat_samples`` draws (``result.khat``,
    a warning above 0.7; 0 turns it off); at or below 0.7, the moment check of ``MomentCheck``
    on the same draws (a warning naming the scalars whose guide mean or sd the weighted draws
    contradict; ``diagnostics["psis_mean"]``, ``["psis_std"]``); and a check that the loss did
    not end far above its best (``result.diverged``, a warning; such a run is never reported
    as converged). With ``tol`` set, a run whose steps ran out before it was met warns, as Stan
    does (``diagnostics["elbo_change"]``, ``["location_drift"]``: what the stopping rule last saw).
    Mean-field from a Gaussian start (``init="auto"`` or "laplace"): a warning
    when the start's covariance shows a factorized Gaussian must understate a marginal sd by
    more than ``FACTORIZED_SD_MIN`` (``diagnostics["factorized_sd_ratio"]``).
    """

    def __init__(self, model, family="meanfield", optimizer=None, num_particles=None, entropy="analytic",
                 init_loc_fn="uniform", init_scale_raw=-4.0, tol=None, eval_every=100, eval_particles=100,
                 adapt_step_size=False, adapt_iter=50, vectorize=True, param_tol=0.5, anneal=None,
                 khat_samples=None, init="auto"):
        if family not in FAMILIES:
            raise ValueError(f"ADVI: unknown family {family!r}; use one of {sorted(FAMILIES)}")
        if tol is not None and not tol > 0:
            raise ValueError(f"ADVI: tol must be positive, got {tol!r}")
        if not param_tol > 0:
            raise ValueError(f"ADVI: param_tol must be positive, got {param_tol!r}")
        if int(eval_every) != eval_every or eval_every < 1:
            raise ValueError(f"ADVI: eval_every must be an int >= 1, got {eval_every!r}")
        anneal = ANNEAL[family] if anneal is None else anneal
        if not 0 <= anneal <= 1:
            raise ValueError(f"ADVI: anneal must be a fraction of the steps in [0, 1], got {anneal!r}")
        if khat_samples is not None and (int(khat_samples) != khat_samples or khat_samples != 0
                                         and khat_samples < 25):
            raise ValueError(f"ADVI: khat_samples must be None (by size), 0 (off) or an int >= 25, "
                             f"got {khat_samples!r}")
        if init not in INITS:
            raise ValueError(f"ADVI: init must be one of {INITS}, got {init!r}")
        self.model, self.family, self.init = model, family, init
        self.optimizer = Adam(0.05) if optimizer is None else optimizer
        if num_particles is not None and (isinstance(num_particles, bool) or int(num_particles) != num_particles
                                          or num_particles < 1):
            raise ValueError(f"ADVI: num_particles must be None or an int >= 1, got {num_particles!r}")
        self.num_particles = None if num_particles is None else int(num_particles)
        self.loss = Trace_ELBO(self.num_particles or 1, vectorize=vectorize, entropy=entropy)
        self._started_loss = Trace_ELBO(self.num_particles or STARTED_PARTICLES, vectorize=vectorize,
                                        entropy=entropy)
        self.init_loc_fn, self.init_scale_raw = init_loc_fn, init_scale_raw
        self.tol, self.eval_every, self.eval_particles = tol, int(eval_every), eval_particles
        self.param_tol, self.anneal = float(param_tol), float(anneal)
        self.khat_samples = None if khat_samples is None else int(khat_samples)
        self.adapt_step_size, self.adapt_iter = adapt_step_size, adapt_iter

    def make_guide(self):
        return FAMILIES[self.family](self.model, self.init_loc_fn, self.init_scale_raw)

    def run(self, num_steps, *args, rng_seed=0, progress=False, **kwargs):
        if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 0:
            raise ValueError(f"num_steps must be an int >= 0, got {num_steps!r}")
        num_steps = int(num_steps)
        start = self._start(rng_seed, args, kwargs)
        optimizer = self._adapt(rng_seed, args, kwargs, start) if self.adapt_step_size else self.optimizer
        optimizer = copy.copy(optimizer)  # annealing changes lr: the caller's optimizer stays as given
        base_lr = optimizer.lr
        guide = self.make_guide()
        svi = SVI(self.model, guide, optimizer, self.loss if start is None else self._started_loss)
        state = self._initial_state(svi, guide, start, rng_seed, args, kwargs)
        losses, history, changes, locs, converged_at = [], [], [], [], None
        window = max(2, int(0.1 * num_steps / self.eval_every))
        # a short run is still travelling, and its step's jitter is not the error that dominates: no decay
        # (from a Laplace or Pathfinder start it is not travelling: the decay may begin before ANNEAL_AFTER)
        anneal_from = max(num_steps - int(round(self.anneal * num_steps)),
                          0 if start is not None else min(num_steps, ANNEAL_AFTER))
        steps = range(num_steps)
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc="ADVI", mininterval=0.25)
        for i in steps:
            if i >= anneal_from:
                optimizer.lr = base_lr * (1.0 - 0.99 * (i - anneal_from + 1) / (num_steps - anneal_from))
            state, loss = svi.update(state, *args, **kwargs)
            losses.append(loss)
            if self.tol is None or (i + 1) % self.eval_every:
                continue
            elbo = -svi.evaluate(state, *args, num_particles=self.eval_particles,
                                 rng_seed=fold_in(rng_seed, "eval", i), **kwargs)
            if history:
                changes.append(abs((elbo - history[-1]) / elbo))
            history.append(elbo)
            locs.append(self._location(guide, svi.get_params(state)))
            recent = changes[-window:]
            if recent and (np.mean(recent) < self.tol or np.median(recent) < self.tol) \
                    and self._drift(guide, svi.get_params(state), locs[-window - 1:]) < self.param_tol:
                converged_at = i + 1
                break
        optimizer.lr = base_lr
        params = svi.get_params(state)
        result = ADVIResult(np.asarray(losses), guide, params, state, converged_at, base_lr,
                            history if self.tol is not None else None)
        result.diagnostics.update(init=start.method if start else None, init_seconds=start.seconds if start else 0.0)
        self._check(result, args, kwargs, rng_seed)
        if self.family == "meanfield" and start is not None:
            self._check_factorization(result, start)
        if self.tol is not None and result.converged_at is None and not result.diverged:
            self._warn_unconverged(result, guide, changes[-window:], locs[-window - 1:])
        return result

    def _warn_unconverged(self, result, guide, recent, locs):
        """``tol`` was set and the steps ran out before it was met (as Stan says, the fit may not have
        converged): warn with the numbers the stopping rule saw, kept in ``diagnostics``."""
        import warnings

        change = float(min(np.mean(recent), np.median(recent))) if recent else float("nan")
        drift = self._drift(guide, result.params, locs)
        result.diagnostics.update(elbo_change=change, location_drift=drift)
        warnings.warn(f"ADVI({self.family!r}): not converged in {len(result.losses)} steps: the recent relative "
                      f"ELBO change is {change:.3g} (tol {self.tol:g}) and the location moved {drift:.3g} of the "
                      f"guide's sds (param_tol {self.param_tol:g}); the fit may be far from its optimum. Run "
                      "more steps or change the learning rate", stacklevel=3)

    def _check_factorization(self, result, start):
        """Mean-field from a Gaussian start: the start's covariance says how much a factorized Gaussian must
        understate the marginal sds (exact for a Gaussian posterior). Stores the smallest ratio in
        ``diagnostics["factorized_sd_ratio"]``; below ``FACTORIZED_SD_MIN`` a warning names the coordinate."""
        import warnings

        try:
            ratios = start.factorized_sd_ratios(result.guide)
        except np.linalg.LinAlgError:
            return
        scalars = [(float(r), _scalar_name(name, i, np.shape(ratio))) for name, ratio in ratios.items()
                   for i, r in enumerate(np.ravel(ratio))]
        if not scalars:
            return
        worst, where = min(scalars)
        result.diagnostics["factorized_sd_ratio"] = worst
        below = sum(r < FACTORIZED_SD_MIN for r, _ in scalars)
        if worst < FACTORIZED_SD_MIN:
            warnings.warn(f"ADVI('meanfield'): the posterior is correlated: at the {start.method} start, a "
                          f"factorized Gaussian's sd 1/sqrt(H_ii) is {worst:.2f} of the marginal sd "
                          f"sqrt((H^-1)_ii) for {where} (unconstrained; {below} of {len(scalars)} coordinates "
                          f"below {FACTORIZED_SD_MIN}): mean-field sds are too small there by about that "
                          "factor; use family='fullrank'", stacklevel=3)

    @staticmethod
    def _location(guide, params):
        """The guide's location in the unconstrained space, flat."""
        return np.concatenate([np.ravel(guide._loc(params, p)) for p in guide.prototypes.values()])

    def _drift(self, guide, params, locs):
        """The largest move of the location over ``locs`` (first to last), in the guide's own sds."""
        if len(locs) < 2:
            return np.inf
        moments = guide._gaussian_moments(params)
        sd = np.concatenate([np.ravel(moments[name][1]) for name in guide.prototypes])
        return float(np.max(np.abs(locs[-1] - locs[0]) / sd))

    def _check(self, result, args, kwargs, rng_seed):
        """Fill ``khat``, ``diverged`` and ``diagnostics``; warn for each sign of an untrustworthy fit."""
        import warnings

        rise, last, best, noise = loss_rise(result.losses)
        result.diagnostics.update(loss_rise=rise, final_loss=last, best_loss=best, loss_noise=noise)
        if rise > RISE_NOISE:
            result.diverged, result.converged_at = True, None
            warnings.warn(f"ADVI({self.family!r}): the loss blew up: it ended at {last:.6g} (mean of the last "
                          f"10% of steps), {rise:.3g} noise sds (sd {noise:.3g}) above the best stretch's "
                          f"{best:.6g}; the result is not converged. Lower the learning rate.", stacklevel=3)
        num_draws = khat_draws(sum(p.size for p in result.guide.prototypes.values()), self.khat_samples)
        if num_draws:
            log_w = draws = None
            try:
                # Trace_ELBO's log weights: vectorized over the draws, or a loop for a model that does not broadcast
                log_w, draws = guide_importance_draws(self.loss, fold_in(rng_seed, "khat"), result.params,
                                                      self.model, result.guide, args, kwargs, num_draws)
                result.khat = psis_khat(log_w)
            except (PPLError, ValueError, IndexError, TypeError) as err:
                warnings.warn(f"ADVI({self.family!r}): PSIS k-hat could not be computed "
                              f"({type(err).__name__}: {err}); the fit is not checked", stacklevel=3)
            result.diagnostics["khat"] = result.khat
            if result.khat is not None and result.khat > KHAT_BAD:
                warnings.warn(f"ADVI({self.family!r}): PSIS k-hat = {result.khat:.2f} > {KHAT_BAD}: the fitted "
                              "guide is far from the posterior (or the fit has not converged); do not trust "
                              "its means and sds", stacklevel=3)
            elif result.khat is not None:
                record_moment_check(result, draws, log_w, f"ADVI({self.family!r})")

    # ------------------------------------------------------------ where the stochastic steps start

    def _start(self, rng_seed, args, kwargs):
        """The Gaussian fit the guide starts from (a ``Start``), or None for the guide's own initial values.

        ``init="auto"`` uses ``AUTO_INIT`` when the model is one a potential describes fully: no ``param``
        sites (their values would be the initial ones, not the fitted ones) and no subsampled plates (a
        minibatch is not the posterior). A start that fails under "auto" is left out with a warning.
        """
        method = self.init
        if method == "auto":
            method = AUTO_INIT if self.init_loc_fn == "uniform" and _whole_posterior(self.model, args, kwargs) \
                else None
        if method is None:
            return None
        try:
            return fit_start(self.model, method, self.init_loc_fn, fold_in(rng_seed, "init"), args, kwargs)
        except (PPLError, ValueError, FloatingPointError, np.linalg.LinAlgError) as err:
            if self.init != "auto":
                raise
            import warnings

            warnings.warn(f"ADVI({self.family!r}): the {method} start failed ({type(err).__name__}: {err}); "
                          "starting from the guide's own initial values", stacklevel=3)
            return None

    def _initial_state(self, svi, guide, start, rng_seed, args, kwargs):
        """``svi.init``, with the guide's location and scale overwritten by ``start``'s Gaussian."""
        if start is None:
            return svi.init(rng_seed, *args, **kwargs)
        guide.setup(*args, **kwargs)
        values = start.guide_params(guide)
        state = svi.init(rng_seed, *args, **kwargs)
        scale = np.ones_like(state.flat.buffer)
        sds = start.location_sds(guide)
        for path, view, offset, size in zip(state.flat.paths, state.flat.views(), state.flat.offsets,
                                            state.flat.sizes):
            if path[0] in values:
                view[...] = np.reshape(values[path[0]], view.shape)
            if path[0] in sds:  # the location's steps in units of the start's posterior sds
                scale[offset:offset + size] = np.ravel(sds[path[0]])
        svi.optimizer = ScaledSteps(svi.optimizer, scale)
        return state

    def _adapt(self, rng_seed, args, kwargs, start=None):
        """Stan's step-size search: try scaled learning rates briefly, keep the best finite ELBO; among ELBOs
        within two Monte Carlo standard errors of the best, the largest step (the search goes from the
        largest down, and a later one must beat the kept one by more than that noise). From a Laplace
        start every step size ends near the same ELBO: noise alone must not pick the one that cannot move."""
        best, best_elbo = None, -np.inf
        for factor in (100.0, 10.0, 1.0, 0.1, 0.01):
            candidate = copy.copy(self.optimizer)
            candidate.lr = self.optimizer.lr * factor
            guide = self.make_guide()
            svi = SVI(self.model, guide, candidate, self.loss)
            try:
                state = self._initial_state(svi, guide, start, rng_seed, args, kwargs)
                state = svi.run(rng_seed, self.adapt_iter, *args, progress=False, state=state, **kwargs).state
                draws = np.asarray(self.loss.elbo_particles(
                    fold_in(rng_seed, "adapt"), svi.get_params(state), self.model, guide, *args,
                    num_particles=self.eval_particles, **kwargs), dtype=float)
                elbo, noise = float(np.mean(draws)), float(np.std(draws) / np.sqrt(max(len(draws), 1)))
            except (NonFiniteError, ValueError, FloatingPointError):
                continue
            if np.isfinite(elbo) and elbo > best_elbo + (2.0 * noise if best is not None else 0.0):
                best, best_elbo = candidate, elbo
        if best is None:
            raise NonFiniteError("ADVI: every step size in the search diverged")
        return best


# ------------------------------------------------------------------ Laplace, on the potential

_REJECTED = (ValueError, FloatingPointError, ArithmeticError)  # a point where the model cannot be evaluated
_FD_STEP = 1e-4  # central differences of the gradient at 1e-4 posterior sds: truncation ~1e-8, rounding ~1e-12
NEWTON_TOL = 1e-3  # the mode is found when a Newton step would move it by less than this many posterior sds
MAX_NEWTON = 10  # Newton steps per round
MAX_ROUNDS = 5  # L-BFGS runs, each from where the last round stopped


class SafeObjective:
    """``value_and_grad`` as an optimizer wants it: a point where the model raises (a ``ValueError`` such
    as a parameter outside its support, a ``FloatingPointError``) or is not finite gives ``(inf, 0)``, so
    a line search backs off instead of stopping; ``rejected`` counts them and ``error`` keeps the first."""

    def __init__(self, value_and_grad):
        self.value_and_grad, self.rejected, self.error, self.num_evals = value_and_grad, 0, None, 0

    def __call__(self, u):
        self.num_evals += 1
        try:
            with np.errstate(all="ignore"):
                value, grad = self.value_and_grad(u)
            value, grad = float(value), np.asarray(grad, dtype=float)
        except _REJECTED as err:
            value, grad = np.inf, None
            self.error = self.error or f"{type(err).__name__}: {err}"
        if not (math.isfinite(value) and np.all(np.isfinite(grad))):
            self.rejected += 1
            return np.inf, np.zeros_like(u)
        return value, grad


def fd_hessian(value_and_grad, u, step):
    """The Hessian of U at ``u`` by central differences of its exact gradient, ``step`` (D,) per coordinate.

    H[:, j] = (g(u + h_j e_j) - g(u - h_j e_j)) / (2 h_j), symmetrized; exact for a quadratic U up to
    rounding, O(h^2) otherwise. The 2D points go through the potential as one batch of chains (in chunks);
    a batch that raises is evaluated point by point, and a point that fails leaves NaN in its column.
    """
    dim = len(u)
    points = np.concatenate([u + np.diag(step), u - np.diag(step)])
    grads = np.empty_like(points)
    for lo in range(0, len(points), 256):
        chunk = points[lo:lo + 256]
        try:
            with np.errstate(all="ignore"):
                grads[lo:lo + 256] = value_and_grad(chunk)[1]
        except _REJECTED:
            safe = SafeObjective(value_and_grad)
            for i, point in enumerate(chunk):
                value, grad = safe(point)
                grads[lo + i] = grad if math.isfinite(value) else np.nan
    hessian = (grads[:dim] - grads[dim:]).T / (2.0 * step)  # column j: the change of g along e_j
    return 0.5 * (hessian + hessian.T)


def scaled_fd_hessian(value_and_grad, u, hessian=None):
    """``fd_hessian`` at ``_FD_STEP`` posterior sds: steps from ``hessian``'s sds (None: the default steps),
    then once more from the result's own sds, so the steps fit the curvature at ``u``."""
    hessian = fd_hessian(value_and_grad, u, _fd_steps(u, hessian))
    return fd_hessian(value_and_grad, u, _fd_steps(u, hessian))


def _fd_steps(u, hessian=None):
    """Difference steps at ``_FD_STEP`` posterior sds (sds from ``hessian``), else eps^(1/3) max(1, |u|)."""
    default = np.finfo(float).eps ** (1 / 3) * np.maximum(1.0, np.abs(u))
    if hessian is None:
        return default
    with np.errstate(all="ignore"):
        try:
            sd = np.sqrt(np.diag(np.linalg.inv(hessian)))
        except np.linalg.LinAlgError:
            sd = np.full(len(u), np.nan)
        sd = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0 / np.sqrt(np.abs(np.diag(hessian))))
    return np.where(np.isfinite(sd) & (sd > 0), _FD_STEP * sd, default)


@dataclass
class Mode:
    """The mode of exp(-U) found by ``find_mode``: ``u``, ``value`` U(u), ``grad``, the ``hessian`` there,
    ``decrement`` sqrt(g^T H^-1 g) (how far the mode may still be, in posterior sds; NaN if H is not
    positive definite), and how it got there."""

    u: np.ndarray
    value: float
    grad: np.ndarray
    hessian: np.ndarray
    decrement: float
    positive_definite: bool
    lbfgs_iterations: int
    newton_steps: int
    num_evals: int
    rejected: int
    message: str
    error: str = None


def find_mode(value_and_grad, u0, max_iter=1000):
    """The mode of exp(-U) from ``u0``: L-BFGS-B with tolerances at machine precision, then Newton steps.

    L-BFGS alone stops early on badly scaled posteriors (a slope and an intercept
    with predictors near 2000: the relative change of U falls below SciPy's default
    ftol long before the gradient does), and after a line search that met points
    where the model raises it may stop where the gradient is not small. So: L-BFGS-B
    with ftol = 1e-15 and gtol = 1e-9, then Newton steps u <- u - t |H|^-1 g with
    the finite-difference Hessian (|H| = V |Lambda| V^T: a descent direction even
    where U is not convex), t halved until U does not rise beyond rounding, until a
    step would move u by less than ``NEWTON_TOL`` * 1e-3 posterior sds; if that
    has not converged, L-BFGS again from where it stopped (at most ``MAX_ROUNDS``).
    Points where the model raises or is not finite are rejected by the line searches.
    """
    from scipy.optimize import minimize

    from .blas import one_blas_thread

    objective = SafeObjective(value_and_grad)
    u, iterations, steps, messages, hessian = np.asarray(u0, dtype=float), 0, 0, [], None
    for _ in range(MAX_ROUNDS):
        with one_blas_thread():
            fit = minimize(objective, u, jac=True, method="L-BFGS-B", options={
                "maxiter": max(int(max_iter) - iterations, 1), "maxcor": 20, "maxls": 50, "ftol": 1e-15,
                "gtol": 1e-9})
        iterations += int(fit.nit)
        messages.append(str(fit.message))
        u = np.array(fit.x, dtype=float)
        value, grad = objective(u)
        if not math.isfinite(value):
            raise NonFiniteError(f"Laplace: the mode search ended where the log density is not finite "
                                 f"({fit.message}" + (f"; the model said {objective.error}" if objective.error
                                                      else "") + ")")
        start_value = value
        for newton_step in range(MAX_NEWTON + 1):
            if newton_step == 0:  # steps scaled by sds from elsewhere (or none): once more, by its own
                hessian = scaled_fd_hessian(value_and_grad, u, hessian)
            else:
                hessian = fd_hessian(value_and_grad, u, _fd_steps(u, hessian))
            direction, decrement, _ = _newton_direction(hessian, grad)
            if direction is None or decrement < NEWTON_TOL * 1e-3 or newton_step == MAX_NEWTON:
                break
            moved = _backtrack(objective, u, value, grad, direction, decrement)
            if moved is None:
                break
            u, value, grad = moved
            steps += 1
        direction, decrement, positive_definite = _newton_direction(hessian, grad)
        slack = 64 * np.finfo(float).eps * max(1.0, abs(value))
        if positive_definite and decrement < NEWTON_TOL or iterations >= max_iter and steps == 0 \
                or value > start_value - slack and fit.nit <= 1:
            break  # converged, out of iterations, or neither method makes progress
    return Mode(u, value, grad, hessian, decrement, positive_definite, iterations, steps,
                objective.num_evals, objective.rejected, "; ".join(messages), objective.error)


def _newton_direction(hessian, grad):
    """``(|H|^-1 g, sqrt(g^T |H|^-1 g), H positive definite)``, |H| = V max(|Lambda|, floor) V^T; a Hessian
    that is not finite gives ``(None, nan, False)``."""
    if not np.all(np.isfinite(hessian)):
        return None, float("nan"), False
    eigenvalues, vectors = np.linalg.eigh(hessian)
    floor = 1e-12 * max(float(np.abs(eigenvalues).max(initial=0.0)), 1e-300)
    projected = vectors.T @ grad
    direction = vectors @ (projected / np.maximum(np.abs(eigenvalues), floor))
    return direction, float(np.sqrt(max(grad @ direction, 0.0))), bool(eigenvalues.min(initial=1.0) > 0)


def _backtrack(objective, u, value, grad, direction, decrement):
    """A Newton step, halved until U does not rise beyond rounding and either falls or the gradient shrinks
    (near the mode U changes by less than its rounding error; the gradient still shows progress)."""
    slack = 64 * np.finfo(float).eps * max(1.0, abs(value))
    t = 1.0
    while t > 1e-6:
        trial = u - t * direction
        new_value, new_grad = objective(trial)
        if math.isfinite(new_value) and new_value <= value + slack:
            if new_value < value - slack or np.linalg.norm(new_grad) < np.linalg.norm(grad):
                return trial, new_value, new_grad
        t *= 0.5
    return None


def flat_order(guide, potential):
    """Indices ``idx`` with ``u_potential = u_guide[..., idx]``: the guide's flat layout (its prototypes in
    order) onto the potential's, site by site (both are the model's trace order today; this does not assume it)."""
    offsets, offset = {}, 0
    for name, proto in guide.prototypes.items():
        offsets[name] = (offset, proto.size)
        offset += proto.size
    if set(offsets) != set(potential.site_names) or offset != potential.dim:
        raise GuideStructureError(f"the guide's latent sites {list(offsets)} ({offset} unconstrained values) "
                                  f"are not the potential's {potential.site_names} ({potential.dim})")
    pieces = []
    for name in potential.site_names:
        start, size = offsets[name]
        if size != potential.sites[name].size:
            raise GuideStructureError(f"site {name!r}: {size} unconstrained values in the guide, "
                                      f"{potential.sites[name].size} in the potential")
        pieces.append(np.arange(start, start + size))
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=int)


def psis_khat(log_w):
    """The Pareto k-hat of importance log weights (a tail too degenerate to fit counts as the worst, inf)."""
    from .diagnostics import pareto_smooth

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # one draw holding all the weight
        khat = float(pareto_smooth(np.asarray(log_w, dtype=float))[1])
    return np.inf if np.isnan(khat) else khat


def gaussian_importance_draws(value_and_grad, mean, scale_tril, num_draws, rng):
    """``(draws, log_w)``: ``num_draws`` draws of Normal(mean, L L^T) on the potential's flat u, and their
    importance log weights log p - log q, log p = -U batched through the potential in chunks (points where
    the model fails weigh nothing)."""
    dim = len(mean)
    z = rng.standard_normal((num_draws, dim))
    draws = mean + z @ scale_tril.T
    log_q = -0.5 * np.sum(z * z, 1) - np.sum(np.log(np.diag(scale_tril))) - 0.5 * dim * np.log(2 * np.pi)
    log_p = np.empty(num_draws)
    for lo in range(0, num_draws, 256):
        chunk = draws[lo:lo + 256]
        try:
            with np.errstate(all="ignore"):
                log_p[lo:lo + 256] = -np.asarray(value_and_grad(chunk)[0], dtype=float)
        except _REJECTED:
            safe = SafeObjective(value_and_grad)
            log_p[lo:lo + 256] = [-safe(point)[0] for point in chunk]
    return draws, np.where(np.isnan(log_p), -np.inf, log_p) - log_q


def _unravel_rows(pot, draws):
    """``pot.unravel`` draw by draw, NaN for a draw where the model raises; None when every draw does."""
    rows = []
    for u in draws:
        try:
            with np.errstate(all="ignore"):
                rows.append(pot.unravel(u))
        except _REJECTED:
            rows.append(None)
    good = next((row for row in rows if row is not None), None)
    if good is None:
        return None
    return {name: np.stack([np.asarray(row[name], dtype=float) if row is not None
                            else np.full(np.shape(good[name]), np.nan) for row in rows]) for name in good}


class Laplace:
    """The Laplace approximation: a Gaussian at the posterior mode in the unconstrained space.

    On the model's potential U(u) = -(log p(x, T(u)) + log|det dT/du|)
    (``ppl.infer.potential``): the mode u* of exp(-U) by ``find_mode`` (L-BFGS
    at machine-precision tolerances, then Newton steps), and the covariance
    H^-1, H the Hessian of U at u* (central differences of the exact gradient,
    batched). The result is an ``AutoMultivariateNormal`` guide with those
    parameters, so it reports and samples like ADVI's full-rank result, with:

    - ``khat``: the PSIS k-hat of p/q over ``khat_samples`` draws of the Gaussian
      (None: ``khat_draws`` by size, 2000 for up to 25 coordinates; 0: off);
      above 0.7 the Gaussian is not the posterior (skewed, heavy-tailed) and a
      warning says so;
    - at or below 0.7, a moment check on the same draws (``MomentCheck``): where
      the Gaussian's means or sds in the model's space, deterministic sites
      included, disagree with the PSIS-weighted ones (sigma of a regression with
      few observations: the mode of log sigma is low), a warning names them, and
      ``diagnostics["psis_mean"]``, ``["psis_std"]`` hold the corrected moments;
    - ``diagnostics``: ``newton_decrement`` sqrt(g^T H^-1 g) (how far the mode may
      still be, in posterior sds), ``grad_norm``, ``min_eigenvalue`` of H,
      ``lbfgs_iterations``, ``newton_steps``, ``rejected`` (points where the
      model raised or was not finite), ``mode`` (u*) and ``moment_check``.

    A start where the model cannot be evaluated is replaced by up to 100 draws
    uniform in (-2, 2) (Stan's rule). If the mode is not found to
    ``NEWTON_TOL`` sds, or H is not positive definite (a saddle or a flat
    direction: the covariance then uses |eigenvalues|), a warning says so and
    ``result.converged_at`` is None.
    """

    def __init__(self, model, init_loc_fn="uniform", khat_samples=None):
        if khat_samples is not None and (int(khat_samples) != khat_samples or khat_samples != 0
                                         and khat_samples < 25):
            raise ValueError(f"Laplace: khat_samples must be None (by size), 0 (off) or an int >= 25, "
                             f"got {khat_samples!r}")
        self.model, self.init_loc_fn = model, init_loc_fn
        self.khat_samples = None if khat_samples is None else int(khat_samples)

    def run(self, *args, rng_seed=0, max_iter=1000, **kwargs):
        import warnings

        from .potential import potential as make_potential

        guide = AutoMultivariateNormal(self.model, self.init_loc_fn)
        guide.setup(*args, **kwargs)
        pot = make_potential(self.model, *args, **kwargs)
        order = flat_order(guide, pot)
        rng = np.random.default_rng(rng_seed)
        u0 = self._start(guide, pot, order, rng)
        mode = find_mode(pot.value_and_grad, u0, max_iter)
        tril, min_eigenvalue = covariance_root(mode.hessian)
        back = np.argsort(order)  # potential order -> guide order
        params = AutoMultivariateNormal.params_from(mode.u[back], tril[back][:, back])
        converged = mode.positive_definite and mode.decrement < NEWTON_TOL
        result = ADVIResult(np.array([mode.value]), guide, params, None,
                            converged_at=mode.lbfgs_iterations + mode.newton_steps if converged else None)
        result.diagnostics.update(newton_decrement=mode.decrement, grad_norm=float(np.linalg.norm(mode.grad)),
                                  min_eigenvalue=min_eigenvalue, lbfgs_iterations=mode.lbfgs_iterations,
                                  newton_steps=mode.newton_steps, rejected=mode.rejected, mode=mode.u,
                                  lbfgs_message=mode.message)
        if not mode.positive_definite:
            warnings.warn(f"Laplace: the Hessian at the point found is not positive definite (smallest eigenvalue "
                          f"{min_eigenvalue:.3g}): a saddle or a flat direction, not a strict mode; the covariance "
                          "uses |eigenvalues| and is not to be trusted", stacklevel=2)
        elif mode.decrement >= NEWTON_TOL:
            warnings.warn(f"Laplace: the mode was not found: a Newton step would still move it by "
                          f"{mode.decrement:.3g} posterior sds (gradient norm {np.linalg.norm(mode.grad):.3g}; "
                          f"L-BFGS said: {mode.message})", stacklevel=2)
        num_draws = khat_draws(pot.dim, self.khat_samples)
        if num_draws:
            draws, log_w = gaussian_importance_draws(pot.value_and_grad, mode.u, tril, num_draws,
                                                     np.random.default_rng(fold_in(rng_seed, "khat")))
            result.khat = result.diagnostics["khat"] = psis_khat(log_w)
            if result.khat > KHAT_BAD:
                warnings.warn(f"Laplace: PSIS k-hat = {result.khat:.2f} > {KHAT_BAD}: the posterior is far from "
                              "a Gaussian in the unconstrained space (skewed or heavy-tailed); do not trust the "
                              "means and sds", stacklevel=2)
            else:
                self._check_moments(result, pot, draws, log_w)
        return result

    @staticmethod
    def _check_moments(result, pot, draws, log_w):
        """``record_moment_check`` on the k-hat draws, mapped to the model's space through the potential (a
        draw where the model raises gets NaN values and no weight)."""
        import warnings

        try:
            values = pot.unravel(draws)
        except _REJECTED as err:  # one bad draw stops the batch: row by row, NaN where it fails
            values = _unravel_rows(pot, draws)
            if values is None:
                warnings.warn(f"Laplace: the moment check could not map the draws to the model's space "
                              f"({type(err).__name__}: {err}); only k-hat checks the fit", stacklevel=3)
                return
        sizes = dict(pot.shapes, **pot.deterministic_shapes)
        values = {name: value for name, value in values.items()
                  if name in pot.shapes or int(np.prod(sizes[name], dtype=int)) <= MOMENT_MAX_SIZE}
        record_moment_check(result, values, log_w, "Laplace")

    def _start(self, guide, pot, order, rng):
        """The initial flat u (potential order): the guide's ``init_loc_fn``, or, where the model cannot be
        evaluated there, the first of up to 100 uniform draws in (-2, 2) where it can."""
        import warnings

        check = SafeObjective(pot.value_and_grad)
        try:
            if self.init_loc_fn == "uniform" or isinstance(self.init_loc_fn, dict):
                u0 = pot.init(rng, self.init_loc_fn)  # runs the model to map a dict's values back
            else:
                u0 = np.concatenate([guide.init_loc(p)(rng).ravel() for p in guide.prototypes.values()])[order]
        except _REJECTED as err:
            first = f"{type(err).__name__}: {err}"
        else:
            if math.isfinite(check(u0)[0]):
                return u0
            first = check.error or "the log density is not finite"
        for _ in range(100):
            u = pot.init(rng)
            if math.isfinite(check(u)[0]):
                warnings.warn(f"Laplace: the model cannot be evaluated at the initial point ({first}); "
                              "started from a uniform draw in (-2, 2) instead", stacklevel=3)
                return u
        raise NonFiniteError(f"Laplace: the model cannot be evaluated at the initial point nor at 100 uniform "
                             f"draws in (-2, 2) of the unconstrained space (first: {first}; last: {check.error})")


def covariance_root(hessian):
    """The Cholesky factor of H^-1 and H's smallest eigenvalue; a H that is not positive definite is
    replaced by V |Lambda| V^T (eigenvalues floored at 1e-12 of the largest) so the guide still exists."""
    if not np.all(np.isfinite(hessian)):
        raise NonFiniteError("Laplace: the Hessian at the mode is not finite (the model fails next to it)")
    eigenvalues, vectors = np.linalg.eigh(hessian)
    smallest = float(eigenvalues[0])
    if smallest <= 0:
        floor = 1e-12 * max(np.abs(eigenvalues).max(), 1e-300)
        eigenvalues = np.maximum(np.abs(eigenvalues), floor)
    covariance = (vectors / eigenvalues) @ vectors.T
    return np.linalg.cholesky(0.5 * (covariance + covariance.T)), smallest
