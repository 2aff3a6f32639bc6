"""Handler overhead: microseconds per site for a 100-site scalar Normal model.

Each row runs the same work twice in this process, through ppl and written
by hand with a dict and NumPy, and prints both medians and their ratio.
The last lines time ``import ppl`` and ``import ppl.infer`` in fresh interpreters.

    python benchmarks/handlers.py [--sites 100] [--repeats 200]
"""
import argparse
import platform
import subprocess
import sys
import timeit

import autograd
import autograd.numpy as anp
import numpy as np

import ppl
import ppl.distributions as dist
from ppl import condition, log_joint, sample, seed, trace

LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


def make_model(num_sites):
    names = [f"x{i}" for i in range(num_sites)]

    def model():
        total = 0.0
        for name in names:
            total = total + sample(name, dist.Normal(0.0, 1.0))
        return total

    return model, names


def hand_trace(names, rng):
    """The same work by hand: draw each value and keep a record per site."""
    record = {}
    for name in names:
        record[name] = {"value": rng.standard_normal(), "loc": 0.0, "scale": 1.0}
    return record


def hand_log_joint(values, names):
    total = 0.0
    for name in names:
        z = values[name]
        total = total - 0.5 * z * z - LOG_SQRT_2PI
    return total


def import_seconds(module, repeats=5):
    """Median wall time of ``import module`` in fresh interpreters (the interpreter's own start not counted)."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
            for _ in range(repeats)]
    return float(np.median(runs))


def median_us(fn, repeats, number=5):
    times = timeit.repeat(fn, repeat=repeats, number=number)
    return 1e6 * float(np.median(times)) / number


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args(argv)
    n = args.sites
    model, names = make_model(n)
    values = {name: 0.1 for name in names}
    lj = log_joint(model)
    rng = np.random.default_rng(0)
    grad_ppl = autograd.grad(lambda v: lj(v))
    grad_hand = autograd.grad(lambda v: hand_log_joint(v, names))
    seeded = seed(model, 0)

    rows = [
        ("bare run (global rng)", lambda: model(), lambda: [rng.standard_normal() for _ in names]),
        ("seed", lambda: seeded(), lambda: [rng.standard_normal() for _ in names]),
        ("trace", lambda: trace(model).get_trace(), lambda: hand_trace(names, rng)),
        ("condition + trace", lambda: trace(condition(model, values)).get_trace(),
         lambda: hand_trace(names, rng)),
        ("log_joint", lambda: lj(values), lambda: hand_log_joint(values, names)),
        ("grad of log_joint (dict)", lambda: grad_ppl(values), lambda: grad_hand(values)),
    ]
    command = "python benchmarks/handlers.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"# {command.strip()}")
    print(f"# {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
          f"numpy {np.__version__}, {ppl.__name__} {ppl.__version__}; {n} scalar Normal sites; "
          f"median of {args.repeats} repeats")
    print(f"{'work':28s}{'ppl us/site':>14s}{'by hand us/site':>18s}{'ratio':>8s}")
    for label, ours, theirs in rows:
        a, b = median_us(ours, args.repeats) / n, median_us(theirs, args.repeats) / n
        print(f"{label:28s}{a:14.2f}{b:18.2f}{a / b:8.1f}")
    for module in ("ppl", "ppl.infer"):
        print(f"# import {module}: {import_seconds(module):.3f} s (median of 5 fresh interpreters)")
    _ = anp  # autograd.numpy is what the hand-written gradient runs on


if __name__ == "__main__":
    main()
