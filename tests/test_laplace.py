"""Laplace on the potential: an exact mode and Hessian, a mode search that survives a model that raises,
and warnings (with diagnostics) when the Gaussian at the mode is not to be trusted."""
import warnings

import autograd.numpy as anp
import numpy as np
import pytest
import scipy.optimize as so
import scipy.stats as st

import ppl.distributions as dist
from ppl import observe, plate, sample
from ppl.distributions import constraints
from ppl.infer import Laplace
from ppl.infer.potential import potential
from ppl.infer.svi import NEWTON_TOL, fd_hessian, flat_order
from ppl.testing import posteriordb

# A regression with a predictor near 2000 (years, as kilpisjarvi): slope and intercept correlated to
# -0.9999, the badly scaled posterior on which SciPy's default tolerances stopped L-BFGS early.
RNG = np.random.default_rng(1)
YEARS = np.arange(1952.0, 2014.0)
TEMPS = -30.0 + 0.02 * YEARS + 1.1 * RNG.normal(size=len(YEARS))
PRIOR_SD, NOISE = np.array([100.0, 1.0]), 1.1


def trend(x, y):
    beta = sample("beta", dist.Normal(np.zeros(2), PRIOR_SD).to_event(1))
    with plate("data", len(y)):
        observe("y", dist.Normal(beta[..., 0] + beta[..., 1] * x, NOISE), y)


def exact_trend():
    design = np.column_stack([np.ones_like(YEARS), YEARS])
    cov = np.linalg.inv(np.diag(PRIOR_SD ** -2.0) + design.T @ design / NOISE ** 2)
    return cov @ design.T @ TEMPS / NOISE ** 2, cov


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    return result, [str(w.message) for w in caught]


def test_conjugate_regression_is_exact_even_badly_scaled():
    mean, cov = exact_trend()
    result, messages = quiet(Laplace(trend).run, YEARS, TEMPS, rng_seed=0)
    sd = np.sqrt(np.diag(cov))
    assert np.max(np.abs(result.mean["beta"] - mean) / sd) < 1e-6
    np.testing.assert_allclose(result.guide.covariance(result.params), cov, rtol=1e-6)
    assert result.converged_at is not None and result.diagnostics["newton_decrement"] < NEWTON_TOL
    assert result.khat < 0.5 and not messages  # a Gaussian target: the weights are flat, nothing to warn about


def test_newton_steps_finish_a_search_that_l_bfgs_left_early():
    mean, cov = exact_trend()
    result, _ = quiet(Laplace(trend).run, YEARS, TEMPS, rng_seed=0, max_iter=2)
    assert result.diagnostics["lbfgs_iterations"] <= 2 and result.diagnostics["newton_steps"] >= 1
    assert np.max(np.abs(result.mean["beta"] - mean) / np.sqrt(np.diag(cov))) < 1e-6


def test_fd_hessian_matches_the_closed_form_curvature():
    # U(u) of Beta(a, b) in u = logit(p): -(a log p + b log(1-p)) + const, so U'' = (a + b) p (1 - p)
    a, b = 3.0, 7.0
    pot = potential(lambda: sample("p", dist.Beta(a, b)))
    for u in (-1.5, 0.0, 0.7):
        p = 1 / (1 + np.exp(-u))
        hessian = fd_hessian(pot.value_and_grad, np.array([u]), np.array([1e-4]))
        assert hessian[0, 0] == pytest.approx((a + b) * p * (1 - p), rel=1e-8)


def scale_limited(y):
    """y ~ Normal(0, 10 - s): the scale is positive only for s < 10; beyond it the Normal raises ValueError."""
    s = sample("s", dist.HalfNormal(10.0))
    with plate("data", len(y)):
        observe("y", dist.Normal(0.0, 10.0 - anp.expand_dims(s, -1)), y)


Y_SMALL = np.array([0.4, -1.1, 0.9, 1.6, -0.3, -0.8, 0.2, 1.3])


def exact_scale_limited_mode():
    """The mode in u = log s of the density of u, found on (0, 5) by SciPy's bounded scalar search."""
    def neg(u):
        s = np.exp(u)
        return -(st.halfnorm.logpdf(s, scale=10.0) + np.sum(st.norm.logpdf(Y_SMALL, 0.0, 10.0 - s)) + u)

    return so.minimize_scalar(neg, bounds=(-10, np.log(10.0) - 1e-12), method="bounded",
                              options={"xatol": 1e-12}).x


def test_a_start_where_the_model_raises_is_replaced_and_the_mode_found():
    result, messages = quiet(Laplace(scale_limited, init_loc_fn={"s": 12.0}).run, Y_SMALL, rng_seed=0)
    assert any("cannot be evaluated at the initial point" in m and "scale" in m for m in messages), messages
    assert np.log(result.median["s"]) == pytest.approx(exact_scale_limited_mode(), abs=1e-6)
    assert result.converged_at is not None


def test_line_search_steps_into_the_raising_region_are_rejected():
    # from s = 9.99 the first step runs far past s = 10 (the gradient is steep there): rejected, not fatal
    result, _ = quiet(Laplace(scale_limited, init_loc_fn={"s": 9.99}).run, Y_SMALL, rng_seed=0)
    assert result.diagnostics["rejected"] >= 1
    assert np.log(result.median["s"]) == pytest.approx(exact_scale_limited_mode(), abs=1e-6)


def test_a_flat_direction_is_warned_about_and_not_converged():
    def flat():
        sample("a", dist.Normal(0.0, 1.0))
        sample("b", dist.ImproperUniform(constraints.real, (), ()))  # nothing pins b: U is flat along it

    with pytest.warns(UserWarning, match="not positive definite"):
        result = Laplace(flat, khat_samples=0).run(rng_seed=0)
    assert result.converged_at is None and abs(result.diagnostics["min_eigenvalue"]) < 1e-6


def test_a_search_cut_short_is_warned_about():
    # a Student-t likelihood: U is not quadratic, so neither one L-BFGS step nor Newton steps from far away
    # reach the mode in a single iteration; with Newton off (MAX_NEWTON patched to 0) the warning must fire
    import ppl.infer.svi as svi

    def heavy(y):
        mu = sample("mu", dist.Normal(0.0, 100.0))
        with plate("data", len(y)):
            observe("y", dist.StudentT(2.0, mu, 1.0), y)

    data = np.array([30.0, 31.0, 29.5, 50.0])
    original = svi.MAX_NEWTON
    svi.MAX_NEWTON = 0
    try:
        with pytest.warns(UserWarning, match="mode was not found"):
            result = Laplace(heavy, init_loc_fn={"mu": -50.0}, khat_samples=0).run(data, max_iter=1)
    finally:
        svi.MAX_NEWTON = original
    assert result.converged_at is None and result.diagnostics["newton_decrement"] > NEWTON_TOL


def test_a_non_gaussian_posterior_gets_a_bad_khat_and_a_warning():
    fn, args, kwargs = posteriordb.model("eight_schools-eight_schools_noncentered")
    with pytest.warns(UserWarning, match="k-hat"):
        result = Laplace(fn).run(*args, rng_seed=0, **kwargs)
    assert result.khat > 0.7 and result.diagnostics["khat"] == result.khat


def test_flat_order_maps_the_guide_layout_onto_the_potential_by_site_name():
    from ppl.infer import AutoMultivariateNormal

    def two_sites():
        sample("a", dist.Normal(np.zeros(3), 1.0).to_event(1))
        sample("b", dist.HalfNormal(np.ones(2)).to_event(1))

    guide = AutoMultivariateNormal(two_sites)
    guide.setup()
    pot = potential(two_sites)
    assert list(flat_order(guide, pot)) == [0, 1, 2, 3, 4]
    guide.prototypes = dict(reversed(list(guide.prototypes.items())))  # b's 2 values first in the guide
    assert list(flat_order(guide, pot)) == [2, 3, 4, 0, 1]
