"""NUTS against posteriordb's reference posteriors (Stan, 10 000 draws): 4 chains x 1000 draws must match.

Every parameter within |z| <= 0.1 reference sds of the reference mean, sd
ratio in [0.9, 1.1], no divergences, R-hat < 1.01. CI runs the subset below
(the rest of the regression posteriors run in ``benchmarks/nuts.py --runs
--posteriors ...``, whose table is in the report), to stay near 90 s.
"""
import warnings

import numpy as np
import pytest

from ppl.infer import NUTS, diagnostics

posteriordb = pytest.importorskip("ppl.testing.posteriordb")

CI_SUBSET = ["eight_schools-eight_schools_noncentered"]  # kidiq_momiq: 195 s on the loaded CI box (24 steps per draw)


@pytest.mark.parametrize("name", CI_SUBSET)
def test_nuts_matches_the_reference_posterior(name):
    fn, args, kwargs = posteriordb.model(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = NUTS(fn).run(1000, *args, num_warmup=1000, num_chains=4, rng_seed=0, progress=False, **kwargs)
    comparison = posteriordb.compare(result, posteriordb.load(name))
    assert comparison.ok(z_tol=0.1, sd_bounds=(0.9, 1.1)), comparison.table()
    assert result.divergences == 0
    for site, draws in result.samples.items():
        if site in result.potential.shapes:
            assert np.nanmax(diagnostics.r_hat(draws)) < 1.01, site
