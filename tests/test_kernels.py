"""Fused kernels and the flat-buffer optimizers against autograd's own gradients, finite differences,
and a per-array reference."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from autograd.test_util import check_grads

from ppl import kernels
from ppl.optim import SGD, Adam, ravel

RNG = np.random.default_rng(0)
LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)

REFERENCES = {
    "normal_log_prob": (kernels.normal_log_prob,
                        lambda v, m, s: -0.5 * ((v - m) / s) ** 2 - anp.log(s) - LOG_SQRT_2PI,
                        lambda: (RNG.normal(size=(4, 3)), RNG.normal(size=(1, 3)), RNG.uniform(0.5, 2, size=(4, 1)))),
    "normal_log_prob_scalars": (kernels.normal_log_prob,
                                lambda v, m, s: -0.5 * ((v - m) / s) ** 2 - anp.log(s) - LOG_SQRT_2PI,
                                lambda: (RNG.normal(size=(5,)), np.array(0.3), np.array(1.7))),
    "bernoulli_logits_log_prob": (kernels.bernoulli_logits_log_prob,
                                  lambda x, l: x * l - anp.logaddexp(0.0, l),
                                  lambda: ((RNG.random((4, 3)) < 0.5).astype(float), RNG.normal(size=(4, 3)) * 3)),
    "bernoulli_fractional": (kernels.bernoulli_logits_log_prob,
                             lambda x, l: x * l - anp.logaddexp(0.0, l),
                             lambda: (RNG.random((4, 3)), RNG.normal(size=(1, 3)))),
    "dense": (kernels.dense, lambda x, w, b: anp.dot(x, w) + b,
              lambda: (RNG.normal(size=(2, 5, 4)), RNG.normal(size=(4, 3)), RNG.normal(size=(3,)))),
    "elu": (kernels.elu, lambda x: anp.where(x > 0, x, anp.exp(x) - 1), lambda: (RNG.normal(size=(6, 2)),)),
    "softplus": (kernels.softplus, lambda x: anp.logaddexp(0.0, x), lambda: (RNG.normal(size=(6, 2)) * 5,)),
    "sigmoid": (kernels.sigmoid, lambda x: 1 / (1 + anp.exp(-x)), lambda: (RNG.normal(size=(6, 2)) * 5,)),
    "normal_rsample": (kernels.normal_rsample, lambda m, s, e: m + s * e,
                       lambda: (RNG.normal(size=(3,)), RNG.uniform(0.5, 2, size=(2, 1)), RNG.normal(size=(2, 3)))),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_kernel_matches_autograd_and_finite_differences(name):
    kernel, reference, make_args = REFERENCES[name]
    args = make_args()
    assert np.allclose(kernel(*args), reference(*args), rtol=1e-12, atol=1e-12)
    weights = RNG.normal(size=np.shape(reference(*args)))
    for i in range(len(args)):
        def linear(a, i=i, f=kernel):
            full = list(args)
            full[i] = a
            return anp.sum(weights * f(*full))

        def reference_linear(a, i=i):
            full = list(args)
            full[i] = a
            return anp.sum(weights * reference(*full))

        ours, theirs = autograd.grad(linear)(args[i]), autograd.grad(reference_linear)(args[i])
        assert np.shape(ours) == np.shape(args[i])
        assert np.allclose(ours, theirs, rtol=1e-10, atol=1e-12)
        if name != "bernoulli_logits_log_prob" or i == 1:  # binary data: no finite differences in the value
            check_grads(linear, modes=["rev"], order=1)(args[i])


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_kernel_keeps_float32(name):
    kernel, _, make_args = REFERENCES[name]
    args = [np.asarray(a, np.float32) for a in make_args()]
    out = kernel(*args)
    assert out.dtype == np.float32
    for i in range(len(args)):
        def total(a, i=i):
            full = list(args)
            full[i] = a
            return anp.sum(kernel(*full))

        assert autograd.grad(total)(args[i]).dtype == np.float32


def test_extreme_logits():
    logits = np.array([800.0, -800.0, 800.0, -800.0])
    x = np.array([1.0, 0.0, 0.0, 1.0])
    assert np.allclose(kernels.bernoulli_logits_log_prob(x, logits), [0.0, 0.0, -800.0, -800.0])
    g = autograd.grad(lambda l: anp.sum(kernels.bernoulli_logits_log_prob(x, l)))(logits)
    assert np.allclose(g, [0.0, 0.0, -1.0, 1.0])
    assert np.allclose(kernels.softplus(logits), [800.0, 0.0, 800.0, 0.0])


# ---------------------------------------------------------------- optimizers


def reference_adam(params, grads_fn, steps, lr=0.1, b1=0.9, b2=0.999, eps=1e-8, clip=None):
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    params = [p.copy() for p in params]
    for t in range(1, steps + 1):
        grads = grads_fn(params)
        if clip is not None:
            norm = np.sqrt(sum(np.sum(g**2) for g in grads))
            grads = [g * min(1.0, clip / norm) for g in grads]
        for p, g, mi, vi in zip(params, grads, m, v):
            mi[...] = b1 * mi + (1 - b1) * g
            vi[...] = b2 * vi + (1 - b2) * g * g
            p -= lr * (mi / (1 - b1**t)) / (np.sqrt(vi / (1 - b2**t)) + eps)
    return params


def quadratic_grads(params):
    a, b = params
    return [2 * (a - 3.0), 4 * (b + 1.0)]


@pytest.mark.parametrize("clip", [None, 0.5])
def test_adam_matches_reference(clip):
    start = {"a": np.array([0.5, -2.0]), "net": {"b": np.array([[1.0, 2.0]])}}
    flat = ravel(start)
    opt = Adam(0.1, clip_norm=clip)
    state = opt.init(flat.buffer)
    for _ in range(25):
        tree = flat.unravel()
        grads = flat.ravel_like({"a": 2 * (tree["a"] - 3.0), "net": {"b": 4 * (tree["net"]["b"] + 1.0)}})
        state = opt.step(flat.buffer, grads, state)
    expected = reference_adam([start["a"], start["net"]["b"]], quadratic_grads, 25, clip=clip)
    assert np.allclose(flat.unravel()["a"], expected[0], rtol=1e-12)
    assert np.allclose(flat.unravel()["net"]["b"], expected[1], rtol=1e-12)
    assert int(state["step"]) == 25


def test_sgd_momentum_matches_reference():
    x = np.array([1.0, -1.0])
    flat = ravel({"x": x})
    opt = SGD(0.05, momentum=0.9)
    state = opt.init(flat.buffer)
    ref, velocity = x.copy(), np.zeros(2)
    for _ in range(30):
        grad = 2 * (flat.buffer - 3.0)
        state = opt.step(flat.buffer, grad, state)
        velocity = 0.9 * velocity + 2 * (ref - 3.0)
        ref = ref - 0.05 * velocity
    assert np.allclose(flat.buffer, ref, rtol=1e-12)


def test_adam_minimises_quadratic_and_keeps_float32():
    flat = ravel({"x": np.zeros(3, np.float32)})
    opt = Adam(0.05)
    state = opt.init(flat.buffer)
    for _ in range(2000):
        state = opt.step(flat.buffer, 2 * (flat.buffer - np.float32(1.5)), state)
    assert flat.buffer.dtype == np.float32 and state["m"].dtype == np.float32
    assert np.allclose(flat.buffer, 1.5, atol=1e-3)


def test_views_and_state_round_trip(tmp_path):
    flat = ravel({"w": np.ones((2, 2)), "b": np.zeros(3)})
    views = flat.unravel()
    flat.buffer += 1.0
    assert np.all(views["w"] == 2.0) and np.all(views["b"] == 1.0)  # views, not copies
    opt = Adam(0.01)
    state = opt.step(flat.buffer, np.ones_like(flat.buffer), opt.init(flat.buffer))
    np.savez(tmp_path / "s.npz", **state)
    loaded = dict(np.load(tmp_path / "s.npz"))
    assert all(np.array_equal(loaded[k], state[k]) for k in state)


def test_bad_optimizer_arguments_name_them():
    for kwargs, name in [({"lr": 0.0}, "lr"), ({"lr": -1.0}, "lr"), ({"lr": np.inf}, "lr"),
                         ({"lr": 0.1, "eps": 0.0}, "eps"), ({"lr": 0.1, "betas": (1.0, 0.9)}, "betas"),
                         ({"lr": 0.1, "clip_norm": -1.0}, "clip_norm")]:
        with pytest.raises(ValueError, match=name):
            Adam(**kwargs)
    with pytest.raises(ValueError, match="momentum"):
        SGD(0.1, momentum=-0.5)
