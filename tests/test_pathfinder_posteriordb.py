"""Pathfinder, and full-rank ADVI started from it, on every posteriordb regression (issue 16).

Each of the 19 regression posteriors (``posteriordb.REGRESSIONS``) must match Stan's reference: every
parameter within |z| <= 0.3 reference sds of its mean and sd ratio in [0.7, 1.3], at seed 0 and the engines'
defaults (ADVI: 500 steps). The fixes to Pathfinder these posteriors needed are tested first, on the starts
where they went wrong.

A fit within those bounds may still warn: k-hat from 2000 draws is above 0.7 on a few of them (Pathfinder on
nes2000: 0.71, with |z| 0.09 and sd ratios 0.94-1.05; ADVI on kidscore_momhs, kidscore_momiq and
logmesquite_logvolume: 0.72-0.79). Those are false alarms of a cautious check, and the bounds, not the
silence, are what is asserted here; that no fit outside the bounds stays silent is the posteriordb
benchmark's count (``benchmarks/README.md``).

ADVI from a Gaussian start takes ``STARTED_PARTICLES`` = 10 draws per step: with one, the steps' noise moved
kilpisjarvi's sigma 0.75 sds and shrank logearn_interaction's sds to 0.67 (measured; with 10: 0.06 and 0.83).
"""
import warnings

import numpy as np
import pytest
import scipy.stats as st
from scipy.special import logsumexp

from ppl.core import fold_in
from ppl.infer import ADVI
from ppl.infer.diagnostics import pareto_smooth
from ppl.infer.pathfinder import (Pathfinder, PathfinderWarning, gaussian_approximation, lbfgs_path,
                                  mixture_log_q, pool_paths, single_path)
from ppl.infer.potential import potential

posteriordb = pytest.importorskip("ppl.testing.posteriordb")

Z_TOL, SD_BOUNDS = 0.3, (0.7, 1.3)

# ---------------------------------------------------------------- the fixes, where they were needed


def path_start(name, rng_seed, index):
    """The potential of posterior ``name`` and the start of path ``index`` of a run with ``rng_seed``."""
    fn, args, kwargs = posteriordb.model(name)
    pot = potential(fn, *args, **kwargs)
    rng = np.random.default_rng(fold_in(rng_seed, index))
    return pot, np.asarray(pot.init(rng, "uniform"), dtype=float)


def test_lbfgs_does_not_stop_on_a_tiny_decrease_before_the_ridge():
    """earnings-earn_height, seed 1, path 0: a step lowering f by almost nothing came before the step along
    the intercept-slope ridge; stopping there (Stan's tol_rel_obj) left f 20 nats above the mode and the
    intercept (reference -61 290, sd 9 668) at its start, 4.2."""
    pot, x0 = path_start("earnings-earn_height", 1, 0)
    path = lbfgs_path(pot.value_and_grad, x0)
    reference = posteriordb.load("earnings-earn_height").reference["beta[1]"]
    assert abs(path.x[-1][0] - reference["mean"]) / reference["sd"] < 0.05
    assert path.f[-1] < path.f.min() + 1e-6 and path.f[-1] < 13416.0  # the mode: 13 415.85; stopped: 13 436.24


def test_lbfgs_restarts_after_a_trial_step_into_non_finite_density():
    """earnings-log10earn_height from ADVI's Pathfinder start (seed 0): a trial step put log sigma at -319,
    the line search saw +inf and SciPy ended the run at f = 2 314 (the mode's f: 562.37); ADVI then started
    104 sds off. The path must go on from there to the mode."""
    pot, x0 = path_start("earnings-log10earn_height", fold_in(0, "init"), 0)
    path = lbfgs_path(pot.value_and_grad, x0)
    assert path.f[-1] < 562.3671
    assert np.all(np.any(np.diff(path.x, axis=0) != 0, axis=1))  # a failed line search adds no iterate
    reference = posteriordb.load("earnings-log10earn_height").reference
    for i, name in enumerate(("beta[1]", "beta[2]")):
        assert abs(path.x[-1][i] - reference[name]["mean"]) / reference[name]["sd"] < 0.1


@pytest.mark.parametrize("dim, m", [(4, 3), (30, 4)])  # dense (2m >= D) and low-rank (thin QR) forms
def test_log_prob_at_any_point_is_the_gaussians_density(dim, m):
    """``log_prob`` (through ``standardize``, the inverse of ``transform``) against SciPy's density."""
    rng = np.random.default_rng(dim)
    hessian = np.diag(rng.uniform(0.5, 4.0, dim)) + 0.3 * np.ones((dim, dim))
    S = rng.normal(size=(dim, m))
    q = gaussian_approximation(rng.normal(size=dim), rng.normal(size=dim), rng.uniform(0.5, 2.0, dim), S,
                               hessian @ S)
    u = rng.standard_normal((6, dim))
    np.testing.assert_allclose(q.standardize(q.transform(u)), u, rtol=1e-9, atol=1e-9)
    x = q.mean + 3.0 * rng.standard_normal((6, dim))
    np.testing.assert_allclose(q.log_prob(x), st.multivariate_normal(q.mean, q.covariance()).logpdf(x), rtol=1e-9)


def test_pooled_draws_are_weighed_by_the_mixture_of_the_paths_gaussians():
    """Two paths on a Gaussian target: the pool's log weights are log p - log(q1/2 + q2/2), Pareto-smoothed
    (checked against SciPy's densities), not log p - log q_own."""
    mean, cov = np.array([1.0, -2.0, 0.5]), np.array([[2.0, 0.6, 0.0], [0.6, 1.0, 0.3], [0.0, 0.3, 0.5]])
    precision = np.linalg.inv(cov)

    def target(x):
        d = x - mean
        return 0.5 * np.sum(d * (d @ precision), axis=-1), d @ precision

    rng = np.random.default_rng(4)
    paths = [single_path(target, rng.uniform(-2, 2, 3), rng, num_draws=300) for _ in range(2)]
    _, pool, smoothed, _ = pool_paths(paths, 300, np.random.default_rng(0))
    densities = [st.multivariate_normal(p.approximation.mean, p.approximation.covariance()) for p in paths]
    log_mixture = logsumexp([d.logpdf(pool) for d in densities], axis=0) - np.log(2)
    np.testing.assert_allclose(mixture_log_q([p.approximation for p in paths], [0.5, 0.5], pool), log_mixture,
                               rtol=1e-9)
    log_p = st.multivariate_normal(mean, cov).logpdf(pool)
    np.testing.assert_allclose(smoothed, pareto_smooth(log_p - log_mixture)[0], atol=1e-8)


# ---------------------------------------------------------------- every regression, both engines

def assert_matches_reference(result, name):
    comparison = posteriordb.compare(result, posteriordb.load(name))
    assert comparison.ok(Z_TOL, SD_BOUNDS), comparison.table()


def test_every_regression_is_covered():
    assert len(posteriordb.REGRESSIONS) == 19


@pytest.mark.parametrize("name", posteriordb.REGRESSIONS)
def test_multipath_pathfinder_matches_the_reference(name):
    """The default run: 4 paths, 1000 draws, PSIS-weighted moments over the pool."""
    fn, args, kwargs = posteriordb.model(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PathfinderWarning)  # k-hat: see the module docstring
        result = Pathfinder(fn).run(*args, **kwargs)
    assert_matches_reference(result, name)


@pytest.mark.parametrize("name", posteriordb.REGRESSIONS)
def test_fullrank_advi_from_pathfinder_matches_the_reference(name):
    fn, args, kwargs = posteriordb.model(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # k-hat: see the module docstring
        result = ADVI(fn, "fullrank", init="pathfinder").run(500, *args, rng_seed=0, progress=False, **kwargs)
    assert result.diagnostics["init"] == "pathfinder" and not result.diverged
    assert_matches_reference(result, name)


# ---------------------------------------------------------------- eight schools and the mixture: right or flagged

HARD = ["eight_schools-eight_schools_noncentered", "low_dim_gauss_mix-low_dim_gauss_mix"]


def assert_within_or_flagged(result, name, caught):
    """Within the bounds, or flagged: k-hat above 0.7, or the moment check's warning that the importance-weighted
    moments contradict the approximation's (full-rank ADVI from Pathfinder on eight schools after 500 steps:
    tau 0.38 sds low with sd ratio 0.64, k-hat 0.55, and that warning)."""
    comparison = posteriordb.compare(result, posteriordb.load(name))
    if not comparison.ok(Z_TOL, SD_BOUNDS):
        messages = [str(w.message) for w in caught]
        assert result.khat > 0.7 or any("importance-weighted moments disagree" in m for m in messages), \
            comparison.table()
        assert any("k-hat" in m for m in messages), messages


@pytest.mark.parametrize("name", HARD)
def test_pathfinder_on_eight_schools_and_the_mixture_is_right_or_flagged(name):
    fn, args, kwargs = posteriordb.model(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = Pathfinder(fn).run(*args, **kwargs)
    assert_within_or_flagged(result, name, caught)


@pytest.mark.parametrize("name", HARD)
def test_advi_from_pathfinder_on_eight_schools_and_the_mixture_is_right_or_flagged(name):
    fn, args, kwargs = posteriordb.model(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = ADVI(fn, "fullrank", init="pathfinder").run(500, *args, rng_seed=0, progress=False, **kwargs)
    assert_within_or_flagged(result, name, caught)
