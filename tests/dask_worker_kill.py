"""A Dask worker killed in the middle of an SBC run, then resumed: run as a script, in its own process.

``test_parallel`` runs this file with ``subprocess`` and a timeout rather than in pytest's own process:
a cluster whose workers are being killed shares nothing then with the pools the other tests fork, and a
hang ends in a failed test, not a stalled suite. Prints one JSON line with what the test checks.

    python tests/dask_worker_kill.py
"""
import json
import sys

import numpy as np


def main():
    import dask
    from distributed import Client, LocalCluster

    from ppl.core import fold_in
    from ppl.infer import diagnostics
    from ppl.infer.parallel import TaskError
    from test_parallel import DieOnSeed, exact_posterior, sbc_model

    path = sys.argv[1]
    run = dict(num_simulations=40, bins=5, rng_seed=0)
    uninterrupted = diagnostics.sbc(sbc_model, exact_posterior, **run).ranks["mu"]
    report = {}
    # One retry: the replacement worker dies too, and the run must stop with KilledWorker named. A worker is
    # sent no more tasks than it runs at once (saturation 1.0; Dask's default 1.1 queues one more), so no
    # other task is on it when it dies and charged with its death.
    with dask.config.set({"distributed.scheduler.allowed-failures": 1, "distributed.scheduler.worker-saturation": 1.0}):
        with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            try:
                diagnostics.sbc(sbc_model, DieOnSeed(fold_in(0, "sbc", 7)), path=path,
                                executor=client.get_executor(), **run)
                report["error"] = None
            except TaskError as error:
                report["error"] = str(error).splitlines()[0]
            with np.load(path) as saved:
                done = saved["done"]
                report["done"] = int(done.sum())
                report["task_7_done"] = bool(done[7])
                report["saved_ranks_match"] = bool(np.array_equal(saved["ranks_0"][done], uninterrupted[done]))
            resumed = diagnostics.sbc(sbc_model, exact_posterior, path=path, resume=True,
                                      executor=client.get_executor(), **run)
    report["resumed_ranks_match"] = bool(np.array_equal(resumed.ranks["mu"], uninterrupted))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
