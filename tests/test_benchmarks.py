"""The benchmarks compare like with like, and each runs and prints its table (tiny sizes, no timing asserted)."""
import importlib.util
import os
import re

import autograd
import numpy as np
import pytest

import ppl
from ppl import datasets, kernels, nn

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


def load(name):
    """benchmarks/<name>.py under its own module name (examples/ppca.py is also called ppca)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", os.path.join(BENCHMARKS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


NUMBER = r"-?\d+(?:\.\d+)?"


def numbers(line):
    return [float(x) for x in re.findall(NUMBER, line)]


def printed(line):
    """The numbers of a line as printed (strings): their decimals say how far rounding may have moved them."""
    return re.findall(NUMBER, line)


def interval(text):
    """The values that print as ``text``: within half a unit of its last decimal."""
    half = 0.5 * 10.0 ** -(len(text.split(".")[1]) if "." in text else 0)
    return float(text) - half, float(text) + half


def assert_ratio_printed_right(ratio, ours, theirs):
    """The printed ratio is ours / theirs of some values that print as ``ours`` and ``theirs``.

    A benchmark divides its unrounded times; recomputing the ratio from the
    rounded, printed ones moves it by up to the rounding of each, which on a
    fast row is more than the ratio's own last digit. Interval arithmetic
    decides exactly, whatever the timings were: no tolerance to tune.
    """
    (r_lo, r_hi), (o_lo, o_hi), (t_lo, t_hi) = interval(ratio), interval(ours), interval(theirs)
    assert t_lo > 0 and r_lo <= o_hi / t_lo and o_lo / t_hi <= r_hi, (ratio, ours, theirs)


@pytest.mark.parametrize("ratio, ours, theirs, right", [
    ("1.21", "0.17", "0.14", True),     # 0.17 / 0.14 = 1.214..., and 0.1655 / 0.1365 = 1.21: both print so
    ("1.50", "0.17", "0.14", False),    # no pair of values printing as 0.17 and 0.14 has a ratio near 1.5
    ("0.68", "2.361", "3.490", True),
    ("0.70", "2.361", "3.490", False),
])
def test_ratio_check_is_exact_interval_arithmetic(ratio, ours, theirs, right):
    if right:
        assert_ratio_printed_right(ratio, ours, theirs)
    else:
        with pytest.raises(AssertionError):
            assert_ratio_printed_right(ratio, ours, theirs)


def test_ppca_hand_written_log_joint_is_the_models():
    bench = load("ppca")
    rng = np.random.default_rng(0)
    n = 40
    x = np.asarray(ppl.seed(bench.probabilistic_pca, 0)(bench.D, bench.K, n, bench.SIGMA))
    w, z = rng.normal(size=(bench.D, bench.K)), rng.normal(size=(bench.K, n))
    conditioned = ppl.condition(bench.probabilistic_pca, {"x": x})
    ours = ppl.log_joint(conditioned)({"w": w, "z": z}, bench.D, bench.K, n, bench.SIGMA)
    np.testing.assert_allclose(ours, bench.hand_log_joint(w, z, x), rtol=1e-12)


def test_vae_same_kernels_and_plain_columns_compute_the_same_loss_and_gradient():
    bench = load("vae")
    x = bench.images(16)
    weights = bench.initial_weights(3)
    eps = np.random.default_rng(4).standard_normal((16, bench.ZDIM)).astype(np.float32)

    def fused(w):
        return bench.negative_elbo(w["encoder"], w["decoder"], x, eps, nn.apply, kernels.bernoulli_logits_log_prob,
                                   kernels.softplus, kernels.sum)

    value, grads = autograd.value_and_grad(fused)(weights)
    plain_value, plain_grads = autograd.value_and_grad(lambda w: bench.plain_objective(w, x, eps))(weights)
    np.testing.assert_allclose(value, plain_value, rtol=1e-5)
    for net in weights:
        for name in weights[net]:
            assert grads[net][name].dtype == np.float32
            np.testing.assert_allclose(grads[net][name], plain_grads[net][name], rtol=2e-3,
                                       atol=2e-3 * np.abs(plain_grads[net][name]).max(), err_msg=f"{net}.{name}")


def test_handlers_benchmark_prints_every_row(capsys):
    load("handlers").main(["--sites", "5", "--repeats", "3"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "# python benchmarks/handlers.py --sites 5 --repeats 3"
    rows = {line[:28].strip(): printed(line[28:]) for line in lines[3:9]}
    assert list(rows) == ["bare run (global rng)", "seed", "trace", "condition + trace", "log_joint",
                          "grad of log_joint (dict)"]
    for ours, theirs, ratio in rows.values():
        assert float(ours) > 0 and float(theirs) > 0
        assert_ratio_printed_right(ratio, ours, theirs)
    assert [line.split(":")[0] for line in lines[9:]] == ["# import ppl", "# import ppl.infer"]


def test_ppca_benchmark_prints_both_steps_in_both_dtypes(capsys):
    load("ppca").main(["--sizes", "200", "--repeats", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "# python benchmarks/ppca.py --sizes 200 --repeats 2"
    rows = [line.split() for line in lines[3:]]
    assert [(r[1], r[2]) for r in rows] == [("float64", "map"), ("float64", "advi"), ("float32", "map"),
                                             ("float32", "advi")]
    for row in rows:
        assert_ratio_printed_right(row[5], row[3], row[4])


def test_vae_benchmark_prints_four_columns_and_their_ratios(capsys):
    load("vae").main(["--batch-sizes", "8", "--repeats", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "# python benchmarks/vae.py --batch-sizes 8 --repeats 2"
    columns = {line[7:22].strip(): numbers(line[22:]) for line in lines[3:7]}
    assert list(columns) == ["ppl SVI", "same kernels", "plain autograd", "matmul floor"]
    for ms, s_per_epoch, images_per_s, mib in columns.values():
        assert ms > 0 and mib > 0
        assert images_per_s == pytest.approx(8 / ms * 1e3, rel=0.01, abs=1)
    ratio = re.search(r"ppl / same kernels = ([\d.]+)", lines[7]).group(1)
    ms = {line[7:22].strip(): printed(line[22:])[0] for line in lines[3:7]}
    assert_ratio_printed_right(ratio, ms["ppl SVI"], ms["same kernels"])


@pytest.mark.skipif(not all(datasets._find(stem, datasets.search_dirs()) for pair in datasets.FILES.values()
                            for stem in pair), reason="the MNIST IDX files are not in $PPL_DATA_DIR/mnist")
def test_vae_quality_check_trains_every_column_on_the_same_scale(capsys):
    tests = load("vae").main(["--batch-sizes", "8", "--repeats", "1", "--quality", "--epochs", "1", "--limit", "256",
                              "--noise-seeds", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[-3].split() == ["epoch", "ppl", "plain", "plain", "s1"]
    train, test = numbers(lines[-2])[1:], numbers(lines[-1])
    assert len(train) == len(test) == 3
    # 4 steps of 64 from random weights: every column is still near its start (784 log 2 = 543 nats at p = 1/2);
    # a loss on the wrong scale (per batch, or over the data set) would be off by 64x or more
    for value in train + test:
        assert 450 < value < 560
