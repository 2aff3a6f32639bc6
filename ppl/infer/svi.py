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

import autograd.numpy as anp
import numpy as np

from ..autodiff import value_and_grads
from ..core import fold_in
from ..distributions import constraints
from ..distributions.transforms import biject_to
from ..errors import CheckpointError, NonFiniteError, PPLError
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
    """``values``: the posterior mode per site, in the model's own space."""

    losses: np.ndarray
    guide: AutoDelta
    params: dict
    values: dict
    state: SVIState = field(repr=False)


class MAP:
    """Maximum a posteriori: SVI with ``AutoDelta``; the loss is ``-log p(x, z)`` at the point.

    No Jacobian enters, so the answer is the mode of the posterior density in
    the model's own parameterization (constrained sites are only optimised
    through ``biject_to``).
    """

    def __init__(self, model, optimizer=None, init_loc_fn="uniform"):
        self.model = model
        self.optimizer = Adam(0.05) if optimizer is None else optimizer
        self.init_loc_fn = init_loc_fn

    def run(self, num_steps, *args, rng_seed=0, progress=False, **kwargs):
        guide = AutoDelta(self.model, self.init_loc_fn)
        result = SVI(self.model, guide, self.optimizer, Trace_ELBO()).run(
            rng_seed, num_steps, *args, progress=progress, **kwargs)
        return MAPResult(result.losses, guide, result.params, guide.median(result.params), result.state)


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

    ``anneal``: the last fraction of the steps (never the first 1000) decays the learning rate
    linearly to 1% of its value (default: 0.5 for the full-rank family, 0 for mean-field). With a constant
    step, Adam keeps moving the factor's off-diagonals by about the learning rate each
    step, and that jitter biases the fitted scales down (nes1972: sd ratios 0.43-0.95
    at a constant 0.05; 0.89-0.99 annealed).

    After the run: PSIS k-hat of the guide from ``khat_samples`` draws (``result.khat``,
    a warning above 0.7; 0 turns it off), and a check that the loss did not end far above
    its best (``result.diverged``, a warning; such a run is never reported as converged).
    """

    def __init__(self, model, family="meanfield", optimizer=None, num_particles=1, entropy="analytic",
                 init_loc_fn="uniform", init_scale_raw=-4.0, tol=None, eval_every=100, eval_particles=100,
                 adapt_step_size=False, adapt_iter=50, vectorize=True, param_tol=0.5, anneal=None,
                 khat_samples=500):
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
        if int(khat_samples) != khat_samples or khat_samples != 0 and khat_samples < 25:
            raise ValueError(f"ADVI: khat_samples must be 0 (off) or an int >= 25, got {khat_samples!r}")
        self.model, self.family = model, family
        self.optimizer = Adam(0.05) if optimizer is None else optimizer
        self.loss = Trace_ELBO(num_particles, vectorize=vectorize, entropy=entropy)
        self.init_loc_fn, self.init_scale_raw = init_loc_fn, init_scale_raw
        self.tol, self.eval_every, self.eval_particles = tol, int(eval_every), eval_particles
        self.param_tol, self.anneal, self.khat_samples = float(param_tol), float(anneal), int(khat_samples)
        self.adapt_step_size, self.adapt_iter = adapt_step_size, adapt_iter

    def make_guide(self):
        return FAMILIES[self.family](self.model, self.init_loc_fn, self.init_scale_raw)

    def run(self, num_steps, *args, rng_seed=0, progress=False, **kwargs):
        if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 0:
            raise ValueError(f"num_steps must be an int >= 0, got {num_steps!r}")
        num_steps = int(num_steps)
        optimizer = self._adapt(rng_seed, args, kwargs) if self.adapt_step_size else self.optimizer
        optimizer = copy.copy(optimizer)  # annealing changes lr: the caller's optimizer stays as given
        base_lr = optimizer.lr
        guide = self.make_guide()
        svi = SVI(self.model, guide, optimizer, self.loss)
        state, losses, history, changes, locs, converged_at = svi.init(rng_seed, *args, **kwargs), [], [], [], [], None
        window = max(2, int(0.1 * num_steps / self.eval_every))
        # a short run is still travelling, and its step's jitter is not the error that dominates: no decay
        anneal_from = max(num_steps - int(round(self.anneal * num_steps)), min(num_steps, ANNEAL_AFTER))
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
        self._check(result, args, kwargs, rng_seed)
        return result

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

        from .diagnostics import pareto_smooth

        rise, last, best, noise = loss_rise(result.losses)
        result.diagnostics.update(loss_rise=rise, final_loss=last, best_loss=best, loss_noise=noise)
        if rise > RISE_NOISE:
            result.diverged, result.converged_at = True, None
            warnings.warn(f"ADVI({self.family!r}): the loss blew up: it ended at {last:.6g} (mean of the last "
                          f"10% of steps), {rise:.3g} noise sds (sd {noise:.3g}) above the best stretch's "
                          f"{best:.6g}; the result is not converged. Lower the learning rate.", stacklevel=3)
        if self.khat_samples:
            try:
                # Trace_ELBO's log weights: vectorized over the draws, or a loop for a model that does not broadcast
                log_w = self.loss.log_weights(fold_in(rng_seed, "khat"), result.params, self.model, result.guide,
                                              *args, num_particles=self.khat_samples, **kwargs)
                with np.errstate(divide="ignore", invalid="ignore"):  # one draw holding all the weight
                    khat = float(pareto_smooth(np.asarray(log_w))[1])
                result.khat = khat if not np.isnan(khat) else np.inf  # a tail too degenerate to fit: the worst
            except (PPLError, ValueError, IndexError, TypeError) as err:
                warnings.warn(f"ADVI({self.family!r}): PSIS k-hat could not be computed "
                              f"({type(err).__name__}: {err}); the fit is not checked", stacklevel=3)
            result.diagnostics["khat"] = result.khat
            if result.khat is not None and result.khat > KHAT_BAD:
                warnings.warn(f"ADVI({self.family!r}): PSIS k-hat = {result.khat:.2f} > {KHAT_BAD}: the fitted "
                              "guide is far from the posterior (or the fit has not converged); do not trust "
                              "its means and sds", stacklevel=3)

    def _adapt(self, rng_seed, args, kwargs):
        """Stan's step-size search: try scaled learning rates briefly, keep the best finite ELBO."""
        best, best_elbo = None, -np.inf
        for factor in (100.0, 10.0, 1.0, 0.1, 0.01):
            candidate = copy.copy(self.optimizer)
            candidate.lr = self.optimizer.lr * factor
            svi = SVI(self.model, self.make_guide(), candidate, self.loss)
            try:
                state = svi.run(rng_seed, self.adapt_iter, *args, progress=False, **kwargs).state
                elbo = -svi.evaluate(state, *args, num_particles=self.eval_particles,
                                     rng_seed=fold_in(rng_seed, "adapt"), **kwargs)
            except (NonFiniteError, ValueError, FloatingPointError):
                continue
            if np.isfinite(elbo) and elbo > best_elbo:
                best, best_elbo = candidate, elbo
        if best is None:
            raise NonFiniteError("ADVI: every step size in the search diverged")
        return best


class Laplace:
    """The Laplace approximation: a Gaussian at the posterior mode in the unconstrained space.

    Maximises log p(x, T(u)) + log|det dT/du| over the flat unconstrained
    vector u (L-BFGS with autograd's gradient), then takes the covariance
    as the inverse of autograd's Hessian of the negative log density there.
    The result is an ``AutoMultivariateNormal`` guide with those parameters,
    so it reports and samples like ADVI's full-rank result.
    """

    def __init__(self, model, init_loc_fn="uniform"):
        self.model, self.init_loc_fn = model, init_loc_fn

    def run(self, *args, rng_seed=0, max_iter=1000, **kwargs):
        import autograd
        from scipy.optimize import minimize

        from ..handlers import log_joint

        guide = AutoMultivariateNormal(self.model, self.init_loc_fn)
        guide.setup(*args, **kwargs)
        protos = list(guide.prototypes.values())
        joint = log_joint(self.model)

        def log_density(u):
            values, total, offset = {}, 0.0, 0
            for proto in protos:
                piece = anp.reshape(u[offset:offset + proto.size], proto.unconstrained_shape)
                offset += proto.size
                values[proto.name], log_det = proto.constrain(piece)
                total = total + anp.sum(log_det)
            return joint(values, *args, **kwargs) + total

        rng = np.random.default_rng(rng_seed)
        u0 = np.concatenate([guide.init_loc(p)(rng).ravel() for p in protos]).astype(float)
        objective = autograd.value_and_grad(lambda u: -log_density(u))
        fit = minimize(objective, u0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
        if not np.all(np.isfinite(fit.x)):
            raise NonFiniteError(f"Laplace: the mode search diverged ({fit.message})")
        hessian = autograd.hessian(lambda u: -log_density(u))(fit.x)
        try:
            tril = np.linalg.cholesky(np.linalg.inv(hessian))
        except np.linalg.LinAlgError as err:
            raise NonFiniteError("Laplace: the Hessian at the mode is not positive definite "
                                 "(the mode is not a strict maximum)") from err
        raw = np.tril(tril, -1) + np.diag(inverse_softplus(np.diag(tril)))
        params = {"auto.loc": fit.x, "auto.scale_tril_raw": raw}
        return ADVIResult(np.array([fit.fun]), guide, params, None, converged_at=int(fit.nit))
