"""The tiny MLP: shapes, a plain numpy reference forward pass, gradients by finite differences, init statistics."""
import autograd
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from ppl import nn

REFERENCE = {
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "relu": lambda x: np.maximum(x, 0),
    "tanh": np.tanh,
    "softplus": lambda x: np.logaddexp(0, x),
    "linear": lambda x: x,
    None: lambda x: x,
}


def reference_forward(params, x, activation, final):
    """Layer by layer with einsum, independent of kernels.dense."""
    n_layers = len(params) // 2
    for i in range(n_layers):
        x = np.einsum("...i,ij->...j", x, params[f"W{i}"]) + params[f"b{i}"]
        x = REFERENCE[activation if i < n_layers - 1 else final](x)
    return x


def with_random_biases(params, seed=1):
    """init gives zero biases; the tests want them to matter."""
    rng = np.random.default_rng(seed)
    return {k: (rng.normal(size=v.shape).astype(v.dtype) if k.startswith("b") else v) for k, v in params.items()}


def test_keys_and_shapes():
    params = nn.init(0, [784, 200, 200, 4])
    assert list(params) == ["W0", "b0", "W1", "b1", "W2", "b2"]
    assert [params[k].shape for k in params] == [(784, 200), (200,), (200, 200), (200,), (200, 4), (4,)]
    assert all(not params[k].any() for k in ("b0", "b1", "b2"))


def test_keys_sort_in_layer_order_past_ten_layers():
    params = nn.init(0, [3] * 12 + [2])
    weights = sorted(k for k in params if k.startswith("W"))
    assert weights == [f"W{i:02d}" for i in range(12)]
    assert params[weights[-1]].shape == (3, 2)


@settings(max_examples=20, deadline=None)
@given(lead=st.lists(st.integers(1, 4), max_size=3), activation=st.sampled_from(["elu", "relu", "tanh", "softplus"]),
       final=st.sampled_from([None, "tanh", "softplus"]))
def test_apply_matches_reference_with_any_leading_axes(lead, activation, final):
    params = with_random_biases(nn.init(np.random.default_rng(2), [5, 7, 6, 3], activation=activation))
    x = np.random.default_rng(3).normal(size=tuple(lead) + (5,))
    out = nn.apply(params, x, activation=activation, final=final)
    assert out.shape == tuple(lead) + (3,)
    np.testing.assert_allclose(out, reference_forward(params, x, activation, final), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", ["elu", "relu", "tanh", "softplus"])
def test_gradient_of_every_weight_matches_finite_differences(activation):
    params = with_random_biases(nn.init(4, [3, 4, 2], activation=activation))
    x = np.random.default_rng(5).normal(size=(2, 3, 3))
    readout = np.random.default_rng(6).normal(size=(2, 3, 2))

    def loss(p):
        return np.sum(nn.apply(p, x, activation=activation, final="softplus") * readout)

    grads = autograd.grad(loss)(params)
    h = 1e-6
    for key, value in params.items():
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            bumped_up, bumped_down = dict(params), dict(params)
            bumped_up[key] = value.copy()
            bumped_up[key][index] += h
            bumped_down[key] = value.copy()
            bumped_down[key][index] -= h
            numeric[index] = (loss(bumped_up) - loss(bumped_down)) / (2 * h)
        np.testing.assert_allclose(grads[key], numeric, rtol=1e-5, atol=1e-7, err_msg=key)


def test_gradient_with_respect_to_the_input():
    params = with_random_biases(nn.init(7, [3, 5, 2]))
    x = np.random.default_rng(8).normal(size=(4, 3))
    g = autograd.grad(lambda x: np.sum(np.sin(nn.apply(params, x))))(x)
    h = 1e-6
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[index] = h
        numeric[index] = (np.sum(np.sin(nn.apply(params, x + e))) - np.sum(np.sin(nn.apply(params, x - e)))) / (2 * h)
    np.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("activation, variance", [("elu", lambda i, o: 2 / (i + o)),
                                                   ("tanh", lambda i, o: 2 / (i + o)),
                                                   ("relu", lambda i, o: 2 / i)])
def test_init_statistics(activation, variance):
    n_in, n_out = 600, 400
    w = nn.init(np.random.default_rng(9), [n_in, n_out], activation=activation)["W0"]
    assert abs(w.var() / variance(n_in, n_out) - 1) < 0.02
    assert abs(w.mean()) < 0.01 * np.sqrt(variance(n_in, n_out))
    bound = np.sqrt(3 * variance(n_in, n_out))  # uniform on (-a, a) has variance a^2 / 3
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.999 * bound


def test_seed_and_generator_are_reproducible():
    a = nn.init(11, [4, 3])
    b = nn.init(np.random.default_rng(11), [4, 3])
    np.testing.assert_array_equal(a["W0"], b["W0"])


def test_float32_stays_float32_forward_and_backward():
    params = with_random_biases(nn.init(0, [6, 5, 3], dtype=np.float32))
    assert all(v.dtype == np.float32 for v in params.values())
    x = np.random.default_rng(1).normal(size=(2, 4, 6)).astype(np.float32)
    for activation in ["elu", "relu", "tanh", "softplus"]:
        out = nn.apply(params, x, activation=activation, final="softplus")
        assert out.dtype == np.float32, activation
        grads = autograd.grad(lambda p: np.sum(nn.apply(p, x, activation=activation) ** 2))(params)
        assert all(g.dtype == np.float32 for g in grads.values()), activation
        gx = autograd.grad(lambda x: np.sum(nn.apply(params, x, activation=activation)))(x)
        assert gx.dtype == np.float32, activation


def test_bad_activation_is_named_with_the_allowed_ones():
    params = nn.init(0, [2, 2])
    with pytest.raises(ValueError, match="'gelu'.*elu.*relu.*softplus.*tanh"):
        nn.apply(params, np.ones(2), activation="gelu")
    with pytest.raises(ValueError, match="'sigmoidish'"):
        nn.apply(params, np.ones(2), final="sigmoidish")
    with pytest.raises(ValueError, match="'swish'"):
        nn.init(0, [2, 2], activation="swish")


def test_bad_sizes_and_input_width_are_named():
    with pytest.raises(ValueError, match="sizes"):
        nn.init(0, [5])
    with pytest.raises(ValueError, match="sizes"):
        nn.init(0, [5, 0, 2])
    params = nn.init(0, [5, 2])
    with pytest.raises(ValueError, match=r"shape \(3, 4\).*n_in = 5"):
        nn.apply(params, np.ones((3, 4)))
