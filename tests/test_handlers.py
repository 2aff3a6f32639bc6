"""Handler laws and the runtime's errors, each checked against an independent number."""
import threading

import autograd
import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hst

import ppl
import ppl.distributions as dist
from ppl import (block, condition, deterministic, do, factor, log_joint, mask, observe, param, plate, replace,
                 sample, scale, seed, trace)
from ppl.errors import DuplicateSiteError, MissingValueError, ShapeError, SiteError, UnknownSiteError

finite = hst.floats(-5, 5, allow_nan=False)
positive = hst.floats(0.1, 5)


def chain(data=1.5):
    a = sample("a", dist.Normal(0.0, 1.0))
    b = sample("b", dist.Normal(a, 2.0))
    observe("x", dist.Normal(b, 0.5), data)
    return a, b


def ppca(data_dim, latent_dim, num_datapoints, stddv_datapoints):
    """The course's probabilistic PCA, as a plain model."""
    w = sample("w", dist.Normal(np.zeros((data_dim, latent_dim)), 2.0 * np.ones((data_dim, latent_dim))))
    z = sample("z", dist.Normal(np.zeros((latent_dim, num_datapoints)), np.ones((latent_dim, num_datapoints))))
    x = sample("x", dist.Normal(w @ z, stddv_datapoints * np.ones((data_dim, num_datapoints))))
    return x, (w, z)


@given(a=finite, b=finite, x=finite)
def test_condition_then_trace_marks_observed(a, b, x):
    tr = trace(condition(chain, {"a": a, "b": b})).get_trace(x)
    assert tr["a"].is_observed and tr["b"].is_observed and tr["a"].value == a
    expected = st.norm.logpdf(a, 0, 1) + st.norm.logpdf(b, a, 2) + st.norm.logpdf(x, b, 0.5)
    assert np.isclose(tr.log_prob_sum(), expected, rtol=1e-12)


@given(a=finite, b=finite)
def test_replace_keeps_latent_with_value(a, b):
    tr = trace(replace(chain, {"a": a, "b": b})).get_trace()
    assert not tr["a"].is_observed and tr["a"].value == a and tr["b"].value == b


@given(a=finite, b=finite, x=finite)
def test_log_joint_equals_trace_sum(a, b, x):
    values = {"a": a, "b": b}
    expected = trace(replace(chain, values)).get_trace(x).log_prob_sum()
    assert np.isclose(log_joint(chain)(values, x), expected, rtol=1e-12)
    assert np.isclose(expected, st.norm.logpdf(a) + st.norm.logpdf(b, a, 2) + st.norm.logpdf(x, b, 0.5))


def test_log_joint_gradient_against_finite_differences():
    lj = log_joint(chain)
    g = autograd.grad(lambda v: lj({"a": v[0], "b": v[1]}))(np.array([0.3, -0.7]))
    eps = 1e-6
    fd = [(lj({"a": 0.3 + eps, "b": -0.7}) - lj({"a": 0.3 - eps, "b": -0.7})) / (2 * eps),
          (lj({"a": 0.3, "b": -0.7 + eps}) - lj({"a": 0.3, "b": -0.7 - eps})) / (2 * eps)]
    assert np.allclose(g, fd, rtol=1e-6)


def test_ppca_log_joint_against_scipy_and_finite_differences():
    d, k, n, sigma = 2, 1, 50, 0.5
    rng = np.random.default_rng(0)
    w, z, x = rng.normal(size=(d, k)), rng.normal(size=(k, n)), rng.normal(size=(d, n))
    lj = log_joint(ppca)
    value = lj({"w": w, "z": z, "x": x}, d, k, n, sigma)
    expected = (st.norm.logpdf(w, 0, 2).sum() + st.norm.logpdf(z, 0, 1).sum()
                + st.norm.logpdf(x, w @ z, sigma).sum())
    assert abs(value - expected) <= 1e-9 * abs(expected)

    def f(w, z):
        return lj({"w": w, "z": z, "x": x}, d, k, n, sigma)

    gw, gz = autograd.grad(f, 0)(w, z), autograd.grad(f, 1)(w, z)
    eps = 1e-6
    for (i, j) in [(0, 0), (1, 0)]:
        e = np.zeros_like(w)
        e[i, j] = eps
        assert np.isclose(gw[i, j], (f(w + e, z) - f(w - e, z)) / (2 * eps), rtol=1e-6)
    for j in [0, 7, 49]:
        e = np.zeros_like(z)
        e[0, j] = eps
        assert np.isclose(gz[0, j], (f(w, z + e) - f(w, z - e)) / (2 * eps), rtol=1e-5)


def test_seed_same_seed_same_draws_and_keyed_by_name():
    def model(extra):
        if extra:
            sample("inserted", dist.Normal(0.0, 1.0))
        return sample("a", dist.Normal(np.zeros(3), 1.0)), sample("b", dist.Normal(0.0, 1.0))

    a1, b1 = seed(model, 7)(False)
    a2, b2 = seed(model, 7)(True)  # another site before them changes nothing
    a3, _ = seed(model, 8)(False)
    assert np.array_equal(a1, a2) and b1 == b2
    assert not np.allclose(a1, a3)


def test_set_rng_seed_resets_global_generator():
    ppl.set_rng_seed(3)
    x1 = ppl.sample("x", dist.Normal(np.zeros(4), 1.0))
    ppl.set_rng_seed(3)
    assert np.array_equal(x1, ppl.sample("x", dist.Normal(np.zeros(4), 1.0)))


def test_block_hides_and_exposes():
    assert list(trace(block(chain, hide=["a"])).get_trace()) == ["b", "x"]
    assert list(trace(block(chain, expose=["x"])).get_trace()) == ["x"]
    assert list(trace(block(chain)).get_trace()) == []


@given(factor_=positive, a=finite)
def test_scale_multiplies(factor_, a):
    plain = trace(condition(chain, {"a": a, "b": 0.0})).get_trace().log_prob_sum()
    scaled = trace(scale(condition(chain, {"a": a, "b": 0.0}), factor_)).get_trace().log_prob_sum()
    assert np.isclose(scaled, factor_ * plain, rtol=1e-12)


def test_mask_drops_masked_terms():
    data = np.array([0.1, -2.0, 3.0])
    keep = np.array([True, False, True])

    def model():
        mu = sample("mu", dist.Normal(0.0, 1.0))
        with plate("data", 3), mask(mask=keep):
            observe("x", dist.Normal(mu, 1.0), data)

    lp = trace(replace(model, {"mu": 0.5})).get_trace().log_prob_sum()
    assert np.isclose(lp, st.norm.logpdf(0.5) + st.norm.logpdf(data[keep], 0.5).sum())
    # a mask that would broadcast a site's log-density to a larger shape is an error, not a silent sum
    with pytest.raises(ShapeError, match="'mu'"):
        trace(mask(replace(model, {"mu": 0.5}), keep)).get_trace().log_prob_sum()


def test_do_sets_value_without_scoring():
    tr = trace(do(chain, {"a": 2.0})).get_trace(0.0)
    assert tr["a"].value == 2.0 and tr["a"].intervened
    b = tr["b"].value
    assert np.isclose(tr.log_prob_sum(), st.norm.logpdf(b, 2.0, 2.0) + st.norm.logpdf(0.0, b, 0.5))


@given(n=hst.integers(2, 40), m=hst.integers(1, 40))
@settings(max_examples=15)
def test_plate_subsample_scaling(n, m):
    m = min(m, n)
    data = np.linspace(-1, 1, n)

    def model():
        with plate("data", n, subsample_size=m) as idx:
            observe("x", dist.Normal(0.0, 1.0), data[idx])
        return idx

    tr = trace(seed(model, 1)).get_trace()
    idx = tr["data"].value
    assert len(set(idx.tolist())) == m and idx.max() < n
    assert np.isclose(tr.log_prob_sum(), n / m * st.norm.logpdf(data[idx]).sum())
    # replacing the plate's indices feeds a chosen minibatch
    chosen = np.arange(m)
    assert np.array_equal(replace(model, {"data": chosen})(), chosen)


def test_plate_with_given_subsample_records_it_scales_and_draws_nothing():
    """``subsample=idx`` (Pyro's argument): the plate site holds the caller's indices, log-densities are
    scaled by N / M, no generator is keyed for it, and the same ELBO results with or without a seed."""
    data = np.linspace(-1.0, 1.0, 10)
    chosen = np.array([7, 2, 5])

    def model(idx):
        with plate("data", 10, subsample=idx) as got:
            observe("x", dist.Normal(0.0, 1.0), data[got])
        return got

    tr = trace(seed(model, 3)).get_trace(chosen)
    assert np.array_equal(tr["data"].value, chosen) and not isinstance(tr["data"].rng, np.random.Generator)
    assert np.isclose(tr.log_prob_sum(), 10 / 3 * st.norm.logpdf(data[chosen]).sum())
    assert np.array_equal(model(chosen), chosen)  # no handler: the indices come back as given
    assert np.array_equal(replace(model, {"data": np.array([0, 1, 2])})(chosen), [0, 1, 2])  # still replaceable
    with pytest.raises(ValueError, match="'data'.*subsample_size=2.*shape \\(3,\\)"):
        with plate("data", 10, subsample_size=2, subsample=chosen):
            pass
    with pytest.raises(ValueError, match="'data'.*vector of indices"):
        with plate("data", 10, subsample=chosen[:, None]):
            pass


def test_plate_broadcasts_batch_shape():
    def model():
        with plate("rows", 4, dim=-2):
            with plate("cols", 3):
                return sample("x", dist.Normal(0.0, 1.0))

    tr = trace(seed(model, 0)).get_trace()
    assert tr["x"].fn.batch_shape == (4, 3) and tr["x"].value.shape == (4, 3)


def test_nesting_order_innermost_acts_first():
    # The inner replace sets the value; the outer condition finds it set and leaves it.
    tr = trace(condition(replace(chain, {"a": 1.0}), {"a": 2.0})).get_trace()
    assert tr["a"].value == 1.0 and not tr["a"].is_observed
    tr = trace(replace(condition(chain, {"a": 2.0}), {"a": 1.0})).get_trace()
    assert tr["a"].value == 2.0 and tr["a"].is_observed


def test_deterministic_and_factor_and_param():
    def model():
        p = param("p", lambda rng: np.ones(2))
        a = sample("a", dist.Normal(0.0, 1.0))
        deterministic("twice", 2 * a)
        factor("bonus", np.array([1.0, 2.5]))
        return p

    tr = trace(replace(model, {"a": 0.25})).get_trace()
    assert tr["twice"].value == 0.5 and np.array_equal(tr["p"].value, np.ones(2))
    assert np.isclose(tr.log_prob_sum(), st.norm.logpdf(0.25) + 3.5)


def test_threads_never_see_each_others_sites():
    results, barrier = {}, threading.Barrier(2)

    def run(name):
        with trace() as tr:
            for i in range(200):
                sample(f"{name}{i}", dist.Normal(0.0, 1.0))
                if i == 100:
                    barrier.wait()
        results[name] = list(tr)

    threads = [threading.Thread(target=run, args=(n,)) for n in ("p", "q")]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert results["p"] == [f"p{i}" for i in range(200)] and results["q"] == [f"q{i}" for i in range(200)]


def test_trace_summary_is_readable():
    tr = trace(seed(chain, 0)).get_trace()
    text = str(tr)
    assert text.splitlines()[0].split()[:3] == ["site", "type", "distribution"]
    assert "x" in text and "yes" in text and "Normal" in text


# ---------------------------------------------------------------- bad input


def test_duplicate_site_names_it():
    def model():
        sample("a", dist.Normal(0.0, 1.0))
        sample("a", dist.Normal(0.0, 1.0))

    with pytest.raises(DuplicateSiteError, match="'a'"):
        trace(model).get_trace()
    with pytest.raises(DuplicateSiteError, match="'a'"):
        log_joint(model)({"a": 0.0})


def test_unknown_name_lists_existing_sites():
    with pytest.raises(UnknownSiteError, match=r"'c'.*\['a', 'b', 'x'\]"):
        condition(chain, {"c": 1.0})()
    with pytest.raises(UnknownSiteError, match="'typo'"):
        replace(chain, {"typo": 1.0})()
    with pytest.raises(UnknownSiteError, match="'typo'"):
        log_joint(chain)({"a": 0.0, "b": 0.0, "typo": 1.0})


def test_log_joint_missing_latent_names_it():
    with pytest.raises(MissingValueError, match="'b'"):
        log_joint(chain)({"a": 0.0})


def test_observe_shape_mismatch_names_site_and_shapes():
    def model():
        with plate("data", 5):
            observe("x", dist.Normal(np.zeros(5), 1.0), np.zeros((5, 1)))

    with pytest.raises(ShapeError, match=r"'x'.*\(5, 1\).*\(5,\)"):
        trace(model).get_trace().log_prob_sum()


def test_plate_size_mismatch_names_site_and_plate():
    def model():
        with plate("data", 5):
            sample("x", dist.Normal(np.zeros(4), 1.0))

    with pytest.raises(ShapeError, match="'x'.*'data'"):
        trace(model).get_trace()


def test_value_outside_support_names_site():
    def model():
        observe("rate", dist.Exponential(1.0), -1.0)

    with pytest.raises(SiteError, match="'rate'"):
        trace(model).get_trace().log_prob_sum()


def test_error_under_trace_carries_site_table():
    def model():
        sample("first", dist.Normal(0.0, 1.0))
        sample("broken", dist.Normal(0.0, -1.0))

    with pytest.raises(ValueError) as info:
        trace(seed(model, 0)).get_trace()
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "scale" in str(info.value) and "first" in notes and "Normal" in notes


def test_handler_arguments_are_checked():
    with pytest.raises(ValueError, match="factor"):
        scale(chain, -1.0)
    with pytest.raises(TypeError, match="mask"):
        mask(chain, np.array([1.0]))
    with pytest.raises(TypeError, match="rng_seed"):
        seed(chain, 0.5)
    with pytest.raises(ValueError, match="subsample_size"):
        plate("p", 3, subsample_size=5)
