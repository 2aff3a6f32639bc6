import os
from pathlib import Path

try:
    import matplotlib
    matplotlib.use("Agg")  # figures are written to files; no display in tests
except ImportError:
    pass
from hypothesis import HealthCheck, settings


# Fixed, bounded property tests: the same examples on every run, fast on 2 cores.
settings.register_profile("ppl", derandomize=True, deadline=None, max_examples=25,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ppl")

# Tests and CI read MNIST from ../shared/data (PPL_DATA_DIR); default to it when run from the repo.
_shared = Path(__file__).resolve().parents[1] / "shared" / "data"
if "PPL_DATA_DIR" not in os.environ and _shared.is_dir():
    os.environ["PPL_DATA_DIR"] = str(_shared)


# A test that hangs (a deadlocked worker pool, a cluster that never answers) must fail the run with its traceback,
# not hold CI until its time runs out: no single test here needs ten minutes.
import faulthandler  # noqa: E402

import pytest  # noqa: E402

HANG_SECONDS = 600


@pytest.fixture(autouse=True)
def _fail_a_hanging_test():
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()
