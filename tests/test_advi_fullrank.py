"""Issue 18: full-rank ADVI on ordinary regressions from posteriordb, with the issue's stand-in priors.

Before the fix (an absolute off-diagonal in scale_tril), nes1972's loss ran from 2 836 up to 11 081 and its
answer was 10^1-10^5 sds off, with no warning. Now the loss settles; with its default start (the Laplace
fit, issue 16) all three rows match Stan's reference in a few hundred steps; and from a uniform start the
two ridge posteriors with unscaled predictors (height ~ 66, mom_iq ~ 100), which a constant-step
one-particle fit does not reach in the budget (NumPyro's AutoMultivariateNormal neither: 3.4 and 3.9 sds
off, measured), are flagged by k-hat instead of being silently wrong.
"""
import json
import os
import warnings

import autograd.numpy as anp
import numpy as np
import pytest

import ppl.distributions as dist
from ppl import observe, sample
from ppl.infer import ADVI
from ppl.infer.svi import loss_rise
from ppl.optim import Adam

ROOT = os.path.join(os.environ.get("PPL_DATA_DIR", "../shared/data"), "posteriordb")


def regression(name):
    """(model, reference) with Normal(0, 1e4) on beta and HalfNormal(1e4) on sigma, the design from the Stan code."""
    path = os.path.join(ROOT, name + ".json")
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: set PPL_DATA_DIR to the folder holding posteriordb/")
    with open(path) as f:
        posterior = json.load(f)
    data = {k: np.asarray(v, float) for k, v in posterior["data"].items() if isinstance(v, list)}
    if name == "nes1972-nes":
        age = data["age_discrete"]
        columns = [np.ones_like(age), data["real_ideo"], data["race_adj"], age == 2, age == 3, age == 4,
                   data["educ1"], data["gender"], data["income"]]
        y = data["partyid7"]
    elif name == "earnings-logearn_height":
        columns, y = [np.ones_like(data["height"]), data["height"]], np.log(data["earn"])
    else:
        columns, y = [np.ones_like(data["mom_iq"]), data["mom_iq"]], data["kid_score"]
    X = np.column_stack(columns).astype(float)

    def model():
        beta = sample("beta", dist.Normal(np.zeros(X.shape[1]), 1e4).to_event(1))
        sigma = sample("sigma", dist.HalfNormal(1e4))
        observe("y", dist.Normal(anp.sum(beta * X, -1), sigma), y)  # beta (..., 1, D): broadcasts over particles

    return model, posterior["reference"]


def z_and_ratio(result, reference):
    mean, std = result.mean["beta"], result.std["beta"]
    ref = [reference[f"beta[{i + 1}]"] for i in range(len(mean))]
    z = np.array([(m - r["mean"]) / r["sd"] for m, r in zip(mean, ref)])
    return z, np.array([s / r["sd"] for s, r in zip(std, ref)])


FITS = {}


def fit(name, steps, **options):
    key = (name, steps, tuple(sorted(options.items())))
    if key not in FITS:
        model, reference = regression(name)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = ADVI(model, "fullrank", **options).run(steps, rng_seed=0)
        FITS[key] = result, reference, [str(w.message) for w in caught]
    return FITS[key]


# With the default start (Laplace: the mode and the inverse Hessian, ~0.05 s here) the stochastic steps only
# refine: 300 steps put all three within 0.13 sd and sd ratios 0.79-1.0 (measured). 1000: after 500 steps of
# 10 particles (the default from a start) kidscore_momiq's k-hat from 2000 draws was 0.77 at seed 0 and 0.51
# at seed 1 with its fit within 0.08 sd (sd ratios 0.97); after 1000, 0.40 and 0.35.
STEPS = 1000


@pytest.mark.parametrize("name", ["nes1972-nes", "earnings-logearn_height", "kidiq-kidscore_momiq"])
def test_fullrank_with_its_defaults_matches_the_reference_and_its_loss_settles(name):
    result, reference, messages = fit(name, STEPS)
    assert result.diagnostics["init"] == "laplace"
    z, ratio = z_and_ratio(result, reference)
    assert np.abs(z).max() < 0.3, z
    assert np.all((ratio > 0.7) & (ratio < 1.3)), ratio
    # the fitted loss ends near its minimum (before the fix, nes1972: 11 081 against a best of 2 836)
    assert not result.diverged and result.diagnostics["loss_rise"] < 3
    assert result.diagnostics["final_loss"] - result.losses.min() < 20
    assert result.khat < 0.7 and not messages, messages


@pytest.mark.parametrize("name", ["earnings-logearn_height", "kidiq-kidscore_momiq"])
def test_from_a_uniform_start_ridges_do_not_blow_up_and_are_flagged_when_off(name):
    """The root cause's evidence, without the start: the row-scaled scale_tril keeps the loss settled (before
    the fix 2 347 against a best of 1 659), and where 3000 steps along the ridge do not reach the answer,
    k-hat says so."""
    result, reference, messages = fit(name, 3000, init=None)
    assert result.diagnostics["init"] is None
    assert not result.diverged and result.diagnostics["loss_rise"] < 3
    z, ratio = z_and_ratio(result, reference)
    off = np.abs(z).max() > 0.3 or np.any((ratio < 0.7) | (ratio > 1.3))
    assert off  # the problem the start solves: from (-2, 2) the run is still on the ridge
    assert result.khat > 0.7
    assert any("k-hat" in m for m in messages), messages


def test_loss_rise_measures_a_blow_up_in_units_of_the_loss_noise():
    rng = np.random.default_rng(0)
    settled = 100.0 + rng.normal(0.0, 2.0, 1000)
    rise, last, best, noise = loss_rise(settled)
    assert abs(rise) < 1.0 and abs(noise - 2.0) < 0.5
    blown = settled.copy()
    blown[-100:] += 50.0  # the last stretch 50 above the best: 25 noise sds
    rise, last, best, noise = loss_rise(blown)
    assert abs(rise - (last - best) / noise) < 1e-12 and 20 < rise < 30


class RunsAway(Adam):
    """Adam for the first 200 steps, then every parameter pushed up by 0.2 a step: a loss leaving its optimum."""

    def step(self, buffer, grad, state, out=None):
        state = super().step(buffer, grad, state, out)
        if int(state["step"]) > 200:
            (buffer if out is None else out)[...] += 0.2
        return state


def test_a_loss_that_blows_up_is_warned_about_and_not_converged():
    def model():
        mu = sample("mu", dist.Normal(0.0, 10.0))
        observe("x", dist.Normal(mu, 1.0), np.array([1.0, 1.2, 0.8]))

    with pytest.warns(UserWarning, match="blew up"):
        result = ADVI(model, "meanfield", RunsAway(0.05), khat_samples=0, tol=1e-12, eval_every=10).run(
            400, rng_seed=0)
    # Adam pulls back 0.05 a step against a push of 0.2: the location and scale run away, the loss with them
    assert result.diverged and result.converged_at is None and result.diagnostics["loss_rise"] > 10
    settled = ADVI(model, "meanfield", Adam(0.05), khat_samples=0).run(400, rng_seed=0)
    assert not settled.diverged and settled.diagnostics["loss_rise"] < 3
