"""Bounds that depend on other latents (garch11's ``beta1 < 1 - alpha1``): every engine honours them.

The model puts most posterior mass against the moving bound ``b < 1 - a``:
a transform built once, at the initial ``a``, would place ``b`` outside its
support as soon as ``a`` moves up, and the model would reject the value.
"""
import warnings

import numpy as np
import pytest
import scipy.stats as st

import ppl
import ppl.distributions as dist
from ppl.distributions import constraints
from ppl.infer import ADVI, MAP, Predictive
from ppl.infer.autoguide import AutoNormal

Y, NOISE = 0.9, 0.05


def model(y=Y):
    a = ppl.sample("a", dist.Beta(2.0, 5.0))
    b = ppl.sample("b", dist.Uniform(0.0, 1.0 - a))
    ppl.observe("y", dist.Normal(a + b, NOISE), y)


def flat_model(y=Y):
    a = ppl.sample("a", dist.Beta(2.0, 5.0))
    b = ppl.sample("b", dist.ImproperUniform(constraints.interval(0.0, 1.0 - a), (), ()))
    ppl.observe("y", dist.Normal(a + b, NOISE), y)


def exact_mean_a(n=2000):
    """E[a | y] on a fine grid of the triangle 0 < b < 1 - a (midpoints; the ridge is 0.05 wide, the step 0.0005)."""
    a, b = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
    density = np.where(b < 1 - a, st.beta(2, 5).pdf(a) / (1 - a) * st.norm(a + b, NOISE).pdf(Y), 0.0)
    return float(np.sum(a * density) / np.sum(density))


def inside(draws):
    return np.all(draws["b"] > 0) and np.all(draws["b"] < 1 - draws["a"])


def test_the_guide_finds_the_dependent_support():
    guide = AutoNormal(model)
    guide.setup()
    assert guide.dependent == {"b"}
    assert not guide.prototypes["a"].dependent and guide.prototypes["b"].dependent


@pytest.mark.parametrize("family", ["meanfield", "fullrank"])
def test_advi_draws_never_leave_a_bound_that_moves(family):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # k-hat: a Gaussian is only an approximation here
        result = ADVI(model, family, num_particles=4).run(1500, rng_seed=0)
    draws = result.sample(4000, rng_seed=1)
    assert inside(draws)
    assert np.all(np.isfinite(result.losses))
    # the fit has found the ridge a + b = y near the bound, not stayed where the start put b
    assert np.mean(draws["a"] + draws["b"]) == pytest.approx(Y, abs=0.02)
    assert float(result.mean["a"]) == pytest.approx(exact_mean_a(), abs=0.08)


def test_predictive_from_the_guide_stays_inside():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = ADVI(flat_model, "meanfield").run(800, rng_seed=0)
    draws = Predictive(flat_model, guide=result.guide, params=result.params, num_samples=500)(2)
    assert inside(draws) and draws["y"].shape == (500,)


def test_map_with_a_flat_prior_on_a_moving_interval_stays_inside():
    result = MAP(flat_model).run(1500, rng_seed=0)
    a, b = float(result.values["a"]), float(result.values["b"])
    assert 0 < b < 1 - a
    # the mode: the Beta(2, 5) density times 1 (flat b) peaks where a is smallest on the ridge a + b = y,
    # subject to b < 1 - a, i.e. at a -> 1/5 (the Beta's own mode) with b = y - a
    assert a == pytest.approx(0.2, abs=0.02) and a + b == pytest.approx(Y, abs=0.01)
