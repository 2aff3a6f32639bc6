"""PPCA: milliseconds per MAP and per ADVI step, ppl against a hand-written autograd step.

Both sides do the same math in this process: the course's model (d = 2,
k = 1, sigma = 0.5), energy = -log joint for MAP, the mean-field ELBO with
analytic entropy and one particle for ADVI, value and gradient by autograd,
and an Adam step.

    python benchmarks/ppca.py [--sizes 5000 50000 500000] [--repeats 30]
"""
import argparse
import platform
import sys
import timeit

import autograd
import autograd.numpy as anp
import numpy as np

import ppl
import ppl.distributions as dist
from ppl import condition, sample
from ppl.infer import SVI, AutoDelta, AutoNormal, Trace_ELBO
from ppl.optim import Adam

D, K, SIGMA = 2, 1, 0.5
LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


def probabilistic_pca(data_dim, latent_dim, num_datapoints, stddv_datapoints, dtype=np.float64):
    """The course's model with scalar scales (the same math as the hand-written step)."""
    w = sample("w", dist.Normal(dtype(0.0), dtype(2.0)).expand((data_dim, latent_dim)))
    z = sample("z", dist.Normal(dtype(0.0), dtype(1.0)).expand((latent_dim, num_datapoints)))
    return sample("x", dist.Normal(w @ z, stddv_datapoints))


def normal_lp(x, loc, scale):
    return anp.sum(-0.5 * ((x - loc) / scale) ** 2 - anp.log(scale) - LOG_SQRT_2PI)


def hand_log_joint(w, z, x):
    return normal_lp(w, 0.0, 2.0) + normal_lp(z, 0.0, 1.0) + normal_lp(x, anp.dot(w, z), SIGMA)


class HandAdam:
    """Adam over a list of arrays, the textbook way."""

    def __init__(self, params, lr=0.05, b1=0.9, b2=0.999, eps=1e-8):
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.lr, self.b1, self.b2, self.eps, self.t = lr, b1, b2, eps, 0

    def step(self, params, grads):
        self.t += 1
        for p, g, m, v in zip(params, grads, self.m, self.v):
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            p -= self.lr * (m / (1 - self.b1**self.t)) / (np.sqrt(v / (1 - self.b2**self.t)) + self.eps)


def hand_map_step(x, dtype):
    params = [np.ones((D, K), dtype), np.ones((K, x.shape[1]), dtype)]
    grad = autograd.value_and_grad(lambda p: -hand_log_joint(p[0], p[1], x))
    opt = HandAdam(params)

    def step():
        _, g = grad(params)
        opt.step(params, g)

    return step


def hand_advi_step(x, dtype):
    n = x.shape[1]
    params = [np.ones((D, K), dtype), np.full((D, K), -4.0, dtype), np.ones((K, n), dtype), np.full((K, n), -4.0, dtype)]
    rng = np.random.default_rng(0)

    def neg_elbo(p, eps_w, eps_z):
        sw, sz = anp.logaddexp(0.0, p[1]), anp.logaddexp(0.0, p[3])
        w, z = p[0] + sw * eps_w, p[2] + sz * eps_z
        entropy = anp.sum(anp.log(sw)) + anp.sum(anp.log(sz))
        return -(hand_log_joint(w, z, x) + entropy)

    grad = autograd.value_and_grad(neg_elbo)
    opt = HandAdam(params)

    def step():
        eps_w = rng.standard_normal((D, K)).astype(dtype)
        eps_z = rng.standard_normal((K, n)).astype(dtype)
        _, g = grad(params, eps_w, eps_z)
        opt.step(params, g)

    return step


def ppl_step(x, dtype, family):
    sizes = (D, K, x.shape[1], SIGMA, dtype)
    model = condition(probabilistic_pca, {"x": x})
    ones = {"w": np.ones((D, K), dtype), "z": np.ones((K, x.shape[1]), dtype)}
    if family == "map":
        svi = SVI(model, AutoDelta(model, init_loc_fn=ones), Adam(0.05), Trace_ELBO())
    else:
        svi = SVI(model, AutoNormal(model, init_loc_fn=ones), Adam(0.05), Trace_ELBO(entropy="analytic"))
    state = svi.init(0, *sizes)

    def step():
        svi.update(state, *sizes)

    return step


def median_ms(fn, repeats):
    fn()  # warm up (first-call setup)
    number = max(1, int(0.05 / max(timeit.timeit(fn, number=1), 1e-6)))
    return 1e3 * float(np.median(timeit.repeat(fn, repeat=repeats, number=number))) / number


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 50000, 500000])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    print("# python benchmarks/ppca.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(f"# {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
          f"numpy {np.__version__}, ppl {ppl.__version__}; median of {args.repeats} repeats; ms per step")
    print(f"{'N':>8s} {'dtype':8s} {'step':5s}{'ppl':>10s}{'by hand':>10s}{'ratio':>8s}")
    for n in args.sizes:
        for dtype in (np.float64, np.float32):
            x = np.asarray(ppl.seed(probabilistic_pca, 0)(D, K, n, SIGMA), dtype)
            for family, hand in (("map", hand_map_step), ("advi", hand_advi_step)):
                ours = median_ms(ppl_step(x, dtype, family), args.repeats)
                theirs = median_ms(hand(x, dtype), args.repeats)
                print(f"{n:8d} {np.dtype(dtype).name:8s} {family:5s}{ours:10.3f}{theirs:10.3f}{ours / theirs:8.2f}")


if __name__ == "__main__":
    main()
