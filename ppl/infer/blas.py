"""SciPy's optimizers and small vectors: one BLAS thread while they run (L-BFGS in Pathfinder and ``find_mode``)."""
import contextlib
import functools
import glob
import os


@functools.lru_cache(maxsize=None)
def _scipy_openblas():
    """The OpenBLAS bundled with SciPy's wheels (ctypes handle), or None (another build: nothing to tune)."""
    import ctypes

    import scipy

    for path in glob.glob(os.path.join(os.path.dirname(scipy.__file__), os.pardir, "scipy.libs", "*openblas*.so*")):
        try:
            lib = ctypes.CDLL(path)
            lib.scipy_openblas_get_num_threads, lib.scipy_openblas_set_num_threads  # both must exist
            return lib
        except (OSError, AttributeError):
            continue
    return None


@contextlib.contextmanager
def one_blas_thread():
    """SciPy's L-BFGS-B makes many BLAS calls on vectors of a few dozen entries; with OpenBLAS threads on a
    busy machine each call waits for its threads, measured here at 8 ms an iteration instead of 20 us.
    One thread for the duration of the run, then the previous setting."""
    lib = _scipy_openblas()
    if lib is None:
        yield
        return
    before = lib.scipy_openblas_get_num_threads()
    lib.scipy_openblas_set_num_threads(1)
    try:
        yield
    finally:
        lib.scipy_openblas_set_num_threads(before)
