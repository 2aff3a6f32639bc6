"""Hamiltonian Monte Carlo on a model's potential: multinomial NUTS as Stan does it, and static HMC.

NUTS (Hoffman & Gelman 2014, in the form of Betancourt 2017 and Stan's
``base_nuts``): each transition draws a momentum p ~ N(0, M), then doubles a
trajectory of leapfrog steps forwards or backwards in time at random. Within
a new subtree a point is chosen with probability proportional to its weight
exp(-H) (multinomial sampling); at the top level the subtree's choice
replaces the current one with probability min(1, W_subtree / W_old) (biased
progressive sampling, which favours points far from the start). Doubling
stops at a U-turn by the generalized criterion: with rho the sum of the
momenta of a (sub)tree and p# = M^-1 p at its ends, continue while
p#_minus . rho > 0 and p#_plus . rho > 0, checked for every subtree and, as
Stan >= 2.26 does, across the boundary of every merge (each half extended by
the first point of the other). An energy error H - H0 above 1000 is a
divergence and ends the tree.

Warm-up is Stan's: the initial step-size heuristic, dual averaging of log
step size towards the target acceptance (gamma 0.05, t0 10, kappa 0.75,
mu = log(10 eps)), and the (diagonal or dense) inverse mass matrix estimated
from the draws of windows of 25, 50, 100, ... iterations after a 75-iteration
buffer and before a 50-iteration terminal buffer, regularised (towards 1e-3 times its own
diagonal, not Stan's 1e-3 I: see ``_Welford.regularized``).

Each chain's run (initial point, step-size search, warm-up, draws) is one
coroutine on 1-D vectors and floats, written as the single-chain algorithm
is: it yields every point where it needs the potential. The chains advance
together: ``_drive`` evaluates the requests of all chains in one vectorized
call and sends each its row back, so C chains cost about as many
evaluations as their longest chain, and no chain waits for another's tree.
Each chain's randomness comes from its own generator seeded with
``fold_in(rng_seed, chain)``, and a batched evaluation's rows equal single
ones, so chains run together, one at a time, or in another process give the
same draws.
"""
import functools
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..core import fold_in
from ..errors import NonFiniteError, SupportError
from . import diagnostics
from .parallel import run_tasks
from .potential import Potential

MAX_DELTA_H = 1000.0


# ------------------------------------------------------------------ mass matrices


class _DiagonalMetric:
    """A chain's inverse mass vector: p# = M^-1 p elementwise, p = z / sqrt(M^-1)."""

    def __init__(self, inverse):
        self.inverse = inverse  # (D,)
        self.scale = 1.0 / np.sqrt(inverse)

    def sharp(self, p):
        return self.inverse * p

    def momentum(self, z):
        return self.scale * z


class _DenseMetric:
    """A chain's inverse mass matrix: p# = M^-1 p, p = chol(M) z."""

    def __init__(self, inverse):
        self.inverse = inverse  # (D, D)
        self.chol = np.linalg.cholesky(np.linalg.inv(inverse))

    def sharp(self, p):
        return np.einsum("ij,j->i", self.inverse, p)

    def momentum(self, z):
        return np.einsum("ij,j->i", self.chol, z)


def _momentum(metric, rng):
    """p ~ N(0, M), from the chain's own generator (so chains together or apart draw the same)."""
    return metric.momentum(rng.standard_normal(len(metric.inverse)))


def _kinetic(p, p_sharp):
    return 0.5 * float(p.dot(p_sharp))


def _criterion(p_sharp_minus, p_sharp_plus, rho):
    """The generalized no-U-turn criterion: True while the (sub)tree still expands."""
    return float(p_sharp_plus.dot(rho)) > 0 and float(p_sharp_minus.dot(rho)) > 0


def _logaddexp(a, b):
    """log(e^a + e^b) of two floats, as NumPy's ``logaddexp`` computes it (and so, bit for bit, the same)."""
    if a == b:
        return a + _LOG2
    t = a - b
    if t > 0:
        return a + math.log1p(math.exp(-t))
    if t <= 0:
        return b + math.log1p(math.exp(t))
    return t  # NaN


_LOG2 = math.log(2.0)


# ------------------------------------------------------------------ evaluation


class _Energy:
    """The potential on rows of chain positions; a point outside the support or with a non-finite
    value or gradient gets U = inf (the step is then a divergence), as Stan rejects such proposals."""

    def __init__(self, potential):
        self.potential = potential

    def __call__(self, q):
        try:
            values, grads = self.potential.value_and_grad(q)
        except (SupportError, FloatingPointError, np.linalg.LinAlgError):
            rows = [self._one(x) for x in q]
            values, grads = np.array([r[0] for r in rows]), np.stack([r[1] for r in rows])
        if math.isfinite(np.add.reduce(values) + np.add.reduce(grads, axis=None)):  # the common case, cheaply
            return values, grads
        bad = ~(np.isfinite(values) & np.all(np.isfinite(grads), axis=-1))
        if bad.any():
            values, grads = values.copy(), grads.copy()
            values[bad], grads[bad] = np.inf, 0.0
        return values, grads

    def _one(self, x):
        try:
            value, grad = self.potential.value_and_grad(x[None])
            return value[0], grad[0]
        except (SupportError, FloatingPointError, np.linalg.LinAlgError):
            return np.inf, np.zeros_like(x)


def _drive(energy, runs):
    """Advance the chains' coroutines together: each yields the point where it needs U and dU/du and is
    sent them back; one evaluation of ``energy`` serves every chain with a request. Returns what each
    run returns, in order.

    Chains meet only at leapfrog steps, not at trees: a chain whose tree has
    ended starts its next transition while the others go on, so C chains
    cost about as many evaluations as their longest chain (a tree-level
    lockstep, as with masks, costs about twice that: every transition waits
    for the deepest tree).
    """
    chains, points = list(range(len(runs))), [next(run) for run in runs]
    results = [None] * len(runs)
    while chains:
        values, grads = energy(np.stack(points) if len(points) > 1 else points[0][None])
        values, waiting, points = values.tolist(), chains, []
        chains = []
        for row, i in enumerate(waiting):
            try:
                points.append(runs[i].send((values[row], grads[row])))
                chains.append(i)
            except StopIteration as stop:
                results[i] = stop.value
    return results


# ------------------------------------------------------------------ NUTS transition


@dataclass
class _Subtree:
    valid: bool
    lsw: float  # log of the sum of the weights exp(H0 - H) of its points
    rho: np.ndarray  # the sum of its momenta
    begin_p: np.ndarray
    begin_sharp: np.ndarray
    end: tuple  # q, p, grad, potential, p_sharp of the last point
    proposal: tuple  # q, p, grad, potential
    num_steps: int
    sum_metro: float
    divergent: bool


def _leapfrog(metric, q, p, grad, step, half):
    """One leapfrog step of signed size ``step``; a coroutine step: yields q, is sent (U, dU/du) there."""
    p_half = p - half * grad
    q = q + step * metric.sharp(p_half)
    pot, grad = yield q
    return q, p_half - half * grad, grad, pot


def _subtree(metric, depth, q, p, grad, pot, step, h0, uniforms):
    """Build a subtree of 2^depth leapfrog steps from (q, p), iteratively (a coroutine, as ``_leapfrog``).

    The binary tree of Stan's recursion is kept as a counter: after step k
    (0-based) the sub-subtrees of size 2^m with 2^m | k + 1 are complete,
    and each gets its U-turn checks (the whole, and each half extended by
    the neighbouring point of the other). Per level the first point of the
    open node and the last point of the previous one are kept, with prefix
    sums of the momenta, so rho of any node is a difference of two sums.
    A divergence or a U-turn ends it (the subtree is invalid).
    """
    levels = depth + 1
    half = 0.5 * step
    lsw, sum_metro, num_steps, divergent, valid = -math.inf, 0.0, 0, False, True
    proposal = (q, p, grad, pot)
    prefix = np.zeros(q.shape)
    before, begin_p, begin_sharp = [None] * levels, [None] * levels, [None] * levels
    end_p, end_sharp = [None] * levels, [None] * levels
    for k in range(1 << depth):
        q, p, grad, pot = yield from _leapfrog(metric, q, p, grad, step, half)
        p_sharp = metric.sharp(p)
        h = pot + _kinetic(p, p_sharp)
        if h != h:
            h = math.inf
        w = h0 - h
        new_lsw = _logaddexp(lsw, w)
        # np.exp, not math.exp: NumPy's exp is its own, and a float's is the same as an array's
        if uniforms[k] < np.exp(w - new_lsw):  # multinomial sampling within the subtree, progressively
            proposal = (q, p, grad, pot)
        lsw = new_lsw
        sum_metro += float(np.exp(min(w, 0.0)))
        num_steps += 1
        prefix = prefix + p
        for m in range(levels):
            if k % (1 << m):
                break
            begin_p[m], begin_sharp[m], before[m] = p, p_sharp, prefix - p
        ok = w >= -MAX_DELTA_H  # h = inf (w = -inf) is a divergence too
        divergent = not ok
        for m in range(1, levels):
            if not ok or (k + 1) % (1 << m):
                break
            ok = (_criterion(begin_sharp[m], p_sharp, prefix - before[m])
                  and _criterion(begin_sharp[m], begin_sharp[m - 1], (before[m - 1] - before[m]) + begin_p[m - 1])
                  and _criterion(end_sharp[m - 1], p_sharp, (prefix - before[m - 1]) + end_p[m - 1]))
        for m in range(levels):
            if (k + 1) % (1 << m):
                break
            end_p[m], end_sharp[m] = p, p_sharp
        if not ok:
            valid = False
            break
    return _Subtree(valid, lsw, prefix, begin_p[depth], begin_sharp[depth], (q, p, grad, pot, p_sharp), proposal,
                    num_steps, sum_metro, divergent)


class _NUTSKernel:
    def __init__(self, max_tree_depth):
        self.max_tree_depth = max_tree_depth

    def transition(self, metric, state, step_size, rng):
        """One NUTS transition of one chain (a coroutine): returns the new state and its statistics."""
        q, pot, grad = state
        p = _momentum(metric, rng)
        p_sharp = metric.sharp(p)
        h0 = pot + _kinetic(p, p_sharp)
        left = right = (q, p, grad, pot, p_sharp)  # the trajectory's two ends
        sample, lsw, rho = (q, p, grad, pot), 0.0, p
        depth, num_steps, sum_metro, divergent = 0, 0, 0.0, False
        for j in range(self.max_tree_depth):
            u = rng.random(2 + (1 << j))
            forward = u[0] > 0.5
            start = right if forward else left
            sub = yield from _subtree(metric, j, *start[:4], (1.0 if forward else -1.0) * step_size, h0,
                                      u[2:].tolist())
            num_steps += sub.num_steps
            sum_metro += sub.sum_metro
            divergent = divergent or sub.divergent
            if not sub.valid:
                break
            depth += 1
            if sub.lsw > lsw or u[1] < np.exp(sub.lsw - lsw):  # biased progressive sampling
                sample = sub.proposal
            lsw = _logaddexp(lsw, sub.lsw)
            near, far = (right, left) if forward else (left, right)
            rho_old, rho = rho, rho + sub.rho
            end_sharp = sub.end[4]
            persist = (_criterion(far[4], end_sharp, rho)
                       and _criterion(far[4], sub.begin_sharp, rho_old + sub.begin_p)
                       and _criterion(near[4], end_sharp, sub.rho + near[1]))
            if forward:
                right = sub.end
            else:
                left = sub.end
            if not persist:
                break
        q, p, grad, pot = sample
        stats = {"accept_prob": sum_metro / max(num_steps, 1), "tree_depth": depth, "num_steps": num_steps,
                 "diverging": divergent, "energy": pot + _kinetic(p, metric.sharp(p)), "lp": -pot}
        return (q, pot, grad), stats


class _HMCKernel:
    def __init__(self, num_steps):
        self.num_steps = num_steps

    def transition(self, metric, state, step_size, rng):
        """``num_steps`` leapfrog steps, then a Metropolis correction (a coroutine, as NUTS's)."""
        q, pot, grad = state
        p = _momentum(metric, rng)
        h0 = pot + _kinetic(p, metric.sharp(p))
        half = 0.5 * step_size
        for _ in range(self.num_steps):
            q, p, grad, pot = yield from _leapfrog(metric, q, p, grad, step_size, half)
        h = pot + _kinetic(p, metric.sharp(p))
        if h != h:
            h = math.inf
        log_accept = min(h0 - h, 0.0)
        accept = np.log(rng.random()) < log_accept  # NumPy's log and exp, as everywhere in a run
        new = (q, pot, grad) if accept else state
        stats = {"accept_prob": float(np.exp(log_accept)), "tree_depth": 0, "num_steps": self.num_steps,
                 "diverging": h - h0 > MAX_DELTA_H, "energy": h if accept else h0, "lp": -new[1]}
        return new, stats


# ------------------------------------------------------------------ warm-up


class _DualAveraging:
    """Nesterov dual averaging of log step size towards ``target`` acceptance (Stan's constants)."""

    def __init__(self, step_size, target, gamma=0.05, t0=10.0, kappa=0.75):
        self.target, self.gamma, self.t0, self.kappa = target, gamma, t0, kappa
        self.restart(step_size)

    def restart(self, step_size):
        self.mu = float(np.log(10 * step_size))
        self.counter, self.s_bar, self.x_bar = 0, 0.0, 0.0

    def learn(self, accept_prob):
        self.counter += 1
        accept_prob = min(accept_prob, 1.0)
        eta = 1.0 / (self.counter + self.t0)
        self.s_bar = (1 - eta) * self.s_bar + eta * (self.target - accept_prob)
        x = self.mu - self.s_bar * math.sqrt(self.counter) / self.gamma
        x_eta = self.counter ** -self.kappa
        self.x_bar = (1 - x_eta) * self.x_bar + x_eta * x
        return float(np.exp(x))

    def final(self):
        return float(np.exp(self.x_bar))


def window_schedule(num_warmup, init_buffer=75, term_buffer=50, base_window=25):
    """Stan's windowed adaptation: (iterations whose draws feed the mass matrix, iterations that end a window).

    Windows double from ``base_window`` after ``init_buffer`` iterations; the
    last one stretches to ``term_buffer`` before the end. Short warm-ups
    shrink the buffers as Stan does (15% / 75% / 10%); under 20 iterations
    there is no mass adaptation.
    """
    if num_warmup < 20:
        return np.zeros(num_warmup, bool), set()
    if init_buffer + base_window + term_buffer > num_warmup:
        init_buffer, term_buffer = int(0.15 * num_warmup), int(0.1 * num_warmup)
        base_window = num_warmup - (init_buffer + term_buffer)
    last = num_warmup - term_buffer - 1
    collect = np.array([init_buffer <= i < num_warmup - term_buffer for i in range(num_warmup)])
    ends, size, next_end = set(), base_window, init_buffer + base_window - 1
    for i in range(num_warmup):
        if i != next_end:
            continue
        ends.add(i)
        if next_end == last:
            continue
        size *= 2
        next_end = i + size
        if next_end != last and next_end + 2 * size >= num_warmup - term_buffer:
            next_end = last
    return collect, ends


class _Welford:
    """Running mean and (co)variance of one chain's draws."""

    def __init__(self, d, dense):
        self.dense, self.n = dense, 0
        self.mean = np.zeros(d)
        self.m2 = np.zeros((d, d) if dense else d)

    def add(self, x):
        self.n += 1
        delta = x - self.mean
        self.mean = self.mean + delta / self.n
        if self.dense:
            self.m2 = self.m2 + np.einsum("i,j->ij", x - self.mean, delta)
        else:
            self.m2 = self.m2 + (x - self.mean) * delta

    def regularized(self):
        """Stan's shrinkage of the sample (co)variance, with weight 5 / (n + 5), towards 1e-3 times its own
        diagonal rather than Stan's 1e-3 I.

        Stan's target is in absolute units: on a ridge whose narrow direction has variance 1e-9 (kilpisjarvi's
        slope and intercept, with years near 4000 as the predictor) adding 1e-5 I makes the metric 10^4 too
        wide there, and every tree takes hundreds of leapfrog steps. Scaled by the diagonal, the shrinkage is
        the same as Stan's where the scales are near 1 and does not depend on the units of any coordinate.
        A coordinate with no spread in the window (a stuck chain) shrinks towards 1e-3, as in Stan.
        """
        n = self.n
        cov = self.m2 / (n - 1)
        variances = np.diagonal(cov) if self.dense else cov
        target = 1e-3 * np.where(variances > 0, variances, 1.0)
        weight = 5.0 / (n + 5.0)
        if self.dense:
            return (n / (n + 5.0)) * cov + weight * target[:, None] * np.eye(len(cov))
        return (n / (n + 5.0)) * cov + weight * target


def _find_step_size(metric, state, step_size, rng):
    """Stan's heuristic: double or halve the step until one leapfrog step's acceptance exp(H0 - H) crosses
    0.8 (a coroutine)."""
    q, pot, grad = state
    direction = 0.0
    for _ in range(100):
        p = _momentum(metric, rng)
        h0 = pot + _kinetic(p, metric.sharp(p))
        _, p1, _, pot1 = yield from _leapfrog(metric, q, p, grad, step_size, 0.5 * step_size)
        h = pot1 + _kinetic(p1, metric.sharp(p1))
        delta = h0 - (math.inf if h != h else h)
        if not direction:  # the first trial only sets the direction, as Stan's
            direction = 1.0 if delta > _LOG_08 else -1.0
        elif not (delta > _LOG_08 if direction == 1 else delta < _LOG_08):
            return step_size
        else:
            step_size = 2 * step_size if direction == 1 else 0.5 * step_size
        if step_size > 1e7 or step_size == 0:
            raise NonFiniteError("NUTS: the initial step-size search diverged: the posterior is improper or the "
                                 "potential is numerically flat or ill-defined")
    return step_size


_LOG_08 = float(np.log(0.8))


# ------------------------------------------------------------------ the run of a batch of chains


def _initial_state(potential, init, rng, chain):
    """The chain's first point (a coroutine): Stan's uniform(-2, 2) unconstrained (redrawn up to 100 times
    until the potential and its gradient are finite), a dict of site values, or a given flat array."""
    for _ in range(100):
        u = (init[chain] if init.ndim == 2 else init) if isinstance(init, np.ndarray) else potential.init(rng, init)
        pot, grad = yield u
        if math.isfinite(pot):
            return u, pot, grad
        if isinstance(init, np.ndarray):
            raise NonFiniteError(f"chain {chain}: the given initial point has a non-finite log density or gradient")
    raise NonFiniteError(f"chain {chain}: no initial point with a finite log density and gradient after 100 tries "
                         f"(init={init!r}); check the model's supports, or pass init= a dict of valid values")


def _start_metric(inverse_mass, d, dense_mass):
    start = np.eye(d) if inverse_mass is None else np.asarray(inverse_mass, dtype=float)
    return _DenseMetric(start.copy()) if dense_mass else _DiagonalMetric(np.diag(start).copy())


def run_chains(potential, kernel, chains, rng_seed, num_warmup, num_samples, init="uniform", step_size=None,
               target_accept=0.8, dense_mass=False, adapt=True, callback=None, inverse_mass=None):
    """Warm up and sample the chains numbered ``chains`` together; every array has a leading chain axis.

    ``inverse_mass``: the metric the warm-up starts from, (D, D) (its diagonal when ``dense_mass`` is off);
    None is the identity, as Stan's. ``callback(phase, step_size, diverging)`` is called after each
    iteration of each chain, and with phase "rerun" once per chain run again.

    Returns a dict: ``positions`` (C, num_samples, D), per-draw ``stats``
    {name: (C, num_samples)}, the final ``step_size`` (C,) and
    ``inverse_mass`` (C, D) or (C, D, D).
    """
    chains = list(chains)
    settings = dict(kernel=kernel, rng_seed=rng_seed, num_warmup=num_warmup, num_samples=num_samples, init=init,
                    step_size=step_size, target_accept=target_accept, dense_mass=dense_mass, adapt=adapt,
                    callback=callback, inverse_mass=inverse_mass)
    result = _run_chains(potential, chains, settings)
    if potential.replay_agrees(_spread(result["positions"])):
        return result
    # the tape's arithmetic was frozen somewhere the chains went (a value read outside autograd's sight)
    warnings.warn(f"the potential's replay disagreed with the model at the draws of chains {chains}: they were "
                  "rerun with the model run in Python at every step (slower, and right)", RuntimeWarning,
                  stacklevel=2)
    potential.stop_replay("its replay disagreed with the model at the draws")
    for _ in chains if callback is not None else ():
        callback("rerun", None, False)
    return _run_chains(potential, chains, settings)


def _spread(positions, per_chain=4):
    """A few draws per chain, spread over the run: where a replay is checked against the model."""
    n = positions.shape[1]
    picks = np.unique(np.linspace(0, n - 1, per_chain).astype(int)) if n else []
    return positions[:, picks].reshape(-1, positions.shape[-1])


def _run_chains(potential, chains, settings):
    runs = [_chain(potential, chain, **settings) for chain in chains]
    # one errstate for the whole run: the kernels' inf - inf and exp overflows are expected, and a context
    # manager per leapfrog step would cost more than the arithmetic it guards
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        parts = _drive(_Energy(potential), runs)
    return {"positions": np.stack([part["positions"] for part in parts]),
            "stats": {name: np.stack([part["stats"][name] for part in parts]) for name in parts[0]["stats"]},
            "step_size": np.array([part["step_size"] for part in parts]),
            "inverse_mass": np.stack([part["inverse_mass"] for part in parts])}


STAT_TYPES = {"accept_prob": float, "tree_depth": int, "num_steps": int, "diverging": bool, "energy": float,
              "lp": float}


def _chain(potential, chain, kernel, rng_seed, num_warmup, num_samples, init, step_size, target_accept,
           dense_mass, adapt, callback, inverse_mass):
    """One chain's whole run, warm-up then sampling, as a coroutine that yields each point where it needs
    the potential (``_drive`` evaluates the requests of all chains at once)."""
    rng = np.random.Generator(np.random.PCG64(fold_in(rng_seed, int(chain))))
    d = potential.dim
    state = yield from _initial_state(potential, init, rng, chain)
    metric = _start_metric(inverse_mass, d, dense_mass)
    eps = 1.0 if step_size is None else float(step_size)
    if adapt:
        eps = yield from _find_step_size(metric, state, eps, rng)
        averaging = _DualAveraging(eps, target_accept)
        collect, ends = window_schedule(num_warmup)
        welford = _Welford(d, dense_mass)
    for i in range(num_warmup):
        state, stats = yield from kernel.transition(metric, state, eps, rng)
        if adapt:
            eps = averaging.learn(stats["accept_prob"])
            if collect[i]:
                welford.add(state[0])
            if i in ends:
                inverse = welford.regularized()
                metric = _DenseMetric(inverse) if dense_mass else _DiagonalMetric(inverse)
                welford = _Welford(d, dense_mass)
                eps = yield from _find_step_size(metric, state, eps, rng)
                averaging.restart(eps)
        if callback is not None:
            callback("warmup", eps, stats["diverging"])
    if adapt and num_warmup:
        eps = averaging.final()
    positions = np.empty((num_samples, d))
    records = {name: np.empty(num_samples, dtype=kind) for name, kind in STAT_TYPES.items()}
    for i in range(num_samples):
        state, stats = yield from kernel.transition(metric, state, eps, rng)
        positions[i] = state[0]
        for name, value in stats.items():
            records[name][i] = value
        if callback is not None:
            callback("sample", eps, stats["diverging"])
    records["step_size"] = np.full(num_samples, eps)
    return {"positions": positions, "stats": records, "step_size": eps, "inverse_mass": metric.inverse}


def _run_chain_worker(model, args, kwargs, settings, chain, rng_seed):
    """One chain in a worker process (module level, so an Executor can pickle it). Its generator is
    ``fold_in(rng_seed, chain)``, made inside ``run_chains`` as for chains run here."""
    potential = Potential(model, args, kwargs)
    return run_chains(potential, chains=[chain], **settings)


# ------------------------------------------------------------------ results


@dataclass
class MCMCResult:
    """Draws of a Markov chain Monte Carlo run, in the model's own space.

    ``samples``: {site: (chains, draws, *shape)} for the latent and
    deterministic sites; ``stats``: {name: (chains, draws)} per draw
    (accept_prob, tree_depth, num_steps, diverging, energy, lp, step_size);
    ``positions``: the unconstrained draws (chains, draws, D).
    """

    samples: dict
    stats: dict
    positions: np.ndarray = field(repr=False)
    step_size: np.ndarray = None
    inverse_mass: np.ndarray = field(default=None, repr=False)
    potential: Potential = field(default=None, repr=False)
    max_tree_depth: int = None

    @property
    def num_chains(self):
        return self.positions.shape[0]

    @property
    def num_draws(self):
        return self.positions.shape[1]

    @property
    def mean(self):
        return {name: np.mean(v, axis=(0, 1)) for name, v in self.samples.items()}

    @property
    def std(self):
        return {name: np.std(v, axis=(0, 1), ddof=1) for name, v in self.samples.items()}

    @property
    def divergences(self):
        return int(np.sum(self.stats["diverging"]))

    def sample(self, num_samples, rng_seed=0):
        """``num_samples`` draws picked at random from all chains' draws (with replacement only if more are
        asked for than exist): {site: (num_samples, *shape)}."""
        total = self.num_chains * self.num_draws
        rng = np.random.default_rng(rng_seed)
        index = rng.choice(total, num_samples, replace=num_samples > total)
        return {name: v.reshape((total,) + v.shape[2:])[index] for name, v in self.samples.items()}

    def summary(self, prob=0.9):
        """The posterior table: mean, sd, quantiles, ess_bulk, ess_tail, r_hat, mcse per entry."""
        return diagnostics.summary(self.samples, prob)

    def e_bfmi(self):
        """Energy Bayesian fraction of missing information per chain (below 0.3: the momentum resampling
        explores the energy levels poorly)."""
        energy = self.stats["energy"]
        return np.sum(np.diff(energy, axis=1) ** 2, axis=1) / np.sum(
            (energy - energy.mean(axis=1, keepdims=True)) ** 2, axis=1)

    def problems(self):
        """What Stan would warn about, as sentences (empty when nothing is wrong)."""
        found = []
        total = self.num_chains * self.num_draws
        if self.divergences:
            found.append(f"{self.divergences} of {total} draws ended in a divergent transition; the posterior may "
                         "be biased there (raise target_accept, or reparameterize, e.g. noncentered)")
        if self.max_tree_depth is not None and "tree_depth" in self.stats:
            saturated = int(np.sum(self.stats["tree_depth"] >= self.max_tree_depth))
            if saturated:
                found.append(f"{saturated} of {total} draws hit the maximum tree depth {self.max_tree_depth}; "
                             "raise max_tree_depth or reparameterize")
        if self.num_draws >= 4:
            bad_rhat, low_ess = [], []
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                for name, v in self.samples.items():
                    if name not in self.potential.shapes:
                        continue
                    rh = np.atleast_1d(diagnostics.r_hat(v)).ravel()
                    es = np.atleast_1d(diagnostics.ess(v, "bulk")).ravel()
                    if np.any(rh > 1.01):
                        bad_rhat.append(f"{name} ({np.nanmax(rh):.3f})")
                    if np.any(es < 100 * self.num_chains):
                        low_ess.append(f"{name} ({np.nanmin(es):.0f})")
            if bad_rhat:
                found.append(f"R-hat above 1.01 for {', '.join(bad_rhat)}: the chains have not mixed")
            if low_ess:
                found.append(f"bulk ESS below 100 per chain for {', '.join(low_ess)}: run longer")
            bfmi = self.e_bfmi()
            if np.any(bfmi < 0.3):
                found.append(f"E-BFMI below 0.3 in chains {np.flatnonzero(bfmi < 0.3).tolist()} "
                             f"({np.round(bfmi, 2).tolist()}): reparameterize")
        return found


# ------------------------------------------------------------------ front-ends


class _MCMC:
    """Shared by NUTS and HMC: the run over chains (together, one at a time, or in an executor)."""

    dense_mass = False
    target_accept = 0.8
    max_tree_depth = None

    def _kernel(self):
        raise NotImplementedError

    def _settings(self, rng_seed, num_warmup, num_samples, init):
        raise NotImplementedError

    def run(self, num_samples, *args, num_warmup=1000, num_chains=4, rng_seed=0, progress=True, executor=None,
            vectorize_chains=True, **kwargs):
        """Warm up and draw ``num_samples`` per chain; returns an ``MCMCResult``."""
        for name, value, low in (("num_samples", num_samples, 1), ("num_warmup", num_warmup, 0),
                                 ("num_chains", num_chains, 1)):
            if isinstance(value, bool) or int(value) != value or value < low:
                raise ValueError(f"{type(self).__name__}.run: {name} must be an int >= {low}, got {value!r}")
        num_samples, num_warmup, num_chains = int(num_samples), int(num_warmup), int(num_chains)
        potential = Potential(self.model, args, kwargs)
        if potential.dim == 0:
            raise ValueError(f"{type(self).__name__}: the model has no continuous latent sites to sample")
        init, inverse_mass = self._initial(potential, num_chains, rng_seed)
        settings = self._settings(rng_seed, num_warmup, num_samples, init)
        if inverse_mass is not None:
            settings["inverse_mass"] = inverse_mass
        if executor is not None:
            one_chain = functools.partial(_run_chain_worker, self.model, tuple(args), dict(kwargs), settings)
            chains = list(range(num_chains))
            parts = run_tasks(one_chain, chains, chains, [rng_seed] * num_chains, executor,
                              caller=f"{type(self).__name__}.run")
        else:
            bar = self._bar(progress, num_chains, num_warmup + num_samples)
            callback = None if bar is None else bar.update_with
            try:
                if vectorize_chains and num_chains > 1 and self._vectorizes(potential, num_chains, init):
                    parts = [run_chains(potential, chains=range(num_chains), callback=callback, **settings)]
                else:
                    parts = [run_chains(potential, chains=[chain], callback=callback, **settings)
                             for chain in range(num_chains)]
            finally:
                if bar is not None:
                    bar.close()
        result = self._collect(potential, parts)
        for problem in result.problems():
            warnings.warn(f"{type(self).__name__}: {problem}", stacklevel=2)
        return result

    def _vectorizes(self, potential, num_chains, init):
        """Try the potential on a batch of chains once (it falls back to a loop, with a warning, if not)."""
        rng = np.random.default_rng(0)
        flat = init if isinstance(init, np.ndarray) and init.ndim == 2 else \
            np.stack([potential.init(rng) for _ in range(min(num_chains, 2))])
        try:
            potential.value_and_grad(flat)
        except Exception:  # noqa: BLE001 - a bad point here is the initialisation's business, not ours
            return potential.vectorized is not False
        return potential.vectorized is not False

    def _initial(self, potential, num_chains, rng_seed):
        """``(init, inverse_mass)``: where the chains start, and the metric the warm-up starts from."""
        if isinstance(self.init, dict) or self.init == "uniform":
            return self.init, None
        if self.init == "laplace":
            return laplace_start(potential, num_chains, rng_seed, type(self).__name__)
        raise ValueError(f"{type(self).__name__}: init must be 'uniform', 'laplace' or a dict of site values, "
                         f"got {self.init!r}")

    def _bar(self, progress, num_runs, per_run):
        if not progress:
            return None
        from tqdm.auto import tqdm  # imported on use: `import ppl` stays light

        bar = tqdm(total=num_runs * per_run, desc=type(self).__name__, mininterval=0.25)
        divergences = {"warmup": 0, "sample": 0}

        def update_with(phase, eps, diverging):
            if phase == "rerun":  # run_chains starts a chain over: one more run's worth of iterations
                bar.total += per_run
                bar.refresh()
                return
            bar.update(1)
            divergences[phase] += diverging
            if bar.n % 20 == 0:
                bar.set_postfix(phase=phase, step_size=f"{eps:.3g}", divergences=divergences[phase], refresh=False)

        bar.update_with = update_with
        return bar

    def _collect(self, potential, parts):
        positions = np.concatenate([p["positions"] for p in parts])
        stats = {name: np.concatenate([p["stats"][name] for p in parts]) for name in parts[0]["stats"]}
        c, n, d = positions.shape
        values = potential.unravel(positions.reshape(c * n, d)) if n else {}
        samples = {name: v.reshape((c, n) + v.shape[1:]) for name, v in values.items()}
        return MCMCResult(samples, stats, positions, np.concatenate([p["step_size"] for p in parts]),
                          np.concatenate([p["inverse_mass"] for p in parts]), potential, self.max_tree_depth)


def laplace_start(potential, num_chains, rng_seed, caller="NUTS"):
    """Initial points drawn from the Laplace approximation N(u*, H^-1), and H^-1 as the first metric.

    u* is the mode of exp(-U) found by ``svi.find_mode`` (L-BFGS, then Newton steps), H the Hessian of U
    there. Chains start dispersed around the mode rather than on it (so R-hat can still see chains that
    disagree), and the first warm-up windows use the posterior's own scales: on a ridge (an intercept and
    slope correlated at 0.9999) an identity metric makes every early tree hit the maximum depth. Where
    no strict mode is found (a funnel's mode is at its neck, or U is unbounded below), this warns and falls
    back to Stan's uniform start and identity metric.
    """
    from .svi import NEWTON_TOL, covariance_root, find_mode

    rng = np.random.Generator(np.random.PCG64(fold_in(rng_seed, "laplace")))
    try:
        mode = find_mode(potential.value_and_grad, potential.init(rng))
    except (NonFiniteError, SupportError) as error:
        return _no_mode(caller, f"{type(error).__name__}: {error}")
    if not mode.positive_definite:
        return _no_mode(caller, "the Hessian there is not positive definite")
    if mode.decrement >= NEWTON_TOL:
        return _no_mode(caller, f"a Newton step would still move it {mode.decrement:.3g} sds")
    try:
        root, _ = covariance_root(mode.hessian)
    except np.linalg.LinAlgError as error:
        return _no_mode(caller, f"its covariance is singular ({error})")
    draws = rng.standard_normal((num_chains, potential.dim))
    return mode.u + draws @ root.T, root @ root.T


def _no_mode(caller, why):
    warnings.warn(f"{caller}: init='laplace' found no strict mode ({why}); the chains start uniformly in "
                  "(-2, 2) with an identity metric instead", stacklevel=5)
    return "uniform", None


class NUTS(_MCMC):
    """The No-U-Turn sampler, multinomial with the generalized U-turn criterion, and Stan's warm-up.

    ``target_accept`` is the dual-averaging target (Stan's adapt_delta);
    ``dense_mass=True`` adapts a full inverse mass matrix (for correlated
    posteriors); ``init`` is "uniform" (Stan's (-2, 2) jitter), a dict of
    site values, or "laplace" (chains start at draws of the Laplace approximation, and warm-up
    from its covariance as the metric: see ``laplace_start``).
    """

    def __init__(self, model, target_accept=0.8, max_tree_depth=10, dense_mass=False, init="uniform"):
        if not 0 < target_accept < 1:
            raise ValueError(f"NUTS: target_accept must lie in (0, 1), got {target_accept!r}")
        if isinstance(max_tree_depth, bool) or int(max_tree_depth) != max_tree_depth or max_tree_depth < 1:
            raise ValueError(f"NUTS: max_tree_depth must be an int >= 1, got {max_tree_depth!r}")
        self.model, self.target_accept, self.max_tree_depth = model, float(target_accept), int(max_tree_depth)
        self.dense_mass, self.init = bool(dense_mass), init

    def _settings(self, rng_seed, num_warmup, num_samples, init):
        return dict(kernel=_NUTSKernel(self.max_tree_depth), rng_seed=rng_seed, num_warmup=num_warmup,
                    num_samples=num_samples, init=init, target_accept=self.target_accept,
                    dense_mass=self.dense_mass, adapt=True)


class HMC(_MCMC):
    """Static Hamiltonian Monte Carlo: ``num_steps`` leapfrog steps of ``step_size`` and a Metropolis
    correction, identity mass; warm-up iterations are discarded, nothing is adapted."""

    def __init__(self, model, step_size, num_steps, init="uniform"):
        if not step_size > 0:
            raise ValueError(f"HMC: step_size must be positive, got {step_size!r}")
        if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 1:
            raise ValueError(f"HMC: num_steps must be an int >= 1, got {num_steps!r}")
        self.model, self.step_size, self.num_steps, self.init = model, float(step_size), int(num_steps), init

    def _settings(self, rng_seed, num_warmup, num_samples, init):
        return dict(kernel=_HMCKernel(self.num_steps), rng_seed=rng_seed, num_warmup=num_warmup,
                    num_samples=num_samples, init=init, step_size=self.step_size, adapt=False)
