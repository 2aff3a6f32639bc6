"""The course's variational autoencoder on binarized MNIST, as two plain ppl functions.

    z ~ Normal(0, I)                     (a diagonal MVN, dimension 2 by default)
    x ~ Bernoulli(logits = decoder(z))   decoder 2-200-200-784, ELU
    q(z | x) = Normal(loc, 1e-3 + softplus(s)),  (loc, s) = encoder(x), 784-200-200-4

Trained by the same SVI core as everything else, in float32, with the
course's loss -(log joint) - entropy(q) (``--analytic-kl`` for the
E[log p(x|z)] - KL form), batch 64, Adam 1e-3, 50 epochs, reshuffled every
epoch. Afterwards: the test ELBO, the importance-weighted test
log-likelihood, and the course's figures, made through the handlers
(``replace`` the model's z, run it forward).

    python examples/vae_mnist.py [--epochs 50] [--latent-dim 2] [--limit N] [--out figures] [--resume]
"""
import argparse
import os
import sys
import time

import numpy as np

import ppl
import ppl.distributions as dist
from ppl import deterministic, kernels, nn, observe, param, plate, replace, sample, seed, trace
from ppl.datasets import load_mnist
from ppl.infer import SVI, Trace_ELBO, TraceMeanField_ELBO, log_evidence
from ppl.files import atomic_write
from ppl.optim import Adam

F32 = np.float32


def vae_model(x=None, num_data=None, batch_size=None, latent_dim=2, indices=None):
    """p(x, z): the decoder's weights are params; x observed when given, drawn when not.

    ``indices`` are the minibatch's positions in the training set (recorded by the plate; drawn if not given).
    """
    decoder = param("decoder", lambda rng: nn.init(rng, [latent_dim, 200, 200, 784], F32))
    size = len(x) if x is not None else batch_size
    with plate("data", num_data or size, subsample_size=size, subsample=indices):
        z = sample("z", dist.MultivariateNormalDiag(np.zeros(latent_dim, F32), np.ones(latent_dim, F32)))
        logits = nn.apply(decoder, z)
        if x is None:
            deterministic("probs", kernels.sigmoid(logits))
            return sample("x", dist.Bernoulli(logits=logits).to_event(1))
        return observe("x", dist.Bernoulli(logits=logits).to_event(1), x)


def vae_guide(x, num_data=None, batch_size=None, latent_dim=2, indices=None):
    """q(z | x): the encoder's weights are params; it outputs each image's loc and scale."""
    encoder = param("encoder", lambda rng: nn.init(rng, [784, 200, 200, 2 * latent_dim], F32))
    with plate("data", num_data or len(x), subsample_size=len(x), subsample=indices):
        out = nn.apply(encoder, x)
        loc, scale = out[..., :latent_dim], 1e-3 + kernels.softplus(out[..., latent_dim:])
        return sample("z", dist.MultivariateNormalDiag(loc, scale))


def decode(params, z, latent_dim):
    """Bernoulli means of the images the model generates with its z replaced by ``z``."""
    generate = replace(vae_model, {"decoder": params["decoder"], "z": z})
    return trace(seed(generate, 0)).get_trace(batch_size=len(z), latent_dim=latent_dim)["probs"].value


def encode(params, x, latent_dim, rng_seed=0):
    """A draw of z from the encoder for each image, and the encoder's means."""
    tr = trace(seed(replace(vae_guide, {"encoder": params["encoder"]}), rng_seed)).get_trace(x, latent_dim=latent_dim)
    return tr["z"].value, tr["z"].fn.loc


def batches(num_data, batch_size, epoch, rng_seed):
    """Shuffled minibatch indices for one epoch, fixed by (seed, epoch): a resumed run sees the same order."""
    order = np.random.default_rng(ppl.fold_in(rng_seed, "shuffle", epoch)).permutation(num_data)
    return order[: num_data // batch_size * batch_size].reshape(-1, batch_size)  # drop the remainder


def train(args, x_train):
    kwargs = {"num_data": len(x_train), "latent_dim": args.latent_dim}
    loss = TraceMeanField_ELBO() if args.analytic_kl else Trace_ELBO(entropy="analytic")
    svi = SVI(vae_model, vae_guide, Adam(args.lr), loss)
    state = svi.init(args.seed, x_train[: args.batch_size], **kwargs)
    checkpoint = os.path.join(args.out, f"vae_z{args.latent_dim}.npz")
    epoch_losses = []
    if args.resume and os.path.exists(checkpoint):
        epoch_losses = list(state.restore(checkpoint))
        print(f"resumed from {checkpoint} after {len(epoch_losses)} epochs")
    from tqdm.auto import tqdm

    for epoch in range(len(epoch_losses), args.epochs):
        steps = batches(len(x_train), args.batch_size, epoch, args.seed)
        losses = np.empty(len(steps))
        bar = tqdm(steps, desc=f"epoch {epoch + 1}/{args.epochs}", disable=not args.progress, mininterval=0.5)
        for i, idx in enumerate(bar):
            state, losses[i] = svi.update(state, x_train[idx], indices=idx, **kwargs)
            if i % 50 == 0:
                bar.set_postfix(loss=f"{losses[i] / len(x_train):.2f}", refresh=False)
        epoch_losses.append(float(losses.mean() / len(x_train)))
        print(f"epoch {epoch + 1:3d}  mean training loss {epoch_losses[-1]:8.3f} nats"
              f"  (last batch {losses[-1] / len(x_train):8.3f})", flush=True)
        os.makedirs(args.out, exist_ok=True)
        state.save(checkpoint, losses=epoch_losses)
    return svi, state, epoch_losses


def test_elbo(svi, state, x_test, latent_dim, rng_seed):
    """The mean negative ELBO per test image (nats), on the full-data scale of the test set."""
    return svi.evaluate(state, x_test, num_data=len(x_test), latent_dim=latent_dim, rng_seed=rng_seed) / len(x_test)


def bernoulli_baseline(x_train, x_test):
    """Independent pixels with the training set's mean: the NLL a VAE must beat by far."""
    p = np.clip(x_train.mean(0), 1e-3, 1 - 1e-3)
    return float(-(x_test @ np.log(p) + (1 - x_test) @ np.log1p(-p)).mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latent-dim", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="figures")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--test-limit", type=int, default=1000, help="test images for the IWAE bound")
    parser.add_argument("--full-test", action="store_true", help="the IWAE bound on all 10000 test images")
    parser.add_argument("--iwae-samples", type=int, default=5000)
    parser.add_argument("--analytic-kl", action="store_true", help="E[log p(x|z)] - KL(q || p) in closed form")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("--no-figures", dest="figures", action="store_false")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    x_train, _ = load_mnist("train")
    x_test, y_test = load_mnist("test")
    x_train = x_train[: args.limit] if args.limit else x_train
    print(f"training on {len(x_train)} images, z of dimension {args.latent_dim}, {args.epochs} epochs")

    svi, state, epoch_losses = train(args, x_train)
    params = svi.get_params(state)
    print("\nepoch  mean training loss (nats)")
    for i, value in enumerate(epoch_losses):
        print(f"{i + 1:5d}  {value:8.3f}")

    elbo = test_elbo(svi, state, x_test, args.latent_dim, ppl.fold_in(args.seed, "test"))
    subset = x_test if args.full_test else x_test[: args.test_limit]
    iwae = -log_evidence(vae_model, vae_guide, params, subset, num_data=len(subset), latent_dim=args.latent_dim,
                         num_samples=args.iwae_samples, rng_seed=ppl.fold_in(args.seed, "iwae"),
                         data_plate="data") / len(subset)
    baseline = bernoulli_baseline(x_train, x_test)
    print(f"\ntest negative ELBO          {elbo:8.3f} nats per image (10000 images)")
    print(f"test NLL, IWAE K={args.iwae_samples:<5d}    {iwae:8.3f} nats per image ({len(subset)} images)")
    print(f"independent-pixel baseline  {baseline:8.3f} nats per image")

    figures = save_figures(args, params, x_test, y_test, epoch_losses) if args.figures else []
    if figures:
        print(f"figures: {', '.join(figures)}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return {"epoch_losses": epoch_losses, "test_elbo": elbo, "test_iwae": iwae, "baseline": baseline,
            "figures": figures, "params": params, "state": state}


def mosaic(images, rows, cols, gap=2):
    """Lay ``rows * cols`` 28x28 images (flattened, row-major) out as one picture with white gaps."""
    tiles = np.zeros((rows, cols, 28 + gap, 28 + gap), images.dtype)
    tiles[:, :, :28, :28] = images[: rows * cols].reshape(rows, cols, 28, 28)
    return tiles.transpose(0, 2, 1, 3).reshape(rows * (28 + gap), cols * (28 + gap))[:-gap, :-gap]


def save_figures(args, params, x_test, y_test, epoch_losses):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    os.makedirs(args.out, exist_ok=True)
    paths, d = [], args.latent_dim
    prefix = os.path.join(args.out, f"vae_z{d}")

    def save(fig, name):
        path = f"{prefix}_{name}.png"
        with atomic_write(path, ".png.tmp") as f:  # a reader never sees half a file
            fig.savefig(f, format="png", dpi=80, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)

    def grid(images, rows, cols, size):
        # one imshow of a tiled mosaic: hundreds of subplots would cost seconds each figure
        fig, ax = plt.subplots(figsize=size)
        ax.imshow(mosaic(images, rows, cols), cmap="Greys", vmin=0, vmax=1)
        ax.axis("off")
        return fig

    rng = np.random.default_rng(args.seed)
    generated = decode(params, rng.standard_normal((64, d)).astype(F32), d)
    save(grid(generated, 4, 16, (16, 4)), "generated")

    z, _ = encode(params, x_test[:32], d, rng_seed=args.seed)
    recon = decode(params, z, d)
    pairs = np.stack([x_test[:32], recon], 1).reshape(64, 784)  # original, reconstruction, ...
    save(grid(pairs, 4, 16, (16, 4)), "reconstruction")

    if d == 2:
        n = 20
        inv_cdf = norm.ppf(np.linspace(0.1, 0.9, n)).astype(F32)
        z1, z2 = np.meshgrid(inv_cdf, inv_cdf, indexing="ij")  # the course's layout: z1 down the rows, z2 across
        manifold = decode(params, np.stack([z1.ravel(), z2.ravel()], 1), d)
        save(grid(manifold, n, n, (12, 12)), "manifold")
        _, means = encode(params, x_test, d)
        fig, ax = plt.subplots(figsize=(6, 5))
        points = ax.scatter(means[:, 0], means[:, 1], c=y_test, cmap="tab10", s=2)
        fig.colorbar(points, ax=ax, label="digit")
        ax.set_title("test set: encoder means")
        save(fig, "latent")

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(np.arange(1, len(epoch_losses) + 1), epoch_losses, "o-")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean training loss (nats)")
    save(fig, "loss")
    return paths


if __name__ == "__main__":
    main(sys.argv[1:])
