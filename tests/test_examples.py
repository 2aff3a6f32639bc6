"""The examples run end to end, write their figures, and reproduce the course's numbers."""
import os
import sys

import numpy as np
import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
sys.path.insert(0, EXAMPLES)

import missing_data  # noqa: E402
import model_selection  # noqa: E402
import out_of_core  # noqa: E402
import ppca  # noqa: E402


@pytest.fixture(scope="module")
def course_run(tmp_path_factory):
    """The course configuration: N = 5000, d = 2, k = 1, sigma = 0.5; MAP 200 steps, ADVI 100 steps."""
    out = tmp_path_factory.mktemp("ppca")
    return ppca.main(["--out", str(out), "--ppc-samples", "100"])


def test_ppca_smoke_writes_figures(tmp_path):
    result = ppca.main(["--num-datapoints", "300", "--map-steps", "20", "--advi-steps", "20",
                        "--ppc-samples", "10", "--out", str(tmp_path)])
    assert len(result["figures"]) == 5
    for path in result["figures"]:
        assert os.path.getsize(path) > 1000 and path.endswith(".png")


def test_course_configuration(course_run):
    truth = course_run["actual_w"]
    assert ppca.angle(course_run["w_map"], truth) < 5  # direction only: MAP's length is not the truth's
    assert ppca.angle(course_run["w_mean"], truth) < 5
    assert np.all(course_run["w_std"] > 0) and np.all(course_run["w_std"] < 0.1)
    assert ppca.angle(course_run["w_ml"], truth) < 2
    assert np.all((course_run["p_values"] > 0.01) & (course_run["p_values"] < 0.99))  # the model fits its data


def test_closed_form_ml_solution_maximises_likelihood(course_run):
    x, w_ml = course_run["x_train"], course_run["w_ml"]
    best = model_selection.exact_log_likelihood(x, w_ml, 0.5)
    for scale in (0.95, 1.05):
        assert model_selection.exact_log_likelihood(x, scale * w_ml, 0.5) < best
    rotated = np.array([[np.cos(0.05), -np.sin(0.05)], [np.sin(0.05), np.cos(0.05)]]) @ w_ml
    assert model_selection.exact_log_likelihood(x, rotated, 0.5) < best


def test_long_advi_reaches_ml_solution():
    """With enough steps ADVI's mean of w is the maximum-likelihood W (up to sign)."""
    result = ppca.main(["--map-steps", "1", "--advi-steps", "3000", "--advi-lr", "0.02", "--advi-particles", "4",
                        "--ppc-samples", "2", "--no-figures"])
    w, w_ml = result["w_mean"], result["w_ml"]
    sign = np.sign(np.ravel(w) @ np.ravel(w_ml))
    assert np.max(np.abs(w - sign * w_ml)) < 0.02


def test_long_map_reaches_profiled_length():
    """Joint MAP over w and all z settles at |w|^2 = tau sqrt(N lambda_1) - sigma^2, far beyond the ML length."""
    result = ppca.main(["--map-steps", "8000", "--map-lr", "0.02", "--map-b2", "0.99", "--advi-steps", "1",
                        "--ppc-samples", "2",
                        "--no-figures"])
    length = np.linalg.norm(result["w_map"])
    assert abs(length / result["predicted_map_length"] - 1) < 0.02
    assert length > 5 * np.linalg.norm(result["w_ml"])


def test_model_selection_picks_true_k(tmp_path):
    result = model_selection.main(["--num-datapoints", "200", "--steps", "800", "--eval-particles", "200",
                                   "--iwae-samples", "200", "--out", str(tmp_path)])
    assert result["best_elbo"] == 2 and result["best_iwae"] == 2
    ml = [row[2] for row in result["rows"]]
    assert ml == sorted(ml)  # the likelihood at the ML W only grows with k: it cannot choose
    assert os.path.getsize(result["figure"]) > 1000


def test_masked_fit_beats_mean_imputation():
    result = missing_data.main(["--num-datapoints", "600", "--steps", "600", "--samples", "50"])
    assert result["rmse"] < 0.6 * result["baseline"]
    assert result["subspace_angle"] < 5


def test_examples_are_bit_identical_for_the_same_seed():
    argv = ["--num-datapoints", "200", "--map-steps", "15", "--advi-steps", "15", "--ppc-samples", "5", "--no-figures"]
    first, second = ppca.main(argv + ["--seed", "4"]), ppca.main(argv + ["--seed", "4"])
    for key in ("w_map", "w_mean", "w_std", "p_values"):
        assert np.array_equal(first[key], second[key])
    assert np.array_equal(first["advi"].losses, second["advi"].losses)
    other = ppca.main(argv + ["--seed", "5"])
    assert not np.array_equal(first["w_map"], other["w_map"])


def test_minibatch_svi_over_a_memmap_equals_the_in_memory_fit(tmp_path):
    x, y = out_of_core.write_data(str(tmp_path), 20_000, chunk=6_000)
    assert isinstance(x, np.memmap)
    on_disk = out_of_core.fit(x, y, 256, 1000)
    in_memory = out_of_core.fit(np.array(x), np.array(y), 256, 1000)
    assert np.array_equal(on_disk.losses, in_memory.losses)
    for name in ("beta", "sigma"):
        assert np.array_equal(on_disk.mean[name], in_memory.mean[name])
    # 1000 steps of 256 rows find the coefficients from a start uniform in (-2, 2)
    assert np.allclose(on_disk.mean["beta"], out_of_core.TRUE_BETA, atol=0.05)


def test_out_of_core_example_prints_its_table(tmp_path, capsys):
    out_of_core.main(["--rows", "5000", "--steps", "50", "--batch", "64", "--dir", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "# python examples/out_of_core.py --rows 5000 --steps 50 --batch 64 --dir " + str(tmp_path)
    assert lines[1].startswith("data on disk: 5000 rows") and len(lines) == 3 + out_of_core.FEATURES + 1


def test_model_selection_rows_are_identical_in_a_process_pool(tmp_path):
    """One fit per k through fit_many: seeded by the k's index, so a process pool gives the same bits."""
    argv = ["--num-datapoints", "60", "--steps", "60", "--eval-particles", "20", "--iwae-samples", "20",
            "--max-k", "3", "--out", str(tmp_path)]
    serial = model_selection.main(argv)
    pooled = model_selection.main(argv + ["--executor", "process", "--workers", "2"])
    assert len(serial["rows"]) == 3 and pooled["rows"] == serial["rows"]
    # each row is a real fit of its own k: the exact likelihood at W_ML grows with k, the bounds lie below it
    ml = [row[2] for row in serial["rows"]]
    assert ml[0] < ml[1] <= ml[2]
    assert all(elbo < ml_k and iwae < ml_k for (elbo, iwae, _), ml_k in zip(serial["rows"], ml))
