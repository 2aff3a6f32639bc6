"""benchmarks/sbc.py at tiny sizes: every executor's row, ratios that match the printed times, identical ranks."""
import importlib
import os
import re

import numpy as np

from test_benchmarks import assert_ratio_printed_right, interval, printed

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


def load_sbc_benchmark(monkeypatch):
    """benchmarks/sbc.py imported as module ``sbc`` from a folder on ``sys.path``, so that its functions reach
    the workers by module and name: the forked process pool finds it in ``sys.modules``, and Dask's spawned
    workers (which inherit ``sys.path``) import it. (Loaded from a file under a made-up name instead, Dask would
    pickle the functions by a reference its workers cannot resolve, and they would die.)"""
    monkeypatch.syspath_prepend(BENCHMARKS)
    return importlib.import_module("sbc")


def test_sbc_benchmark_prints_each_executor_with_its_speed_up_and_equal_ranks(capsys, monkeypatch):
    argv = ["--replications", "4", "--warmup", "20", "--thin", "1", "--n", "5", "--noop-tasks", "10"]
    out = load_sbc_benchmark(monkeypatch).main(argv)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "# python benchmarks/sbc.py " + " ".join(argv)
    assert lines[2].split() == ["executor", "start-up", "s", "SBC", "s", "s", "/", "rep", "speed-up", "ms", "/",
                                "task"]
    rows = {line[:20].strip(): printed(line[20:]) for line in lines[3:6]}
    assert list(rows) == ["in-process", "process pool", "dask LocalCluster"]
    baseline = rows["in-process"][1]
    assert rows["in-process"][0] == "0.00" and rows["in-process"][3] == "1.00"
    for startup, seconds, per_replication, speed_up, ms_per_task in rows.values():
        assert float(seconds) > 0 and float(ms_per_task) > 0
        assert_ratio_printed_right(speed_up, baseline, seconds)
        (lo, hi), (s_lo, s_hi) = interval(per_replication), interval(seconds)
        assert lo <= s_hi / 4 and s_lo / 4 <= hi, (per_replication, seconds)
    assert re.match(r"# ranks identical across executors: yes; SBC p-values mu \d\.\d{3}, sigma \d\.\d{3}", lines[6])
    # the check the line reports, redone here: 4 replications x 1 entry per site, each rank among 99 draws
    results = out["results"]
    assert out["identical"] and list(results) == ["none", "process", "dask"]
    for name in ("mu", "sigma"):
        ranks = results["none"].ranks[name]
        assert ranks.shape == (4, 1) and np.all((ranks >= 0) & (ranks <= 99))
        for other in ("process", "dask"):
            np.testing.assert_array_equal(results[other].ranks[name], ranks)
