"""Recorded graphs replayed (ppl.tape) and the potential that replays them: the same numbers as running the
model, and a model whose arithmetic depends on its values is caught, never replayed wrong."""
import re
import warnings

import autograd.numpy as anp
from autograd.extend import defvjp, primitive
import numpy as np
import pytest
from autograd.tracer import getval
from hypothesis import given, settings
from hypothesis import strategies as hst
from scipy.special import logsumexp as scipy_logsumexp

import ppl.distributions as dist
from ppl import factor, kernels, observe, plate, sample
from ppl.autodiff import value_and_grads
from ppl.distributions.special import logsumexp
from ppl.infer.potential import Potential
from ppl.tape import NotReplayable, record
from ppl.testing import posteriordb


def composite(x, y):
    """Broadcasting (3, 1) against (4,), every primitive with a planned gradient, a reshape and a where."""
    z = anp.exp(x) * y - anp.log1p(x ** 2) / (y + 3.0) + anp.square(x - y) - (-x)
    z = anp.where(z > 0.5, z, 0.5 * z) + anp.log(anp.exp(y) + 1.0)
    return anp.sum(anp.reshape(z, (12,)) * anp.arange(12.0))


@settings(max_examples=30, deadline=None, derandomize=True)
@given(hst.lists(hst.floats(-2, 2), min_size=7, max_size=7), hst.lists(hst.floats(-2, 2), min_size=7, max_size=7))
def test_a_replay_is_autograd_bit_for_bit_at_points_other_than_the_recording_one(first, second):
    to_arrays = lambda v: [np.array(v[:3]).reshape(3, 1), np.array(v[3:])]  # noqa: E731
    tape = record(lambda x, y: (lambda s: (s, s))(composite(x, y)), to_arrays(first))  # (differentiated, reported)
    value, grads = tape.value_and_grads(to_arrays(second))
    value_ref, grads_ref = value_and_grads(composite, to_arrays(second))
    assert value == value_ref
    for g, h in zip(grads, grads_ref):
        assert g.shape == h.shape and np.array_equal(g, h)


DATA = np.linspace(-1.0, 2.0, 6)


def normal_potential(loc, log_scale):
    """A potential's shape: -(sum over chains of the summed Normal log-density, plus a Jacobian term), so the
    gradient reaching the density is the constant -1 a replay folds into its rule (g * x written -x)."""
    scale = anp.exp(log_scale)
    log_density = kernels.sum(kernels.normal_log_prob(DATA, loc, scale), axis=-1)
    values = -kernels.add_n(log_density, anp.reshape(log_scale, (2,)), signs=(1.0, 1.0))
    return kernels.sum(values), values


@settings(max_examples=30, deadline=None, derandomize=True)
@given(hst.lists(hst.floats(-2, 2), min_size=4, max_size=4), hst.lists(hst.floats(-2, 2), min_size=4, max_size=4))
def test_a_constant_gradient_folded_into_the_rules_is_still_autograd_bit_for_bit(first, second):
    to_arrays = lambda v: [np.array(v[:2]).reshape(2, 1), np.array(v[2:]).reshape(2, 1)]  # noqa: E731
    tape = record(normal_potential, to_arrays(first))
    assert "-(" in tape.source and "(2, 6))" not in tape.source  # -1 folded: no (2, 6) array of it is made
    value, grads = tape.value_and_grads(to_arrays(second))
    value_ref, grads_ref = value_and_grads(lambda *a: normal_potential(*a)[0], to_arrays(second))
    np.testing.assert_array_equal(value, normal_potential(*to_arrays(second))[1])
    for g, h in zip(grads, grads_ref):
        assert g.shape == h.shape and np.array_equal(g, h)


def coefficients(beta):
    """beta[0] twice and beta[1], beta[2] once: the later indexes add into the first one's gradient array."""
    return anp.sum(beta[0] * DATA + beta[1] * DATA ** 2 + anp.exp(beta[2]) * beta[0])


@settings(max_examples=30, deadline=None, derandomize=True)
@given(hst.lists(hst.floats(-2, 2), min_size=3, max_size=3), hst.lists(hst.floats(-2, 2), min_size=3, max_size=3))
def test_gradients_of_several_indexes_of_one_array_add_in_place_and_equal_autograds(first, second):
    tape = record(lambda beta: (lambda s: (s, s))(coefficients(beta)), [np.array(first)])
    assert tape.source.count("_scatter_add(") == 3
    value, (grad,) = tape.value_and_grads([np.array(second)])
    value_ref, (grad_ref,) = value_and_grads(coefficients, [np.array(second)])
    assert value == value_ref and np.array_equal(grad, grad_ref)


def assigned_names_are_read(source):
    """Every value, gradient and temporary the code assigns is read later or returned (no dead code)."""
    lines = source.splitlines()[1:]
    for i, line in enumerate(lines):
        target = line.split(" = ", 1)[0].strip() if " = " in line else None
        if target and not any(re.search(rf"\b{target}\b", later.split(" = ", 1)[-1]) for later in lines[i + 1:]
                              if not later.strip().startswith("del ")):
            return False
    return True


def test_a_stabilizing_maximum_is_recomputed_not_frozen():
    """logsumexp factors out max(x) held constant for the gradient; frozen at x = 0 it would overflow at
    x = 800, where the replay must still give the exact answer."""
    x0, x1 = np.zeros(3), np.array([800.0, 801.0, 799.0])
    tape = record(lambda x: (lambda s: (s, s))(logsumexp(x)), [x0])
    value, (grad,) = tape.value_and_grads([x1])
    assert value == pytest.approx(scipy_logsumexp(x1), rel=1e-14)
    np.testing.assert_allclose(grad, np.exp(x1 - scipy_logsumexp(x1)), rtol=1e-12)


def test_control_flow_on_a_value_cannot_be_recorded():
    def branchy(x):
        s = anp.sum(x)
        return (s, s) if s > 0 else (-s, -s)

    with pytest.raises(NotReplayable, match="truth value"):
        record(branchy, [np.ones(2)])


def test_an_output_that_does_not_depend_on_the_inputs_cannot_be_recorded():
    with pytest.raises(NotReplayable, match="does not depend"):
        record(lambda x: (np.float64(1.0), np.float64(1.0)), [np.ones(2)])


# ---------------------------------------------------------------- the potential


def indexed_hierarchy(y, group):
    """Indexing a latent vector (its gradient is autograd's sparse ``untake``), a dependent bound and a
    truncation: the paths a replay must get right besides plain arithmetic."""
    mu = sample("mu", dist.Normal(0.0, 2.0))
    a = sample("a", dist.Uniform(0.0, 1.0))
    width = sample("width", dist.Uniform(0.0, 1.0 - a))
    tau = sample("tau", dist.TruncatedDistribution(dist.Normal(0.5, 1.0), low=0.0, high=3.0))
    with plate("groups", 3):
        theta = sample("theta", dist.Normal(mu, tau))
    with plate("data", len(y)):
        observe("y", dist.Normal(theta[..., group], 1.0 + width), y)


Y, GROUP = np.array([0.3, -1.0, 2.2, 0.4, 1.1]), np.array([0, 1, 2, 1, 0])


def _check_replay_matches(model, args, num_points=4, chains=(None, 3)):
    on, off = Potential(model, args), Potential(model, args, replay=False)
    rng = np.random.default_rng(0)
    for c in chains:
        for _ in range(num_points):
            u = rng.uniform(-2, 2, size=(on.dim,) if c is None else (c, on.dim))
            (v, g), (v_ref, g_ref) = on.value_and_grad(u), off.value_and_grad(u)
            np.testing.assert_allclose(v, v_ref, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-10)
    return on


def test_the_potential_replays_indexing_dependent_bounds_and_truncation_exactly():
    on = _check_replay_matches(indexed_hierarchy, (Y, GROUP))
    assert on.replay_problem is None and {type(t).__name__ for t in on._tapes.values()} == {"Tape"}
    source = on.tape_source()
    assert source.startswith("def replay(") and "_scatter" not in source  # theta[group] repeats: add.at
    assert on.tape_source(num_chains=7) is None


@pytest.mark.parametrize("name", posteriordb.names())
def test_every_posteriordb_model_replays_as_it_runs(name):
    """All 26 ports are recorded (none falls back), and the replay equals the model run in Python, for one
    flat vector and for a batch of 3 chains (one evaluation, or a loop for a model that does not broadcast)."""
    fn, args, kwargs = posteriordb.model(name)
    on, off = Potential(fn, args, kwargs), Potential(fn, args, kwargs, replay=False)
    rng = np.random.default_rng(1)
    for c in (None, 3):
        for _ in range(3):
            u = rng.uniform(-2, 2, size=(on.dim,) if c is None else (c, on.dim))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                (v, g), (v_ref, g_ref) = on.value_and_grad(u), off.value_and_grad(u)
            np.testing.assert_allclose(v, v_ref, rtol=1e-12)
            np.testing.assert_allclose(g, g_ref, rtol=1e-9, atol=1e-9)
    assert on.replay_problem is None
    assert set(on._tapes) == ({None, 3} if on.vectorized else {None})  # a loop over chains replays each
    assert all(assigned_names_are_read(tape.source) for tape in on._tapes.values())


def branch_on_a_scalar(y):
    mu = sample("mu", dist.Normal(0.0, 1.0))
    if mu > 0:  # Python control flow on a latent: a recorded graph would freeze the branch
        factor("bonus", 0.5 * mu)
    observe("y", dist.Normal(mu, 1.0), y)


def read_outside_autograd(y):
    mu = sample("mu", dist.Normal(0.0, 1.0))
    factor("frozen", 0.3 * float(getval(mu)) ** 2 + 0.0 * mu)  # a value autograd cannot see
    observe("y", dist.Normal(mu, 1.0), y)


@pytest.mark.parametrize("model, why", [(branch_on_a_scalar, "truth value|len"),
                                        (read_outside_autograd, "differs from running the model")])
def test_a_model_whose_arithmetic_depends_on_its_values_runs_in_python(model, why):
    on, off = Potential(model, (0.4,)), Potential(model, (0.4,), replay=False)
    for u in (-1.0, 0.7, 1.3, -0.2, 2.0):
        (v, g), (v_ref, g_ref) = on.value_and_grad(np.array([u])), off.value_and_grad(np.array([u]))
        assert v == v_ref and np.array_equal(g, g_ref)
    assert on.replay_problem is not None
    assert __import__("re").search(why, on.replay_problem)
    assert not on._tapes


SLOPE = {"value": 0.0}


def reads_a_global(y):
    """A model whose arithmetic a recording freezes: the global slope is a constant on the tape."""
    mu = sample("mu", dist.Normal(0.0, 1.0))
    factor("tilt", SLOPE["value"] * mu)
    observe("y", dist.Normal(mu, 1.0), y)


def test_nuts_checks_the_replay_at_its_draws_and_reruns_in_python_when_it_disagrees():
    """The slope changes after the last draw, so the tape (slope 0) and the model (slope 1) disagree at the
    draws: run_chains must notice, warn, and rerun with the model run in Python, which gives exactly
    the draws of a run that never replayed."""
    from ppl.infer.mcmc import _NUTSKernel, run_chains

    num_warmup, num_samples, calls = 60, 40, []

    def tilt_after_the_last_draw(phase, eps, diverging):
        calls.append(phase)  # "rerun": the progress bar's cue, one more run's worth of iterations per chain
        if phase != "rerun" and len(calls) == 2 * (num_warmup + num_samples):  # both chains' last draws
            SLOPE["value"] = 1.0

    def run(potential, callback=None):
        return run_chains(potential, _NUTSKernel(10), [0, 1], 3, num_warmup, num_samples, callback=callback)

    SLOPE["value"] = 0.0
    try:
        potential = Potential(reads_a_global, (0.5,))
        with pytest.warns(RuntimeWarning, match="replay disagreed"):
            rerun = run(potential, tilt_after_the_last_draw)
        assert potential.replay_problem is not None and not potential._tapes
        reference = run(Potential(reads_a_global, (0.5,), replay=False))  # the slope is 1 throughout
        SLOPE["value"] = 0.0
        untilted = run(Potential(reads_a_global, (0.5,), replay=False))
    finally:
        SLOPE["value"] = 0.0
    assert calls.count("rerun") == 2 and calls.index("rerun") == 2 * (num_warmup + num_samples)
    np.testing.assert_array_equal(rerun["positions"], reference["positions"])
    assert not np.array_equal(rerun["positions"], untilted["positions"])


@primitive
def _pair(x):
    return 2.0 * x, 3.0 * x


defvjp(_pair, lambda ans, x: lambda g: 2.0 * g[0] + 3.0 * g[1])


def test_a_value_of_several_outputs_used_twice_gets_both_gradients():
    """A primitive returning a pair, unpacked: its gradient has two contributions, one per element, which
    add element by element (adding two tuples would concatenate them and lose one)."""
    def fn(x):
        first, second = _pair(x)
        out = anp.sum(first) + anp.sum(second * second)
        return out, out

    tape = record(fn, [np.array([0.5, -1.0])])
    x = np.array([1.5, 0.25])
    value, (grad,) = tape.value_and_grads([x])
    np.testing.assert_allclose(grad, 2.0 + 3.0 * 2 * (3.0 * x), rtol=1e-14)  # d/dx [2x + (3x)^2]
    assert value == pytest.approx(np.sum(2 * x + 9 * x**2), rel=1e-14)


def test_a_large_batch_is_not_recorded_and_a_shape_is_recorded_at_its_third_evaluation():
    """Recording pays off over many evaluations of one shape (NUTS's steps); a shape met twice, or a batch
    larger than RECORD_MAX_CHAINS (Pathfinder's draws), runs the model as it is."""
    from ppl.infer.potential import RECORD_AT, RECORD_MAX_CHAINS

    rng = np.random.default_rng(2)
    flat = Potential(indexed_hierarchy, (Y, GROUP))
    for _ in range(RECORD_AT - 1):
        flat.value_and_grad(rng.uniform(-1, 1, size=flat.dim))
    assert flat.tape_source() is None
    flat.value_and_grad(rng.uniform(-1, 1, size=flat.dim))
    assert flat.tape_source() is not None
    batched = Potential(indexed_hierarchy, (Y, GROUP))
    for _ in range(RECORD_AT + 2):
        batched.value_and_grad(rng.uniform(-1, 1, size=(RECORD_MAX_CHAINS + 1, batched.dim)))
    assert batched.vectorized and RECORD_MAX_CHAINS + 1 not in batched._tapes
