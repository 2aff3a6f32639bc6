"""Flat buffers and the Adam / SGD steps on them, against straightforward per-array references."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppl.optim import SGD, Adam, Flat, ravel

START = {"a": np.array([0.5, -2.0]), "net": {"b": np.array([[1.0, 2.0]]), "W": np.array([[0.3], [-0.7], [1.1]])}}
TARGET = {"a": 3.0, "b": -1.0, "W": 0.25}
CURVATURE = {"a": 2.0, "b": 4.0, "W": 0.5}


def quadratic_grads(leaves):
    """Gradient of sum_k c_k |x_k - t_k|^2 / 2, per array (leaves keyed by their last name)."""
    return {k: CURVATURE[k] * (x - TARGET[k]) for k, x in leaves.items()}


def as_tree(leaves):
    return {"a": leaves["a"], "net": {"b": leaves["b"], "W": leaves["W"]}}


def reference_adam(steps, lr, b1=0.9, b2=0.999, eps=1e-8, clip=None):
    """Adam written the textbook way: one array at a time, m_hat and v_hat spelled out."""
    x = {"a": START["a"].copy(), "b": START["net"]["b"].copy(), "W": START["net"]["W"].copy()}
    m = {k: np.zeros_like(v) for k, v in x.items()}
    v = {k: np.zeros_like(val) for k, val in x.items()}
    clipped = 0
    for t in range(1, steps + 1):
        g = quadratic_grads(x)
        if clip is not None:
            norm = np.sqrt(sum(np.sum(gi**2) for gi in g.values()))
            clipped += norm > clip
            g = {k: gi * min(1.0, clip / norm) for k, gi in g.items()}
        for k in x:
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
            m_hat, v_hat = m[k] / (1 - b1**t), v[k] / (1 - b2**t)
            x[k] = x[k] - lr * m_hat / (np.sqrt(v_hat) + eps)
    return x, clipped


def run_flat(opt, steps):
    flat = ravel(START)
    state = opt.init(flat.buffer)
    for _ in range(steps):
        tree = flat.unravel()
        leaves = {"a": tree["a"], "b": tree["net"]["b"], "W": tree["net"]["W"]}
        state = opt.step(flat.buffer, flat.ravel_like(as_tree(quadratic_grads(leaves))), state)
    return flat, state


def assert_matches(flat, expected):
    tree = flat.unravel()
    for got, want in [(tree["a"], expected["a"]), (tree["net"]["b"], expected["b"]), (tree["net"]["W"], expected["W"])]:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kwargs", [{}, {"clip_norm": 8.0}, {"betas": (0.5, 0.9), "eps": 1e-3}])
def test_adam_matches_per_array_reference(kwargs):
    flat, state = run_flat(Adam(0.1, **kwargs), 25)
    b1, b2 = kwargs.get("betas", (0.9, 0.999))
    expected, clipped = reference_adam(25, 0.1, b1, b2, kwargs.get("eps", 1e-8), kwargs.get("clip_norm"))
    assert_matches(flat, expected)
    assert int(state["step"]) == 25 and state["step"].dtype == np.int64
    if "clip_norm" in kwargs:
        assert 0 < clipped < 25  # the clip bit on some steps and not others


def reference_sgd(steps, lr, momentum, clip=None):
    x = {"a": START["a"].copy(), "b": START["net"]["b"].copy(), "W": START["net"]["W"].copy()}
    u = {k: np.zeros_like(v) for k, v in x.items()}
    for _ in range(steps):
        g = quadratic_grads(x)
        if clip is not None:
            norm = np.sqrt(sum(np.sum(gi**2) for gi in g.values()))
            g = {k: gi * min(1.0, clip / norm) for k, gi in g.items()}
        for k in x:
            u[k] = momentum * u[k] + g[k]
            x[k] = x[k] - lr * u[k]
    return x


@pytest.mark.parametrize("momentum, clip", [(0.0, None), (0.9, None), (0.5, 1.0)])
def test_sgd_matches_per_array_reference(momentum, clip):
    flat, state = run_flat(SGD(0.05, momentum=momentum, clip_norm=clip), 30)
    assert_matches(flat, reference_sgd(30, 0.05, momentum, clip))
    assert int(state["step"]) == 30


def test_clipped_step_has_length_lr_times_clip_norm():
    flat = ravel({"x": np.zeros(4)})
    grad = np.array([3.0, -4.0, 12.0, 0.0])  # norm 13
    SGD(0.1, clip_norm=2.0).step(flat.buffer, grad, SGD(0.1).init(flat.buffer))
    np.testing.assert_allclose(flat.buffer, -0.1 * 2.0 * grad / 13.0, rtol=1e-15)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 20), st.integers(0, 2**32 - 1), st.floats(1e-4, 1.0))
def test_adam_first_step_is_lr_times_sign(n, seed, lr):
    """At t = 1, m_hat = g and v_hat = g^2 exactly, so the step is -lr g / (|g| + eps)."""
    grad = np.random.default_rng(seed).normal(size=n)
    flat = ravel({"x": np.zeros(n)})
    opt = Adam(lr)
    opt.step(flat.buffer, grad, opt.init(flat.buffer))
    np.testing.assert_allclose(flat.buffer, -lr * grad / (np.abs(grad) + 1e-8), rtol=1e-12)


def test_adam_minimises_a_convex_quadratic():
    """f(x) = (x - c)' A (x - c) / 2 with A positive definite has its minimum at c."""
    rng = np.random.default_rng(3)
    q = rng.normal(size=(5, 5))
    a, c = q @ q.T + 0.5 * np.eye(5), rng.normal(size=5)
    flat = ravel({"x": np.zeros(5)})
    opt = Adam(0.05)
    state = opt.init(flat.buffer)
    for _ in range(3000):
        state = opt.step(flat.buffer, a @ (flat.buffer - c), state)
    np.testing.assert_allclose(flat.buffer, c, atol=1e-5)


@pytest.mark.parametrize("opt", [Adam(0.05), SGD(0.05, momentum=0.9)], ids=["adam", "sgd"])
def test_float32_buffer_stays_float32(opt):
    flat = ravel({"x": np.zeros(3, np.float32), "y": {"z": np.ones((2, 2), np.float32)}})
    assert flat.buffer.dtype == np.float32
    state = opt.init(flat.buffer)
    for _ in range(300):
        state = opt.step(flat.buffer, 2.0 * (flat.buffer.astype(np.float64) - 1.5), state)  # float64 gradient
    assert flat.buffer.dtype == np.float32
    assert all(v.dtype == np.float32 for k, v in state.items() if k != "step")
    np.testing.assert_allclose(flat.buffer, 1.5, atol=2e-2)


def test_flat_layout_sorted_paths_offsets_and_views():
    flat = ravel(START)
    assert flat.paths == [("a",), ("net", "W"), ("net", "b")]
    assert flat.shapes == [(2,), (3, 1), (1, 2)]
    assert flat.offsets == [0, 2, 5]
    assert flat.buffer.flags.c_contiguous and flat.buffer.shape == (7,)
    np.testing.assert_array_equal(flat.buffer, [0.5, -2.0, 0.3, -0.7, 1.1, 1.0, 2.0])
    views, tree = flat.views(), flat.unravel()
    assert all(np.shares_memory(v, flat.buffer) for v in views)
    START["a"][0] = 99.0  # ravel copied the arrays: changing the input does nothing
    try:
        assert flat.buffer[0] == 0.5
    finally:
        START["a"][0] = 0.5
    flat.buffer += 1.0
    np.testing.assert_allclose(tree["net"]["W"], [[1.3], [0.3], [2.1]], rtol=1e-15)  # views, not copies
    opt = Adam(0.01)
    opt.step(flat.buffer, np.ones(7), opt.init(flat.buffer))
    np.testing.assert_allclose(tree["a"], [1.49, -1.01])  # an optimizer step shows through the dict


def test_unravel_and_ravel_like_on_another_vector():
    flat = ravel(START)
    other = np.arange(7.0)
    tree = flat.unravel(other)
    np.testing.assert_array_equal(tree["net"]["b"], [[5.0, 6.0]])
    assert np.shares_memory(tree["net"]["W"], other)
    np.testing.assert_array_equal(flat.ravel_like(tree), other)
    with pytest.raises(ValueError, match="length 7"):
        flat.unravel(np.zeros(6))


def test_ravel_like_names_a_mismatched_leaf():
    flat = ravel(START)
    with pytest.raises(ValueError, match=r"'net/W' has shape \(3,\)"):
        flat.ravel_like({"a": np.zeros(2), "net": {"b": np.zeros((1, 2)), "W": np.zeros(3)}})
    with pytest.raises(ValueError, match=r"missing \['net/b'\]"):
        flat.ravel_like({"a": np.zeros(2), "net": {"W": np.zeros((3, 1))}})


def test_ravel_dtype_and_layout_key():
    assert ravel({"a": np.zeros(2, np.float32), "b": np.zeros(1, np.float32)}).buffer.dtype == np.float32
    assert ravel({"a": np.zeros(2, np.float32), "b": np.zeros(1)}).buffer.dtype == np.float64
    assert ravel({"a": np.arange(3)}).buffer.dtype == np.float64
    key = ravel(START).layout_key()
    assert key == ravel({k: v for k, v in START.items()}).layout_key()
    assert key != ravel({**START, "a": np.zeros(3)}).layout_key()
    assert key != ravel({"a": START["a"], "net": {"b": START["net"]["b"], "V": START["net"]["W"]}}).layout_key()
    assert key != Flat(ravel(START).paths, ravel(START).shapes, np.zeros(7, np.float32)).layout_key()
    with pytest.raises(TypeError, match="'net/b'"):
        ravel({"net": {"b": "weights"}})


def test_state_round_trips_through_npz_exactly(tmp_path):
    flat = ravel(START)
    opt = Adam(0.1)
    state = opt.init(flat.buffer)
    for _ in range(3):
        state = opt.step(flat.buffer, np.sin(flat.buffer), state)
    np.savez(tmp_path / "s.npz", **state)
    loaded = dict(np.load(tmp_path / "s.npz"))
    assert loaded.keys() == state.keys()
    assert all(np.array_equal(loaded[k], state[k]) and loaded[k].dtype == state[k].dtype for k in state)
    resumed = flat.buffer.copy()
    for _ in range(3):  # continuing from the loaded state is bit-identical
        state = opt.step(flat.buffer, np.sin(flat.buffer), state)
        loaded = opt.step(resumed, np.sin(resumed), loaded)
    assert np.array_equal(flat.buffer, resumed) and all(np.array_equal(loaded[k], state[k]) for k in state)


def test_update_on_nested_dicts_matches_step():
    grads = as_tree(quadratic_grads({"a": START["a"], "b": START["net"]["b"], "W": START["net"]["W"]}))
    for opt in (Adam(0.1), SGD(0.1, momentum=0.5)):
        params, state = START, opt.init(START)
        for _ in range(3):
            params, state = opt.update(params, grads, state)
        flat = ravel(START)
        flat_state = opt.init(flat.buffer)
        for _ in range(3):
            flat_state = opt.step(flat.buffer, flat.ravel_like(grads), flat_state)
        assert np.array_equal(ravel(params).buffer, flat.buffer)
        assert START["a"][0] == 0.5  # update leaves its input alone


@pytest.mark.parametrize("make, name", [
    (lambda: Adam(0.0), "lr"), (lambda: Adam(-1.0), "lr"), (lambda: Adam(np.inf), "lr"),
    (lambda: Adam(float("nan")), "lr"), (lambda: Adam("0.1"), "lr"), (lambda: SGD(0.0), "lr"),
    (lambda: Adam(0.1, eps=0.0), "eps"), (lambda: Adam(0.1, betas=(1.0, 0.9)), "betas"),
    (lambda: Adam(0.1, betas=(0.9, -0.1)), "betas"), (lambda: Adam(0.1, betas=(0.9,)), "betas"),
    (lambda: Adam(0.1, clip_norm=0.0), "clip_norm"), (lambda: SGD(0.1, clip_norm=-1.0), "clip_norm"),
    (lambda: SGD(0.1, momentum=-0.5), "momentum"), (lambda: SGD(0.1, momentum=float("nan")), "momentum"),
])
def test_bad_arguments_raise_value_error_naming_them(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_step_names_a_mismatched_gradient_or_state():
    flat = ravel(START)
    opt = Adam(0.1)
    state = opt.init(flat.buffer)
    with pytest.raises(ValueError, match=r"grad has shape \(6,\)"):
        opt.step(flat.buffer, np.zeros(6), state)
    with pytest.raises(ValueError, match=r"state\['m'\] has shape \(3,\)"):
        opt.step(flat.buffer, np.zeros(7), {**state, "m": np.zeros(3)})
    with pytest.raises(ValueError, match="state has no 'velocity'"):
        SGD(0.1).step(flat.buffer, np.zeros(7), state)
    with pytest.raises(TypeError, match="buffer must be a 1-D floating numpy array"):
        opt.init([0.0, 1.0])


@pytest.mark.parametrize("into_out", [False, True], ids=["in-place", "out"])
def test_blocked_steps_match_one_pass_formula_across_block_edges(into_out):
    """A buffer several blocks long (and not a multiple of one) gets the same update as the
    whole-array formula, entry by entry; with ``out`` the old buffer is left as it was."""
    from ppl import optim

    n = 2 * optim.BLOCK + 12345
    rng = np.random.default_rng(0)
    x0, g1, g2 = rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(n)
    adam, sgd = Adam(0.01), SGD(0.01, momentum=0.9)
    x_adam, x_sgd = x0.copy(), x0.copy()
    s_adam, s_sgd = adam.init(x_adam), sgd.init(x_sgd)
    m = v = u = np.zeros(n)
    expect_adam, expect_sgd = x0.copy(), x0.copy()
    for t, g in enumerate((g1, g2), start=1):
        out_adam, out_sgd = (np.empty(n), np.empty(n)) if into_out else (None, None)
        before = x_adam.copy()
        s_adam = adam.step(x_adam, g, s_adam, out=out_adam)
        s_sgd = sgd.step(x_sgd, g, s_sgd, out=out_sgd)
        if into_out:
            np.testing.assert_array_equal(x_adam, before)
            x_adam, x_sgd = out_adam, out_sgd
        m, v, u = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g, 0.9 * u + g
        expect_adam = expect_adam - 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        expect_sgd = expect_sgd - 0.01 * u
    np.testing.assert_allclose(x_adam, expect_adam, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x_sgd, expect_sgd, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s_adam["m"], m, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(s_adam["v"], v, rtol=1e-12, atol=1e-15)
