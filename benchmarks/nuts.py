"""NUTS: µs per potential evaluation against hand-written autograd, and whole runs on posteriordb.

Part 1, for eight schools (noncentered), kidiq (kid_score ~ mom_iq, N = 434)
and a 1000-row logistic regression: the value and gradient of
U(u) = -(log joint + log|Jacobian|) through ``ppl.infer.potential`` (its
recorded tape replayed, as NUTS runs it), through the model run by the
handlers at every evaluation (``replay=False``), and written by hand with
autograd, for one flat vector and for 4 and 64 chains batched (the
hand-written one loops over chains: that is what it costs without a chain
axis).

Part 2 (``--runs``): whole process, cold (a fresh interpreter: imports,
tracing, warm-up and sampling), 4 chains x (1000 warm-up + 1000 draws) on
eight_schools_noncentered and kidiq_momiq: seconds and the smallest bulk ESS
per second; and, with ``--posteriors``, the posteriordb comparison of each.

    python benchmarks/nuts.py [--repeats 20] [--runs [--dense] [--init uniform|laplace] [--chains 4] [--regressions | --posteriors NAME ...] [--numpyro PYTHON]]

``--numpyro PYTHON`` times NumPyro's NUTS on the same two default runs in
that interpreter (NumPyro is not a dependency: give one that has it), in
the same table, with ppl's speed-up over it.

``--regressions`` runs every regression posterior (``posteriordb.REGRESSIONS``)
and eight_schools_noncentered: the ones tests/test_mcmc_posteriordb.py does
not run in CI are recorded by this table.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import timeit

import autograd
import autograd.numpy as anp
import numpy as np

import ppl
import ppl.distributions as dist
from ppl import observe, plate, sample
from ppl.infer.potential import Potential, potential

LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)
SCHOOLS_Y = np.array([28.0, 8, -3, 7, -1, 1, 18, 12])
SCHOOLS_SIGMA = np.array([15.0, 10, 16, 11, 9, 11, 10, 18])


def data_dir():
    return os.path.join(os.environ.get("PPL_DATA_DIR", os.path.join(os.path.dirname(__file__), "..", "..",
                                                                    "shared", "data")), "posteriordb")


# ---------------------------------------------------------------- the models, in ppl and by hand


def eight_schools(y, sigma):
    mu = sample("mu", dist.Normal(0.0, 5.0))
    tau = sample("tau", dist.HalfCauchy(5.0))
    with plate("schools", len(y)):
        theta_trans = sample("theta_trans", dist.Normal(0.0, 1.0))
        observe("y", dist.Normal(mu + tau * theta_trans, sigma), y)


def eight_schools_by_hand(u):
    mu, log_tau, theta_trans = u[0], u[1], u[2:]
    tau = anp.exp(log_tau)
    lp = (-0.5 * (mu / 5.0) ** 2 - np.log(5.0) - LOG_SQRT_2PI
          + np.log(2 / (np.pi * 5.0)) - anp.log1p((tau / 5.0) ** 2) + log_tau
          - 0.5 * anp.sum(theta_trans ** 2) - 8 * LOG_SQRT_2PI
          - 0.5 * anp.sum(((SCHOOLS_Y - mu - tau * theta_trans) / SCHOOLS_SIGMA) ** 2)
          - np.sum(np.log(SCHOOLS_SIGMA)) - 8 * LOG_SQRT_2PI)
    return -lp


def load_kidiq():
    with open(os.path.join(data_dir(), "kidiq-kidscore_momiq.json")) as f:
        data = json.load(f)["data"]
    return np.asarray(data["kid_score"], float), np.asarray(data["mom_iq"], float)


def kidiq(kid_score, mom_iq):
    beta = sample("beta", dist.ImproperUniform(dist.constraints.real, (), (2,)))
    sigma = sample("sigma", dist.HalfCauchy(2.5))
    with plate("data", len(kid_score)):
        observe("kid_score", dist.Normal(beta[..., 0] + beta[..., 1] * mom_iq, sigma), kid_score)


def kidiq_by_hand(kid_score, mom_iq):
    n = len(kid_score)

    def u_fn(u):
        b0, b1, log_sigma = u[0], u[1], u[2]
        sigma = anp.exp(log_sigma)
        lp = (np.log(2 / (np.pi * 2.5)) - anp.log1p((sigma / 2.5) ** 2) + log_sigma
              - 0.5 * anp.sum(((kid_score - b0 - b1 * mom_iq) / sigma) ** 2) - n * log_sigma - n * LOG_SQRT_2PI)
        return -lp

    return u_fn


def logistic_data(n=1000, d=5):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d))
    y = (rng.random(n) < 1 / (1 + np.exp(-x @ rng.normal(size=d)))).astype(float)
    return x, y


def logistic(x, y):
    beta = sample("beta", dist.Normal(np.zeros(x.shape[1]), 1.0).to_event(1))
    with plate("data", len(y)):
        observe("y", dist.Bernoulli(logits=np.sum(x * beta, -1)), y)


def logistic_by_hand(x, y):
    def u_fn(beta):
        logits = x @ beta
        return -(-0.5 * anp.sum(beta ** 2) - len(beta) * LOG_SQRT_2PI
                 + anp.sum(y * logits - anp.logaddexp(0.0, logits)))

    return u_fn


# ---------------------------------------------------------------- timing


def median_us(fn, repeats):
    fn()
    number = max(1, int(0.05 / max(timeit.timeit(fn, number=1), 1e-6)))
    return 1e6 * float(np.median(timeit.repeat(fn, repeat=repeats, number=number))) / number


def potential_table(repeats):
    kid_score, mom_iq = load_kidiq()
    x, y = logistic_data()
    cases = [("eight_schools_nc", eight_schools, (SCHOOLS_Y, SCHOOLS_SIGMA), eight_schools_by_hand),
             ("kidiq_momiq", kidiq, (kid_score, mom_iq), kidiq_by_hand(kid_score, mom_iq)),
             ("logistic_1000", logistic, (x, y), logistic_by_hand(x, y))]
    print("# ppl: the potential as NUTS evaluates it (its recorded tape replayed); run: the model run through")
    print("# the handlers at every evaluation (Potential(replay=False)); hand: the autograd function above")
    print(f"{'model':18s}{'chains':>7s}{'ppl µs':>10s}{'run µs':>10s}{'hand µs':>10s}{'ratio':>7s}{'µs/chain':>10s}")
    for name, model, args, by_hand in cases:
        pot, run = potential(model, *args), Potential(model, args, replay=False)
        grad = autograd.value_and_grad(by_hand)
        u = np.random.default_rng(0).normal(size=pot.dim) * 0.1
        assert np.isclose(pot.value_and_grad(u)[0], by_hand(u)), (name, pot.value_and_grad(u)[0], by_hand(u))
        for chains in (1, 4, 64):
            if chains == 1:
                ours, python = (median_us(lambda p=p: p.value_and_grad(u), repeats) for p in (pot, run))
                theirs = median_us(lambda: grad(u), repeats)
            else:
                flats = np.random.default_rng(chains).normal(size=(chains, pot.dim)) * 0.1
                ours, python = (median_us(lambda p=p: p.value_and_grad(flats), repeats) for p in (pot, run))
                theirs = median_us(lambda: [grad(f) for f in flats], max(3, repeats // 4))
            print(f"{name:18s}{chains:7d}{ours:10.0f}{python:10.0f}{theirs:10.0f}{ours / theirs:7.2f}"
                  f"{ours / chains:10.1f}")


# ---------------------------------------------------------------- whole runs

RUN = """
import time, warnings
t0 = time.perf_counter()
import numpy as np
from ppl.infer import NUTS, diagnostics
from ppl.testing import posteriordb
fn, args, kwargs = posteriordb.model({name!r})
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    result = NUTS(fn, dense_mass={dense!r}, init={init!r}).run(1000, *args, num_warmup=1000, num_chains={chains}, rng_seed=0, progress=False, **kwargs)
seconds = time.perf_counter() - t0
ess = min(float(np.nanmin(diagnostics.ess(v, "bulk"))) for k, v in result.samples.items()
          if k in result.potential.shapes)
rhat = max(float(np.nanmax(diagnostics.r_hat(v))) for k, v in result.samples.items() if k in result.potential.shapes)
cmp = posteriordb.compare(result, posteriordb.load({name!r}))
print(repr((seconds, ess, rhat, result.divergences, cmp.worst_z, cmp.worst_sd_ratio,
            float(result.stats["num_steps"].mean()), len(caught))))
"""


# NumPyro's NUTS on the same posteriors and settings (its defaults are Stan's: diagonal mass, windowed warm-up,
# target 0.8), chains one after another ("sequential": one CPU device), timed as ppl's runs are.
NUMPYRO_RUN = """
import time
t0 = time.perf_counter()
import json
import jax, jax.numpy as jnp
import numpy as np
import numpyro, numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS
data = json.load(open({path!r}))["data"]

def eight_schools_noncentered(y, sigma):
    theta_trans = numpyro.sample("theta_trans", dist.Normal(0.0, 1.0).expand([len(y)]))
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    numpyro.sample("y", dist.Normal(theta_trans * tau + mu, sigma), obs=y)

def kidscore_momiq(kid_score, mom_iq):
    beta = numpyro.sample("beta", dist.ImproperUniform(dist.constraints.real, (), (2,)))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    numpyro.sample("kid_score", dist.Normal(beta[0] + beta[1] * mom_iq, sigma), obs=kid_score)

model, keys = {{"eight_schools-eight_schools_noncentered": (eight_schools_noncentered, ("y", "sigma")),
               "kidiq-kidscore_momiq": (kidscore_momiq, ("kid_score", "mom_iq"))}}[{name!r}]
mcmc = MCMC(NUTS(model), num_warmup=1000, num_samples=1000, num_chains={chains}, chain_method="sequential",
            progress_bar=False)
mcmc.run(jax.random.PRNGKey(0), *[jnp.asarray(data[k], dtype=float) for k in keys], extra_fields=("num_steps",))
jax.block_until_ready(mcmc.get_samples())
print(repr((time.perf_counter() - t0, float(np.mean(mcmc.get_extra_fields()["num_steps"])))))
"""


def run_table(names, dense_mass=False, init="uniform", chains=4, numpyro=None):
    """``numpyro``: an interpreter with numpyro installed; its NUTS is timed on the same runs (the default
    settings only), and the table gains its seconds, steps per draw and ppl's speed-up."""
    numpyro = numpyro if not dense_mass and init == "uniform" else None
    print(f"# NUTS(dense_mass={dense_mass}, init={init!r}), {chains} chains x (1000 warm-up + 1000 draws), rng_seed=0, one fresh process each")
    print(f"{'posterior':42s}{'s':>8s}{'min ESS':>9s}{'ESS/s':>8s}{'R-hat':>7s}{'div':>5s}{'|z|':>7s}"
          f"{'sd ratio':>9s}{'steps':>7s}" + (f"{'NumPyro s':>11s}{'steps':>7s}{'speed-up':>9s}" if numpyro else ""))
    for name in names:
        out = subprocess.run([sys.executable, "-c", RUN.format(name=name, dense=dense_mass, init=init, chains=chains)], capture_output=True, text=True)
        if out.returncode:
            print(f"{name:42s} failed: {out.stderr.strip().splitlines()[-1]}")
            continue
        seconds, ess, rhat, div, z, ratio, steps, _ = eval(out.stdout.strip().splitlines()[-1])
        wall = seconds  # measured inside the fresh interpreter from before its imports
        line = f"{name:42s}{wall:8.1f}{ess:9.0f}{ess / wall:8.0f}{rhat:7.3f}{div:5d}{z:7.3f}{ratio:9.3f}{steps:7.1f}"
        if numpyro and name in DEFAULT_RUNS:  # the two models NUMPYRO_RUN has
            code = NUMPYRO_RUN.format(path=os.path.join(data_dir(), f"{name}.json"), name=name, chains=chains)
            other = subprocess.run([numpyro, "-c", code], capture_output=True, text=True)
            if other.returncode:
                line += f"  NumPyro failed: {other.stderr.strip().splitlines()[-1]}"
            else:
                numpyro_seconds, numpyro_steps = eval(other.stdout.strip().splitlines()[-1])
                line += f"{numpyro_seconds:11.1f}{numpyro_steps:7.1f}{numpyro_seconds / wall:9.2f}"
        print(line, flush=True)


DEFAULT_RUNS = ["eight_schools-eight_schools_noncentered", "kidiq-kidscore_momiq"]


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--runs", action="store_true", help="also time whole cold runs (4 x (1000 + 1000))")
    parser.add_argument("--posteriors", nargs="*", default=None, help="posteriors for --runs (default: "
                        + ", ".join(DEFAULT_RUNS) + ")")
    parser.add_argument("--dense", action="store_true", help="--runs with dense_mass=True")
    parser.add_argument("--regressions", action="store_true", help="--runs on every posteriordb regression "
                        "posterior and eight_schools_noncentered")
    parser.add_argument("--init", default="uniform", choices=["uniform", "laplace"],
                        help="--runs with NUTS(init=...): Stan's uniform start, or the Laplace start and metric")
    parser.add_argument("--chains", type=int, default=4, help="--runs with this many chains")
    parser.add_argument("--skip-potential", action="store_true")
    parser.add_argument("--numpyro", metavar="PYTHON", help="--runs: also time NumPyro's NUTS (default settings, "
                        "chains in sequence) on eight schools and kidiq, run by this interpreter (one with numpyro)")
    args = parser.parse_args(argv)
    print("# python benchmarks/nuts.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(f"# {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
          f"numpy {np.__version__}, ppl {ppl.__version__}, {os.cpu_count()} cpus, load average "
          f"{os.getloadavg()[0]:.1f}; median of {args.repeats} repeats")
    if not args.skip_potential:
        potential_table(args.repeats)
    if args.runs:
        names = args.posteriors or DEFAULT_RUNS
        if args.regressions:
            from ppl.testing.posteriordb import REGRESSIONS

            names = [DEFAULT_RUNS[0], *REGRESSIONS]
        run_table(names, args.dense, args.init, args.chains, args.numpyro)


if __name__ == "__main__":
    main()
