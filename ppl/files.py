"""Writing files so that a crash mid-write never leaves a corrupt one."""
import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_write(path, suffix=".part"):
    """A binary file object for ``path``: written to a temporary file in the same folder, flushed to disk,
    then renamed over ``path`` in one step. On any error the temporary file is removed and ``path`` is
    untouched."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
