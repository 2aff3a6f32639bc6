"""Pathfinder: variational inference along a quasi-Newton path (Zhang, Carpenter, Gelman & Vehtari, JMLR 2022).

From a random start, L-BFGS climbs the log density in the unconstrained
space. Every accepted iterate x_l, with its gradient g_l of the negative log
density f = -log p, defines a Gaussian from the L-BFGS estimate H_l of the
inverse Hessian (the paper's Algorithms 2-3):

    q_l = Normal(x_l - H_l g_l, H_l),   H_l = diag(alpha) + beta gamma beta^T,

where ``alpha`` is a diagonal estimate (Gilbert & Lemarechal's update) and
``beta`` (D x 2m), ``gamma`` (2m x 2m) are the compact form of the BFGS
update from the last m accepted pairs (s, y) = (x_l - x_{l-1}, g_l - g_{l-1})
(Byrd, Nocedal & Schnabel 1994). A pair with too little curvature
(s^T y <= eps ||y||^2) is skipped. Draws come from a thin QR of
diag(alpha)^{-1/2} beta (Algorithm 4), so no D x D matrix is formed unless
2m >= D. The iterate whose Gaussian has the largest Monte Carlo ELBO
E_q[log p - log q] is the path's answer.

Several paths from independent starts are pooled with Pareto-smoothed
importance weights and resampled without replacement (the paper's
Algorithm 5); the weights are p / the equal mixture of the paths' Gaussians,
which the pool is a sample of, where the paper uses p / the draw's own path's
Gaussian (``pool_paths`` says why). The Pareto k-hat of those weights says whether
the Gaussians can stand in for the posterior: above 0.7 they cannot, and
``run`` warns.

The core works on any ``value_and_grad(x) -> (f, g)`` (f the negative log
density of a flat vector; a batch (C, D) gives (C,) and (C, D)):
``lbfgs_path``, ``path_approximations``, ``single_path``. ``Pathfinder`` wires it
to a model through ``ppl.infer.potential``.
"""
import warnings
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..core import fold_in
from .blas import one_blas_thread
from .diagnostics import pareto_smooth

_EPS = np.finfo(float).eps
_LOG_2PI = np.log(2.0 * np.pi)
_CHUNK_ROWS = 1024  # rows per batched density evaluation: bounds memory at (rows x data) per call


class PathfinderWarning(UserWarning):
    """Pathfinder's answer is not to be trusted as it stands (large Pareto k-hat, failed paths)."""


# ---------------------------------------------------------------- the L-BFGS path


class _CountingObjective:
    """``value_and_grad`` for one point as SciPy wants it: non-finite values become +inf (a step to reject),
    every call is counted, and the last evaluations are kept so accepted iterates need no re-evaluation."""

    def __init__(self, value_and_grad):
        self.value_and_grad, self.num_evals, self.recent = value_and_grad, 0, {}
        self.last_nonfinite = -1  # the evaluation count at the last non-finite value

    def __call__(self, x):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # a wild trial step: rejected below
            f, g = self.value_and_grad(x)
        self.num_evals += 1
        f, g = float(f), np.array(g, dtype=float)
        if not (np.isfinite(f) and np.all(np.isfinite(g))):
            f, g = np.inf, np.zeros_like(x)
            self.last_nonfinite = self.num_evals
        if len(self.recent) > 64:
            self.recent.clear()
        self.recent[x.tobytes()] = (f, g)
        return f, g

    def at(self, x):
        hit = self.recent.get(x.tobytes())
        return hit if hit is not None else self(x)


@dataclass
class LBFGSPath:
    """The accepted iterates ``x`` (L+1, D) of an L-BFGS run from ``x[0]``, their values ``f`` and gradients ``g``."""

    x: np.ndarray
    f: np.ndarray
    g: np.ndarray
    num_evals: int
    message: str


_GTOL = 1e-8  # the gradient (max norm) at which L-BFGS has converged: Stan's Pathfinder default
_STALL_RTOL = 1e4 * _EPS  # Stan's tol_rel_obj, applied to the decrease of f over history_size iterations


def lbfgs_path(value_and_grad, x0, history_size=6, max_iters=1000):
    """Run SciPy's L-BFGS-B (no bounds) from ``x0`` and record every accepted iterate with its gradient.

    The path should reach the mode's neighbourhood, where the curvature pairs
    describe the posterior. It stops when the gradient is below 1e-8, when f
    went down by less than 1e4 eps (relative) over the last ``history_size``
    iterations, or after ``max_iters`` iterations. Two ways it stopped short
    before, and what is done:

    - Stan's tol_rel_obj on one step: on a ridge a step can lower f by almost
      nothing just before L-BFGS learns the ridge's direction and moves along
      it. On earnings-earn_height (intercept sd 9 668, correlation -0.9997
      with the slope) every path of a seed stopped there, 20 nats above the
      mode with the intercept where it started; on kilpisjarvi 2 nats, 2 sds
      off (measured). Hence the decrease over a memory's worth of steps.
    - A trial step into a region where the density is not finite (+inf to the
      line search) makes the line search's cubic interpolation NaN, and SciPy
      ends the run at the last iterate however far from the mode
      (earnings-log10earn_height: log sigma tried at -319 from f = 2 314, the
      mode's f being 562; mesquite: 5 nats above the mode, gradient 1.4). A
      run that SciPy ends after such a trial is followed by another from its
      last iterate, with a fresh memory, if it moved at all.

    A step of length zero (a failed line search) is not an iterate.
    """
    from scipy.optimize import minimize

    objective = _CountingObjective(value_and_grad)
    x0 = np.array(x0, dtype=float)
    f0, g0 = objective(x0)
    if not np.isfinite(f0):
        raise FloatingPointError("Pathfinder: the log density is not finite at the initial point")
    xs, fs, gs = [x0], [f0], [g0]
    run = {"iterations": 0, "moved_at": objective.num_evals, "stalled": False}

    def record(xk):
        run["iterations"] += 1
        if not np.array_equal(xk, xs[-1]):
            f, g = objective.at(xk)
            xs.append(np.array(xk)), fs.append(f), gs.append(g)
            run["moved_at"] = objective.num_evals
        if len(fs) > history_size and fs[-1 - history_size] - fs[-1] <= _STALL_RTOL * max(abs(fs[-1]), 1.0):
            run["stalled"] = True
            raise StopIteration  # SciPy >= 1.11 ends the run; older ones raise it through minimize

    message = ""
    with one_blas_thread():
        while run["iterations"] < max_iters and not run["stalled"]:
            first = len(xs)
            try:
                fit = minimize(objective, xs[-1], jac=True, method="L-BFGS-B", callback=record,
                               options={"maxcor": history_size, "maxiter": max_iters - run["iterations"],
                                        "ftol": 0.0, "gtol": _GTOL})
                message = str(fit.message)
            except StopIteration:
                pass
            if run["stalled"]:
                message = f"f went down by less than {_STALL_RTOL:.1e} (relative) in {history_size} iterations"
            if len(xs) == first or objective.last_nonfinite <= run["moved_at"]:
                break
    return LBFGSPath(np.array(xs), np.array(fs), np.array(gs), objective.num_evals, message)


# ---------------------------------------------------------------- the inverse Hessian and its Gaussian


def update_diagonal(alpha, s, y):
    """The diagonal inverse-Hessian estimate after the pair (s, y) (the paper's Algorithm 3; Gilbert &
    Lemarechal 1989, eq. 4.9): the diagonal of the BFGS update of the Hessian estimate diag(1/alpha) rescaled
    by a / b, with a = y^T diag(alpha) y, b = y^T s, c = s^T diag(1/alpha) s:

        1 / alpha_new = a / (b alpha) + y^2 / b - a s^2 / (b c alpha^2).
    """
    a, b, c = y @ (alpha * y), y @ s, s @ (s / alpha)
    return 1.0 / (a / (b * alpha) + y**2 / b - a * s**2 / (b * c * alpha**2))


def inverse_hessian_factors(alpha, S, Y):
    """``(beta, gamma)`` with H = diag(alpha) + beta gamma beta^T the L-BFGS inverse Hessian of the pairs
    (columns of S and Y, oldest first) from H0 = diag(alpha) (Byrd, Nocedal & Schnabel 1994; the paper's II.2):

        beta = [diag(alpha) Y, S],  gamma = [[0, -R^-1], [-R^-T, R^-T (E + Y^T diag(alpha) Y) R^-1]],

    R the upper triangle of S^T Y and E its diagonal.
    """
    m = S.shape[1]
    StY = S.T @ Y
    R_inv = np.linalg.inv(np.triu(StY))  # m <= history_size: a general inverse costs nothing here
    inner = R_inv.T @ (np.diag(np.diag(StY)) + Y.T @ (alpha[:, None] * Y)) @ R_inv
    beta = np.hstack([alpha[:, None] * Y, S])
    gamma = np.block([[np.zeros((m, m)), -R_inv], [-R_inv.T, inner]])
    return beta, gamma


@dataclass
class GaussianApproximation:
    """Normal(mean, diag(alpha) + beta gamma beta^T) in the unconstrained space, with its square root.

    Dense form (2m >= D): ``root`` is the Cholesky factor of the covariance.
    Low-rank form: with the thin QR Q R = diag(alpha)^{-1/2} beta and the
    Cholesky factor L of I + R gamma R^T, the map
    u -> mean + diag(alpha)^{1/2} (u + Q (L - I) Q^T u) takes N(0, I) draws to
    this Gaussian in O(D m) per draw; ``root`` is then L and ``q`` is Q.
    """

    mean: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    gamma: np.ndarray
    root: np.ndarray
    q: np.ndarray = None
    log_det: float = 0.0  # log det of the covariance

    @property
    def dense(self):
        return self.q is None

    def covariance(self):
        """The D x D covariance (for inspection and tests; sampling never forms it)."""
        return np.diag(self.alpha) + self.beta @ self.gamma @ self.beta.T

    def transform(self, u):
        """Standard normal draws ``u`` (n, D) to draws of this Gaussian (n, D)."""
        if self.dense:
            return self.mean + u @ self.root.T
        k = self.root.shape[0]
        low_rank = ((u @ self.q) @ (self.root - np.eye(k)).T) @ self.q.T
        return self.mean + np.sqrt(self.alpha) * (u + low_rank)

    def log_prob_standard(self, u):
        """log q of ``transform(u)``, from the standard normal draws alone."""
        return -0.5 * (self.log_det + np.sum(u * u, axis=-1) + u.shape[-1] * _LOG_2PI)

    def standardize(self, x):
        """The inverse of ``transform``: the standard normal draws ``u`` (n, D) that give the points ``x`` (n, D).

        Low-rank form: Q has orthonormal columns, so I + Q (L^-1 - I) Q^T
        inverts I + Q (L - I) Q^T, again in O(D m) per point.
        """
        from scipy.linalg import solve_triangular

        if self.dense:
            return solve_triangular(self.root, (x - self.mean).T, lower=True).T
        k = self.root.shape[0]
        z = (x - self.mean) / np.sqrt(self.alpha)
        root_inv = solve_triangular(self.root, np.eye(k), lower=True)
        return z + ((z @ self.q) @ (root_inv - np.eye(k)).T) @ self.q.T

    def log_prob(self, x):
        """log q at any points ``x`` (n, D)."""
        return self.log_prob_standard(self.standardize(x))

    def sample(self, rng, n):
        """``(draws (n, D), log q (n,))``."""
        u = rng.standard_normal((n, len(self.mean)))
        return self.transform(u), self.log_prob_standard(u)


def gaussian_approximation(x, g, alpha, S, Y):
    """The Gaussian of one iterate: mean x - H g (a Newton step from x), covariance H (the paper's Algorithm 4).

    Raises ``np.linalg.LinAlgError`` when the estimate is not positive definite
    in floating point (the caller skips that iterate).
    """
    beta, gamma = inverse_hessian_factors(alpha, S, Y)
    mean = x - (alpha * g + beta @ (gamma @ (beta.T @ g)))
    dim, rank = len(x), beta.shape[1]
    if rank >= dim:
        root = np.linalg.cholesky(np.diag(alpha) + beta @ gamma @ beta.T)
        return GaussianApproximation(mean, alpha, beta, gamma, root, None, 2.0 * np.sum(np.log(np.diag(root))))
    q, r = np.linalg.qr(beta / np.sqrt(alpha)[:, None]) if rank else (np.zeros((dim, 0)), np.zeros((0, 0)))
    root = np.linalg.cholesky(np.eye(rank) + r @ gamma @ r.T)
    log_det = np.sum(np.log(alpha)) + 2.0 * np.sum(np.log(np.diag(root)))
    return GaussianApproximation(mean, alpha, beta, gamma, root, q, log_det)


def path_approximations(path, history_size=6):
    """The Gaussian of every iterate l = 1..L of ``path`` (None where the estimate is not positive definite).

    The history keeps the last ``history_size`` pairs that pass the curvature
    test s^T y > eps ||y||^2; a failing pair changes neither the history nor
    the diagonal (the paper's Algorithm 3).
    """
    dim = path.x.shape[1]
    alpha = np.ones(dim)
    pairs = deque(maxlen=history_size)
    approximations = []
    for l in range(1, len(path.x)):
        s, y = path.x[l] - path.x[l - 1], path.g[l] - path.g[l - 1]
        if s @ y > _EPS * (y @ y):
            alpha = update_diagonal(alpha, s, y)
            pairs.append((s, y))
        S = np.array([p[0] for p in pairs]).T.reshape(dim, len(pairs))
        Y = np.array([p[1] for p in pairs]).T.reshape(dim, len(pairs))
        try:
            with np.errstate(all="raise"):
                approximations.append(gaussian_approximation(path.x[l], path.g[l], alpha, S, Y))
        except (np.linalg.LinAlgError, FloatingPointError):
            approximations.append(None)
    return approximations


# ---------------------------------------------------------------- one path


def log_density(value_and_grad, x):
    """log p at the rows of ``x`` (n, D), batched through ``value_and_grad`` in chunks; NaN becomes -inf."""
    pieces = [np.asarray(value_and_grad(x[i:i + _CHUNK_ROWS])[0], dtype=float).reshape(-1)
              for i in range(0, len(x), _CHUNK_ROWS)]
    log_p = -np.concatenate(pieces) if pieces else np.zeros(0)
    return np.where(np.isnan(log_p), -np.inf, log_p)


@dataclass
class PathResult:
    """One Pathfinder path: its best Gaussian, that Gaussian's ``num_draws`` draws with log p and log q, the
    ELBO of every iterate (-inf where it failed) and which iterate won (``iteration``, 1-based along the path;
    0 means the path failed)."""

    approximation: GaussianApproximation
    draws: np.ndarray
    log_p: np.ndarray
    log_q: np.ndarray
    elbo: float
    iteration: int
    elbos: np.ndarray
    num_evals: int
    lbfgs: LBFGSPath = field(repr=False)

    @property
    def failed(self):
        return self.iteration == 0


def _elbos(value_and_grad, approximations, rng, num_elbo_draws, dim):
    """Monte Carlo ELBO of each Gaussian with ``num_elbo_draws`` draws, all iterates in one batched evaluation.

    Every iterate draws its normals even when its Gaussian failed, so the
    random stream does not depend on which iterates fail.
    """
    u = rng.standard_normal((len(approximations), num_elbo_draws, dim))
    ok = [l for l, a in enumerate(approximations) if a is not None]
    elbos = np.full(len(approximations), -np.inf)
    if not ok:
        return elbos, 0
    draws = np.concatenate([approximations[l].transform(u[l]) for l in ok])
    log_q = np.concatenate([approximations[l].log_prob_standard(u[l]) for l in ok])
    with np.errstate(invalid="ignore", over="ignore"):
        ratios = (log_density(value_and_grad, draws) - log_q).reshape(len(ok), num_elbo_draws)
        elbos[ok] = np.mean(ratios, axis=1)
    elbos[~np.isfinite(elbos)] = -np.inf
    return elbos, len(draws)


def single_path(value_and_grad, x0, rng, num_draws=1000, history_size=6, max_iters=1000, num_elbo_draws=25):
    """One Pathfinder path from ``x0`` (the paper's Algorithm 1): L-BFGS, a Gaussian per iterate, the best by
    ELBO, and ``num_draws`` draws from it. ``rng`` (a ``numpy.random.Generator``) drives every draw."""
    path = lbfgs_path(value_and_grad, x0, history_size, max_iters)
    dim = path.x.shape[1]
    approximations = path_approximations(path, history_size)
    elbos, num_elbo_evals = _elbos(value_and_grad, approximations, rng, num_elbo_draws, dim)
    num_evals = path.num_evals + num_elbo_evals
    if not np.any(np.isfinite(elbos)):
        empty = np.zeros((0, dim))
        return PathResult(None, empty, np.zeros(0), np.zeros(0), -np.inf, 0, elbos, num_evals, path)
    best = int(np.argmax(elbos))
    draws, log_q = approximations[best].sample(rng, num_draws)
    with np.errstate(over="ignore", invalid="ignore"):  # a draw far in a tail scores -inf: weight zero
        log_p = log_density(value_and_grad, draws)
    return PathResult(approximations[best], draws, log_p, log_q, float(elbos[best]), best + 1, elbos,
                      num_evals + num_draws, path)


# ---------------------------------------------------------------- pooling paths


def psis_resample(log_weights, n, rng):
    """Indices of ``n`` draws resampled in proportion to the Pareto-smoothed weights, without replacement
    (the paper's Algorithm 5), and the smoothed normalized log weights and k-hat.

    When fewer than ``n`` draws carry weight, the rest are drawn with
    replacement (a degenerate pool; k-hat says so).
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        smoothed, khat = pareto_smooth(log_weights)
    weights = np.exp(smoothed)
    weights /= weights.sum()
    positive = int(np.count_nonzero(weights))
    if positive >= n:
        return rng.choice(len(weights), size=n, replace=False, p=weights), smoothed, float(khat)
    first = np.flatnonzero(weights)
    rest = rng.choice(len(weights), size=n - positive, replace=True, p=weights)
    return np.concatenate([first[rng.permutation(positive)], rest]), smoothed, float(khat)


def mixture_log_q(approximations, shares, x):
    """log of the mixture sum_k shares_k q_k (shares summing to 1) at the points ``x`` (n, D)."""
    from scipy.special import logsumexp

    log_q = np.stack([a.log_prob(x) for a in approximations])
    return logsumexp(log_q, axis=0, b=np.asarray(shares, dtype=float)[:, None])


def pool_paths(paths, num_samples, rng):
    """Pool the paths' draws and PSIS-resample ``num_samples`` of them; one path is kept as it is.

    The pool is a sample of the mixture of the paths' Gaussians, each in
    proportion to its number of draws, and each draw is weighed by
    p / that mixture (the balance heuristic of multiple importance sampling:
    Veach & Guibas 1995; Elvira, Martino, Luengo & Bugallo 2019), not by
    p / its own path's Gaussian as the paper's Algorithm 5 does. Both are
    consistent, but with the paper's weights one path slightly narrower than
    the posterior gives the pool its heavy tail: on earnings-logearn_height four
    Gaussians whose own log weights vary by sd 0.08-0.23 (own k-hat 0.21-0.62)
    pooled to k-hat 1.05; the mixture weights give 0.16 (measured, seed 0).

    Returns ``(draws (num_samples, D), pool (N, D), smoothed log weights (N,), k-hat)``.
    """
    alive = [p for p in paths if not p.failed]
    pool = np.concatenate([p.draws for p in alive])
    log_p = np.concatenate([p.log_p for p in alive])
    if len(alive) == 1:
        log_w = log_p - alive[0].log_q
    else:
        shares = np.array([len(p.draws) for p in alive]) / len(pool)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            log_w = log_p - mixture_log_q([p.approximation for p in alive], shares, pool)
    if not np.any(np.isfinite(log_w)):
        raise FloatingPointError("Pathfinder: the log density is -inf or NaN at every draw of every path")
    if len(paths) == 1:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            smoothed, khat = pareto_smooth(log_w)
        return pool[:num_samples], pool, smoothed, float(khat)
    index, smoothed, khat = psis_resample(log_w, num_samples, rng)
    return pool[index], pool, smoothed, khat


# ---------------------------------------------------------------- the model front-end


@dataclass
class PathfinderResult:
    """Pathfinder's approximate posterior.

    ``draws`` (site -> (num_samples, *shape)) are in the model's own space
    (``unconstrained`` holds the same draws as flat unconstrained vectors);
    ``mean`` and ``std`` are the Pareto-smoothed importance-weighted
    expectations over all the paths' draws (``pool``), which correct the
    Gaussians where k-hat says the weights can be trusted. Per path: ``elbo`` of the chosen
    Gaussian, ``iterations`` (which L-BFGS iterate it came from) and
    ``num_grad_evals`` (every evaluation of the log density and its gradient:
    the L-BFGS run, the ELBO draws and the returned draws). ``khat`` is the
    Pareto k-hat of the importance weights p / q over the pooled draws (q the
    mixture of the paths' Gaussians; one path: its Gaussian): below
    0.5 good, 0.5-0.7 usable, above 0.7 the approximation is not to be trusted.
    """

    draws: dict
    unconstrained: np.ndarray
    elbo: np.ndarray
    khat: float
    iterations: np.ndarray
    num_grad_evals: np.ndarray
    paths: list = field(repr=False)
    unravel: object = field(repr=False)
    pool: np.ndarray = field(repr=False)
    pool_log_weights: np.ndarray = field(repr=False)
    mean: dict = field(init=False)
    std: dict = field(init=False)

    def __post_init__(self):
        # Self-normalized PSIS expectations over the whole pool: they correct a Gaussian's bias, which
        # resampling without replacement cannot when one path holds nearly all the weight.
        weights = np.exp(self.pool_log_weights - np.max(self.pool_log_weights))
        weights /= weights.sum()
        values = self.unravel(self.pool)
        self.mean, self.std = {}, {}
        for name, v in values.items():
            mean = np.tensordot(weights, v, axes=(0, 0))
            self.mean[name] = mean
            self.std[name] = np.sqrt(np.maximum(np.tensordot(weights, (v - mean) ** 2, axes=(0, 0)), 0.0))

    @property
    def num_paths(self):
        return len(self.paths)

    def sample(self, n, rng_seed=0):
        """``n`` draws (site -> (n, *shape)), model space: fresh from the Gaussian for one path, else a PSIS
        resample of the pooled draws (without replacement up to the pool's size)."""
        rng = np.random.default_rng(fold_in(rng_seed, "pathfinder.sample"))
        alive = [p for p in self.paths if not p.failed]
        if len(self.paths) == 1:
            flat, _ = alive[0].approximation.sample(rng, n)
        else:
            weights = np.exp(self.pool_log_weights)
            weights /= weights.sum()
            replace = n > np.count_nonzero(weights)
            flat = self.pool[rng.choice(len(self.pool), size=n, replace=replace, p=weights)]
        return self.unravel(flat)


@dataclass(frozen=True)
class _Settings:
    num_samples: int
    history_size: int
    max_iters: int
    num_elbo_draws: int
    init: object


def _run_path(potential, settings, rng_seed, index):
    """Path ``index`` of a run: its start and every draw from the stream ``fold_in(rng_seed, index)``."""
    rng = np.random.default_rng(fold_in(rng_seed, index))
    x0 = np.asarray(potential.init(rng, settings.init), dtype=float).reshape(potential.dim)
    return single_path(potential.value_and_grad, x0, rng, settings.num_samples, settings.history_size,
                       settings.max_iters, settings.num_elbo_draws)


def _run_path_in_worker(model, args, kwargs, settings, rng_seed, index):
    """An executor's task: rebuild the potential in the worker, run one path (module level, so it pickles)."""
    from .potential import potential

    return _run_path(potential(model, *args, **kwargs), settings, rng_seed, index)


class Pathfinder:
    """Pathfinder variational inference (Zhang et al. 2022): ``num_paths`` L-BFGS paths, the best-ELBO Gaussian
    of each, pooled by Pareto-smoothed importance resampling.

    ``init``: "uniform" (each path starts uniform in (-2, 2) in the
    unconstrained space) or a dict of site values to start from.
    ``history_size`` is the L-BFGS memory (J in the paper), ``max_iters`` its
    iteration cap (L), ``num_elbo_draws`` the draws per ELBO estimate (K).
    """

    def __init__(self, model, num_paths=4, history_size=6, max_iters=1000, num_elbo_draws=25, init="uniform"):
        for name, value, low in (("num_paths", num_paths, 1), ("history_size", history_size, 1),
                                 ("max_iters", max_iters, 1), ("num_elbo_draws", num_elbo_draws, 1)):
            if not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"Pathfinder: {name} must be an integer >= {low}, got {value!r}")
        if not (init == "uniform" or isinstance(init, dict)):
            raise ValueError(f"Pathfinder: init must be 'uniform' or a dict of site values, got {init!r}")
        self.model, self.num_paths, self.history_size = model, int(num_paths), int(history_size)
        self.max_iters, self.num_elbo_draws, self.init = int(max_iters), int(num_elbo_draws), init

    def run(self, *args, num_samples=1000, rng_seed=0, executor=None, **kwargs):
        """Fit and draw ``num_samples`` approximate posterior draws; ``executor`` (a
        ``concurrent.futures.Executor``) runs the paths in its workers with the same numbers."""
        from .potential import potential as make_potential

        if not isinstance(num_samples, (int, np.integer)) or num_samples < 25:
            raise ValueError(f"Pathfinder.run: num_samples must be an integer >= 25 (the Pareto k-hat needs a "
                             f"tail of at least 5 draws), got {num_samples!r}")
        settings = _Settings(int(num_samples), self.history_size, self.max_iters, self.num_elbo_draws, self.init)
        potential = make_potential(self.model, *args, **kwargs)
        if executor is None:
            paths = [_run_path(potential, settings, rng_seed, i) for i in range(self.num_paths)]
        else:
            futures = [executor.submit(_run_path_in_worker, self.model, args, kwargs, settings, rng_seed, i)
                       for i in range(self.num_paths)]
            paths = [f.result() for f in futures]
        failed = [i for i, p in enumerate(paths) if p.failed]
        if len(failed) == len(paths):
            raise FloatingPointError("Pathfinder: every path failed (no iterate gave a finite ELBO); "
                                     f"L-BFGS said: {paths[0].lbfgs.message}")
        if failed:
            warnings.warn(f"Pathfinder: paths {failed} failed (no finite ELBO) and are left out of the pool",
                          PathfinderWarning, stacklevel=2)
        rng = np.random.default_rng(fold_in(rng_seed, "pathfinder.resample"))
        flat, pool, log_w, khat = pool_paths(paths, settings.num_samples, rng)
        if khat > 0.7:
            warnings.warn(f"Pathfinder: Pareto k-hat = {khat:.2f} > 0.7: the Gaussian approximations are far "
                          "from the posterior; do not trust these draws (run NUTS)", PathfinderWarning,
                          stacklevel=2)
        return PathfinderResult(
            draws=potential.unravel(flat), unconstrained=flat,
            elbo=np.array([p.elbo for p in paths]), khat=khat,
            iterations=np.array([p.iteration for p in paths]),
            num_grad_evals=np.array([p.num_evals for p in paths]),
            paths=paths, unravel=potential.unravel, pool=pool, pool_log_weights=log_w)
