"""The course's VAE: its loss gradient, a quick training run with every figure, and bit-identical resumption."""
import os
import sys

import autograd
import numpy as np
import pytest

import ppl
from ppl import datasets
from ppl.infer import SVI, Trace_ELBO
from ppl.optim import Adam

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
import vae_mnist  # noqa: E402

HAVE_MNIST = all(datasets._find(stem, datasets.search_dirs()) for pair in datasets.FILES.values() for stem in pair)
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason="the MNIST IDX files are not in $PPL_DATA_DIR/mnist")


def test_vae_loss_gradient_against_finite_differences():
    """A tiny encoder/decoder in float64: the ELBO's gradient w.r.t. every weight, at fixed noise."""
    rng = np.random.default_rng(0)
    x = (rng.random((5, 784)) < 0.3).astype(float)
    params = {"decoder": ppl.nn.init(rng, [2, 8, 784], np.float64),
              "encoder": ppl.nn.init(rng, [784, 8, 4], np.float64)}

    def model(x):
        decoder = ppl.param("decoder", None)
        with ppl.plate("data", 5):
            z = ppl.sample("z", ppl.distributions.MultivariateNormalDiag(np.zeros(2), np.ones(2)))
            ppl.observe("x", ppl.distributions.Bernoulli(logits=ppl.nn.apply(decoder, z)).to_event(1), x)

    def guide(x):
        out = ppl.nn.apply(ppl.param("encoder", None), x)
        with ppl.plate("data", 5):
            ppl.sample("z", ppl.distributions.MultivariateNormalDiag(out[:, :2], 1e-3 + ppl.kernels.softplus(out[:, 2:])))

    elbo = Trace_ELBO(entropy="analytic")
    flat = ppl.optim.ravel(params)

    def loss(buffer):
        return elbo.loss(7, flat.unravel(buffer), model, guide, x)

    grad = autograd.grad(loss)(flat.buffer.copy())
    picks = np.random.default_rng(1).choice(flat.buffer.size, 25, replace=False)
    for i in picks:
        e = np.zeros_like(flat.buffer)
        e[i] = 1e-6
        fd = (loss(flat.buffer + e) - loss(flat.buffer - e)) / 2e-6
        assert np.isclose(grad[i], fd, rtol=1e-4, atol=1e-6)


def test_vae_step_is_float32():
    x = (np.random.default_rng(0).random((8, 784)) < 0.3).astype(np.float32)
    svi = SVI(vae_mnist.vae_model, vae_mnist.vae_guide, Adam(1e-3), Trace_ELBO(entropy="analytic"))
    state = svi.init(0, x, num_data=100)
    loss, grads = svi.loss_and_grads(state, x, num_data=100)
    assert np.asarray(loss).dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    assert state.flat.buffer.dtype == np.float32


@needs_mnist
def test_quick_run_writes_every_figure_and_learns(tmp_path):
    result = vae_mnist.main(["--limit", "2000", "--epochs", "1", "--batch-size", "8", "--iwae-samples", "50",
                             "--test-limit", "100", "--out", str(tmp_path), "--no-progress"])
    names = {os.path.basename(p) for p in result["figures"]}
    assert names == {f"vae_z2_{n}.png" for n in ("generated", "reconstruction", "manifold", "latent", "loss")}
    assert all(os.path.getsize(p) > 1000 for p in result["figures"])
    assert result["test_elbo"] < 200 and result["test_iwae"] < result["test_elbo"] + 1
    assert result["test_elbo"] < result["baseline"]


@needs_mnist
def test_resumed_run_matches_uninterrupted(tmp_path):
    common = ["--limit", "640", "--iwae-samples", "4", "--test-limit", "10", "--no-progress", "--no-figures"]
    straight = vae_mnist.main(common + ["--epochs", "2", "--out", str(tmp_path / "a")])
    vae_mnist.main(common + ["--epochs", "1", "--out", str(tmp_path / "b")])
    resumed = vae_mnist.main(common + ["--epochs", "2", "--out", str(tmp_path / "b"), "--resume"])
    assert np.array_equal(straight["state"].flat.buffer, resumed["state"].flat.buffer)
    assert straight["epoch_losses"] == resumed["epoch_losses"]
