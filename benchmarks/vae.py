"""The course VAE's training step, in four columns measured in one process (float32).

1. ppl: ``SVI.update`` on the example's ``vae_model`` / ``vae_guide`` (handlers, plates, traces);
2. same kernels: the same math written by hand on ``ppl.kernels`` / ``ppl.nn``, no handlers, value and
   gradients in one pass, the same flat Adam (the PPL's own overhead is 1 / 2);
3. plain autograd: the obvious version with ``anp.dot``, ``anp.logaddexp``, a dict of weights and a
   per-array Adam (the kernels' gain is 3 / 2);
4. matmul floor: the forward and backward matrix products alone, for the same shapes.

    python benchmarks/vae.py [--batch-sizes 64 1024] [--repeats 30] [--quality [--epochs 5] [--noise-seeds 2]]

``--quality`` then trains ppl's VAE and the plain autograd one for five epochs on the same minibatches
(needs MNIST, see ``ppl.datasets``) and prints both training losses per epoch and both test -ELBOs;
``--noise-seeds K`` adds K plain runs with other seeds, to show how far correct runs differ by chance.
"""
import argparse
import os
import platform
import sys
import time
import tracemalloc

import autograd
import autograd.numpy as anp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
import vae_mnist  # noqa: E402

from ppl import kernels, nn  # noqa: E402
from ppl.autodiff import value_and_grads  # noqa: E402
from ppl.infer import SVI, Trace_ELBO  # noqa: E402
from ppl.optim import Adam, ravel  # noqa: E402

F32, ZDIM, NUM_DATA = np.float32, 2, 60000
LOG_2PI = float(np.log(2 * np.pi))


def images(batch_size):
    return (np.random.default_rng(0).random((batch_size, 784)) < 0.13).astype(F32)


def ppl_step(x):
    svi = SVI(vae_mnist.vae_model, vae_mnist.vae_guide, Adam(1e-3), Trace_ELBO(entropy="analytic"))
    state = svi.init(0, x, num_data=NUM_DATA)
    indices = np.arange(len(x))  # the example hands each minibatch's indices to the plate
    return lambda: svi.update(state, x, num_data=NUM_DATA, indices=indices)


def initial_weights(seed=0):
    rng = np.random.default_rng(seed)
    return {"encoder": nn.init(rng, [784, 200, 200, 2 * ZDIM], F32), "decoder": nn.init(rng, [ZDIM, 200, 200, 784], F32)}


def negative_elbo(encoder, decoder, x, eps, apply, bernoulli, softplus, total=anp.sum):
    """-(log p(x, z) - log q(z | x) analytic) on the full-data scale, z = loc + scale * eps."""
    out = apply(encoder, x)
    loc, scale = out[:, :ZDIM], 1e-3 + softplus(out[:, ZDIM:])
    z = loc + scale * eps
    log_prior = -0.5 * total(z * z) - 0.5 * ZDIM * LOG_2PI * len(x)
    log_lik = total(bernoulli(x, apply(decoder, z)))
    entropy = total(anp.log(scale)) + 0.5 * ZDIM * (1.0 + LOG_2PI) * len(x)
    return -(NUM_DATA / len(x)) * (log_prior + log_lik + entropy)


def kernel_step(x):
    weights = initial_weights()
    flat = ravel(weights)
    opt, state = Adam(1e-3), None
    state = opt.init(flat.buffer)
    grad = np.zeros_like(flat.buffer)
    views, grad_views = flat.views(), flat.views(grad)
    paths = flat.paths
    rng = np.random.default_rng(1)

    def loss(*leaves):
        tree = {}
        for path, leaf in zip(paths, leaves):
            tree.setdefault(path[0], {})[path[1]] = leaf
        return negative_elbo(tree["encoder"], tree["decoder"], x, eps[0], nn.apply, kernels.bernoulli_logits_log_prob,
                             kernels.softplus, kernels.sum)

    eps = [None]

    def step():
        nonlocal state
        eps[0] = rng.standard_normal((len(x), ZDIM), dtype=F32)
        _, grads = value_and_grads(loss, views)
        for view, g in zip(grad_views, grads):
            view[...] = g
        state = opt.step(flat.buffer, grad, state)

    return step


def plain_apply(params, x):
    pairs = nn.layers(params)
    for i, (w, b) in enumerate(pairs):
        x = anp.dot(x, w) + b
        if i < len(pairs) - 1:
            x = anp.where(x > 0, x, anp.exp(anp.minimum(x, 0.0)) - 1)
    return x


def plain_objective(params, x, eps):
    return negative_elbo(params["encoder"], params["decoder"], x, eps, plain_apply,
                         lambda x, l: x * l - anp.logaddexp(0.0, l), lambda a: anp.logaddexp(0.0, a))


def plain_trainer(weights):
    """A per-array Adam (1e-3, the usual betas) on autograd's gradient of the plain objective, in place."""
    first = {k: {n: np.zeros_like(a) for n, a in v.items()} for k, v in weights.items()}
    second = {k: {n: np.zeros_like(a) for n, a in v.items()} for k, v in weights.items()}
    grad_fn, t = autograd.value_and_grad(plain_objective), [0]

    def update(x, eps):
        t[0] += 1
        loss, grads = grad_fn(weights, x, eps)
        for net in weights:
            for name in weights[net]:
                g = grads[net][name]
                first[net][name] = 0.9 * first[net][name] + 0.1 * g
                second[net][name] = 0.999 * second[net][name] + 0.001 * g * g
                weights[net][name] -= 1e-3 * (first[net][name] / (1 - 0.9 ** t[0])) / (
                    np.sqrt(second[net][name] / (1 - 0.999 ** t[0])) + 1e-8)
        return loss

    return update


def plain_step(x):
    update, rng = plain_trainer(initial_weights()), np.random.default_rng(1)
    return lambda: update(x, rng.standard_normal((len(x), ZDIM), dtype=F32))


def matmul_floor(x):
    w = initial_weights()
    enc, dec = nn.layers(w["encoder"]), nn.layers(w["decoder"])
    z = np.ones((len(x), ZDIM), F32)

    def step():
        for inputs, layers in ((x, enc), (z, dec)):
            acts = [inputs]
            for weight, _ in layers:
                acts.append(acts[-1] @ weight)
            g = acts[-1]
            for (weight, _), a in zip(reversed(layers), reversed(acts[:-1])):
                a.T @ g
                g = g @ weight.T

    return step


def quality(epochs, batch_size, limit=None, noise_seeds=0):
    """Train ppl's VAE and the plain autograd one on the same minibatches; their losses should agree.

    ``noise_seeds`` more plain runs, each with its own initial weights and noise, show how far two
    correct trainings differ by chance (the "within noise" of the comparison).
    """
    from ppl.datasets import load_mnist

    x_train, x_test = load_mnist("train")[0][:limit], load_mnist("test")[0]
    num_data = len(x_train)
    svi = SVI(vae_mnist.vae_model, vae_mnist.vae_guide, Adam(1e-3), Trace_ELBO(entropy="analytic"))
    state = svi.init(0, x_train[:batch_size], num_data=num_data)
    plain = [(initial_weights(seed), np.random.default_rng(seed + 1)) for seed in range(noise_seeds + 1)]
    updates = [plain_trainer(weights) for weights, _ in plain]
    labels = ["ppl", "plain"] + [f"plain s{seed}" for seed in range(1, noise_seeds + 1)]
    print(f"# quality: {epochs} epochs, batch {batch_size}, {num_data} training images; mean training loss"
          " and test -ELBO in nats per image (one draw of z per image)")
    print(f"{'epoch':>6s}" + "".join(f"{label:>10s}" for label in labels))
    for epoch in range(epochs):
        steps = vae_mnist.batches(num_data, batch_size, epoch, 0)
        losses = np.empty((len(labels), len(steps)))
        for i, idx in enumerate(steps):
            state, losses[0, i] = svi.update(state, x_train[idx], num_data=num_data, indices=idx)
            for j, (update, (_, rng)) in enumerate(zip(updates, plain)):
                eps = rng.standard_normal((batch_size, ZDIM), dtype=F32)
                losses[j + 1, i] = update(x_train[idx], eps) * num_data / NUM_DATA  # its scale is NUM_DATA
        print(f"{epoch + 1:6d}" + "".join(f"{m / num_data:10.3f}" for m in losses.mean(axis=1)), flush=True)
    tests = [vae_mnist.test_elbo(svi, state, x_test, ZDIM, 0)]
    for weights, rng in plain:
        eps = rng.standard_normal((len(x_test), ZDIM), dtype=F32)
        tests.append(float(plain_objective(weights, x_test, eps)) / NUM_DATA)
    print(f"{'test':>6s}" + "".join(f"{t:10.3f}" for t in tests))
    return tests


def measure(makers, x, repeats):
    """Median ms per step of each column, the columns taking turns step by step (so a burst of load on a
    shared machine hits all of them alike), and the tracemalloc peak MiB of one step of each."""
    steps = [make(x) for make in makers]
    for step in steps:
        for _ in range(3):
            step()
    times = np.empty((repeats, len(steps)))
    for r in range(repeats):
        for c, step in enumerate(steps):
            start = time.perf_counter()
            step()
            times[r, c] = time.perf_counter() - start
    peaks = []
    for step in steps:
        tracemalloc.start()
        step()
        peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
    return 1e3 * np.median(times, axis=0), peaks


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 1024])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--quality", action="store_true", help="also train both for --epochs on MNIST and compare")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--limit", type=int, default=None, help="first N training images (quality check)")
    parser.add_argument("--noise-seeds", type=int, default=0,
                        help="quality check: this many more plain runs with other seeds, for the noise between runs")
    args = parser.parse_args(argv)
    print("# python benchmarks/vae.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(f"# {platform.machine()}, {os.cpu_count()} cores, CPython {platform.python_version()}, numpy {np.__version__};"
          f" float32, z = {ZDIM}, median of {args.repeats} steps, columns interleaved; memory: tracemalloc peak of one step")
    columns = [("ppl SVI", ppl_step), ("same kernels", kernel_step), ("plain autograd", plain_step),
               ("matmul floor", matmul_floor)]
    print(f"{'batch':>6s} {'column':15s}{'ms/step':>10s}{'s/epoch':>10s}{'images/s':>11s}{'peak MiB':>10s}")
    for batch in args.batch_sizes:
        ms, peaks = measure([make for _, make in columns], images(batch), args.repeats)
        results = dict(zip((name for name, _ in columns), ms))
        for (name, _), step_ms, mib in zip(columns, ms, peaks):
            steps = NUM_DATA // batch
            print(f"{batch:6d} {name:15s}{step_ms:10.2f}{step_ms * steps / 1e3:10.1f}{batch / step_ms * 1e3:11.0f}"
                  f"{mib:10.1f}")
        print(f"{batch:6d} ratios: ppl / same kernels = {results['ppl SVI'] / results['same kernels']:.2f}, "
              f"plain autograd / same kernels = {results['plain autograd'] / results['same kernels']:.2f}, "
              f"ppl / matmul floor = {results['ppl SVI'] / results['matmul floor']:.2f}")
    if args.quality:
        return quality(args.epochs, 64, args.limit, args.noise_seeds)


if __name__ == "__main__":
    main()
