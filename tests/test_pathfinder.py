"""Pathfinder: the L-BFGS inverse-Hessian algebra against its recursion, the Gaussians against exact targets,
the model front-end against conjugate posteriors, and bit-for-bit reproducibility (posteriordb:
test_pathfinder_posteriordb.py)."""
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hst

import ppl
import ppl.distributions as dist
from ppl.infer.pathfinder import (Pathfinder, PathfinderWarning, gaussian_approximation, inverse_hessian_factors,
                                  lbfgs_path, path_approximations, pool_paths, single_path, update_diagonal)

# ---------------------------------------------------------------- hand-written targets


def gaussian_target(mean, cov):
    """value_and_grad of f(x) = (x - m)^T P (x - m) / 2, batched over rows like a potential."""
    precision = np.linalg.inv(cov)

    def value_and_grad(x):
        d = x - mean
        pd = d @ precision
        return 0.5 * np.sum(d * pd, axis=-1), pd

    return value_and_grad


def banana_target(b=0.1):
    """x1 ~ N(0, 10^2), x2 | x1 ~ N(b x1^2 - 100 b, 1): a curved ridge no Gaussian fits."""

    def value_and_grad(x):
        x1, x2 = x[..., 0], x[..., 1]
        r = x2 - b * x1**2 + 100 * b
        return 0.5 * (x1**2 / 100 + r**2), np.stack([x1 / 100 - 2 * b * x1 * r, r], axis=-1)

    return value_and_grad


def kl_gaussians(mean_q, cov_q, mean_p, cov_p):
    """KL(q || p) between two multivariate normals."""
    precision = np.linalg.inv(cov_p)
    d = mean_p - mean_q
    return 0.5 * (np.trace(precision @ cov_q) + d @ precision @ d - len(d)
                  + np.linalg.slogdet(cov_p)[1] - np.linalg.slogdet(cov_q)[1])


def correlated(dim, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(dim, dim))
    return 3.0 * rng.normal(size=dim), a @ a.T + 0.5 * np.eye(dim)


# ---------------------------------------------------------------- the algebra


@settings(max_examples=15)
@given(hst.integers(2, 8), hst.integers(1, 6), hst.integers(0, 2**16))
def test_compact_factors_equal_the_lbfgs_recursion(dim, m, seed):
    """diag(alpha) + beta gamma beta^T is m BFGS inverse updates of H0 = diag(alpha), oldest pair first:
    H <- (I - rho s y^T) H (I - rho y s^T) + rho s s^T with rho = 1 / y^T s."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(dim, dim))
    hessian = a @ a.T + np.eye(dim)
    S = rng.normal(size=(dim, m))
    Y = hessian @ S  # secant pairs of a quadratic: y^T s > 0
    alpha = rng.uniform(0.5, 2.0, dim)
    h = np.diag(alpha)
    for s, y in zip(S.T, Y.T):
        rho = 1.0 / (y @ s)
        v = np.eye(dim) - rho * np.outer(y, s)
        h = v.T @ h @ v + rho * np.outer(s, s)
    beta, gamma = inverse_hessian_factors(alpha, S, Y)
    np.testing.assert_allclose(np.diag(alpha) + beta @ gamma @ beta.T, h, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(h @ Y[:, -1], S[:, -1], rtol=1e-7, atol=1e-9)  # the secant condition


@settings(max_examples=15)
@given(hst.integers(2, 10), hst.integers(0, 2**16))
def test_diagonal_update_is_the_diagonal_of_a_rescaled_bfgs_update(dim, seed):
    """1/alpha_new is diag of the BFGS Hessian update of B = (y^T A y / y^T s) diag(1/alpha) (Gilbert-Lemarechal)."""
    rng = np.random.default_rng(seed)
    alpha, s = rng.uniform(0.3, 3.0, dim), rng.normal(size=dim)
    y = s * rng.uniform(0.2, 5.0, dim)  # a diagonal positive Hessian: y^T s > 0
    b = (y @ (alpha * y)) / (y @ s) * np.diag(1.0 / alpha)
    updated = b - np.outer(b @ s, b @ s) / (s @ b @ s) + np.outer(y, y) / (y @ s)
    np.testing.assert_allclose(update_diagonal(alpha, s, y), 1.0 / np.diag(updated), rtol=1e-10)


@pytest.mark.parametrize("dim, m", [(4, 3), (30, 4)])  # dense (2m >= D) and low-rank (thin QR) forms
def test_gaussian_sampler_has_the_covariance_and_density_it_claims(dim, m):
    rng = np.random.default_rng(dim)
    hessian = np.diag(rng.uniform(0.5, 4.0, dim)) + 0.3 * np.ones((dim, dim))
    S = rng.normal(size=(dim, m))
    x, g = rng.normal(size=dim), rng.normal(size=dim)
    q = gaussian_approximation(x, g, rng.uniform(0.5, 2.0, dim), S, hessian @ S)
    assert q.dense == (2 * m >= dim)
    cov = q.covariance()
    root = (q.transform(np.eye(dim)) - q.mean).T  # the linear map u -> draw
    np.testing.assert_allclose(root @ root.T, cov, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(q.mean, x - cov @ g, rtol=1e-9, atol=1e-10)  # a Newton step from x
    u = rng.standard_normal((5, dim))
    np.testing.assert_allclose(q.log_prob_standard(u), st.multivariate_normal(q.mean, cov).logpdf(q.transform(u)),
                               rtol=1e-9)


# ---------------------------------------------------------------- the core on hand-written targets


def test_correlated_gaussian_target_is_recovered():
    """On a Gaussian target the path's Gaussians converge to it: one path lands within a small KL, and the
    PSIS-resampled pool of four paths has the target's mean and covariance up to Monte Carlo error."""
    mean, cov = correlated(5, 1)
    target = gaussian_target(mean, cov)
    rng = np.random.default_rng(0)
    paths = [single_path(target, rng.uniform(-2, 2, 5), rng, num_draws=2000) for _ in range(4)]
    best = paths[0].approximation
    assert kl_gaussians(best.mean, best.covariance(), mean, cov) < 0.05
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(best.mean - mean) / sd < 0.05)
    draws, _, _, khat = pool_paths(paths, 2000, rng)
    assert khat < 0.5
    assert np.all(np.abs(draws.mean(0) - mean) / sd < 0.1)
    np.testing.assert_allclose(np.cov(draws.T) / np.outer(sd, sd), cov / np.outer(sd, sd), atol=0.1)
    # the chosen Gaussian has the best ELBO of its path
    assert all(p.elbo == p.elbos.max() and p.elbos[p.iteration - 1] == p.elbo for p in paths)


def test_fifty_dimensional_gaussian_uses_the_low_rank_form():
    """D = 50 with history 6: draws come from the thin-QR form; a diagonal-plus-rank-2 target is captured."""
    rng = np.random.default_rng(1)
    v = rng.normal(size=(50, 2))
    mean, cov = rng.normal(size=50), 0.5 * np.eye(50) + v @ v.T
    result = single_path(gaussian_target(mean, cov), rng.uniform(-2, 2, 50), np.random.default_rng(0), 1000)
    q = result.approximation
    assert not q.dense
    assert kl_gaussians(q.mean, q.covariance(), mean, cov) < 0.2
    assert pool_paths([result], 1000, None)[3] < 0.5


def test_khat_flags_a_banana():
    """A curved ridge: every Gaussian misses it, and k-hat says so; on a Gaussian target it stays low.

    k-hat from 1000 draws is itself noisy, so the claim is about the median of six paths."""
    rng = np.random.default_rng(0)
    mean, cov = correlated(2, 0)
    for target, above in ((banana_target(), True), (gaussian_target(mean, cov), False)):
        khats = [pool_paths([single_path(target, rng.uniform(-2, 2, 2), rng, 1000)], 1000, None)[3]
                 for _ in range(6)]
        assert (np.median(khats) > 0.7) == above


def test_curvature_test_skips_pairs_without_curvature():
    """A flat direction (zero curvature) gives y = 0 along it; the history and diagonal must stay finite."""
    def value_and_grad(x):  # f depends on x0 only: every pair's y is zero in x1
        return 0.5 * x[..., 0] ** 2, np.stack([x[..., 0], np.zeros_like(x[..., 0])], axis=-1)

    path = lbfgs_path(value_and_grad, np.array([1.5, 0.3]))
    approximations = path_approximations(path)
    assert all(a is None or np.all(np.isfinite(a.covariance())) for a in approximations)


# ---------------------------------------------------------------- the model front-end


def linear_regression(features, targets, prior_scale=2.0, noise=0.7):
    beta = ppl.sample("beta", dist.Normal(np.zeros(features.shape[1]), prior_scale).to_event(1))
    with ppl.plate("data", len(targets)):
        ppl.observe("y", dist.Normal(np.sum(features * beta, -1), noise), targets)


def normal_normal(data, prior_loc=1.0, prior_scale=3.0, noise=1.5):
    mu = ppl.sample("mu", dist.Normal(prior_loc, prior_scale))
    with ppl.plate("data", len(data)):
        ppl.observe("x", dist.Normal(mu, noise), data)


def banana_model():
    x1 = ppl.sample("x1", dist.Normal(0.0, 10.0))
    ppl.sample("x2", dist.Normal(0.1 * x1**2 - 10.0, 1.0))


def regression_data(seed=0, n=30, d=3):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, d))
    return features, features @ np.array([1.0, -2.0, 0.5])[:d] + 0.7 * rng.normal(size=n)


def test_linear_regression_matches_the_exact_posterior():
    features, targets = regression_data()
    precision = np.eye(3) / 2.0**2 + features.T @ features / 0.7**2
    cov = np.linalg.inv(precision)
    mean = cov @ features.T @ targets / 0.7**2
    result = Pathfinder(linear_regression).run(features, targets, num_samples=2000)
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(result.mean["beta"] - mean) / sd < 0.1)
    np.testing.assert_allclose(result.std["beta"] / sd, 1.0, atol=0.1)
    corr = cov / np.outer(sd, sd)
    np.testing.assert_allclose(np.corrcoef(result.draws["beta"].T), corr, atol=0.08)
    assert result.khat < 0.7 and result.draws["beta"].shape == (2000, 3)
    assert np.all(result.iterations >= 1) and np.all(result.num_grad_evals > 2000)


def test_normal_normal_matches_the_exact_posterior_single_and_multi_path():
    data = np.random.default_rng(3).normal(2.0, 1.5, size=12)
    precision = 1 / 3.0**2 + len(data) / 1.5**2
    mean, sd = (1.0 / 3.0**2 + data.sum() / 1.5**2) / precision, precision**-0.5
    for num_paths in (1, 4):
        result = Pathfinder(normal_normal, num_paths=num_paths).run(data, num_samples=2000)
        assert abs(result.mean["mu"] - mean) / sd < 0.1
        assert abs(result.std["mu"] / sd - 1.0) < 0.1
        assert len(result.elbo) == num_paths and np.all(np.isfinite(result.elbo))
    fresh = result.sample(500, rng_seed=1)["mu"]
    assert fresh.shape == (500,) and abs(fresh.mean() - mean) / sd < 0.2


def test_banana_model_warns_through_khat():
    with pytest.warns(PathfinderWarning, match="k-hat"):
        result = Pathfinder(banana_model).run(num_samples=1000)
    assert result.khat > 0.7


def test_same_seed_same_numbers_and_executor_agrees():
    features, targets = regression_data(1)
    run = lambda seed, **kw: Pathfinder(linear_regression, num_paths=2).run(features, targets, num_samples=200,
                                                                            rng_seed=seed, **kw)
    first, again, other = run(5), run(5), run(6)
    np.testing.assert_array_equal(first.draws["beta"], again.draws["beta"])
    assert not np.array_equal(first.draws["beta"], other.draws["beta"])
    with ProcessPoolExecutor(2) as pool:
        remote = run(5, executor=pool)
    np.testing.assert_array_equal(first.draws["beta"], remote.draws["beta"])
    np.testing.assert_array_equal(first.elbo, remote.elbo)
    np.testing.assert_array_equal(first.iterations, remote.iterations)
    assert first.khat == remote.khat


def test_init_dict_starts_the_paths_there():
    data = np.random.default_rng(3).normal(2.0, 1.5, size=12)
    result = Pathfinder(normal_normal, num_paths=1, init={"mu": 40.0}).run(data, num_samples=100)
    assert result.paths[0].lbfgs.x[0, 0] == 40.0


def test_bad_arguments_name_the_culprit():
    with pytest.raises(ValueError, match="num_paths"):
        Pathfinder(normal_normal, num_paths=0)
    with pytest.raises(ValueError, match="init"):
        Pathfinder(normal_normal, init="median")
    with pytest.raises(ValueError, match="num_samples"):
        Pathfinder(normal_normal).run(np.ones(3), num_samples=10)
