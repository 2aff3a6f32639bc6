"""MNIST from the four standard IDX files: reader, search path, download with checksum.

``load_mnist(split)`` looks for the files in ``data_dir``, then
``$PPL_DATA_DIR/mnist``, then ``~/.cache/ppl/mnist``. If they are absent it
downloads them, checks the SHA-256 of the decompressed bytes, and writes
them atomically; offline, the error says where to put them.
"""
import functools
import gzip
import hashlib
import os
import urllib.request

import numpy as np

from .files import atomic_write

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# SHA-256 of the decompressed IDX bytes (the canonical content, whatever the compression).
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
           "https://storage.googleapis.com/cvdf-datasets/mnist/")
MAGIC = {2049: 1, 2051: 3}  # labels: 1 dimension; images: 3 dimensions (unsigned bytes, type code 0x08)


class MNISTNotFoundError(FileNotFoundError):
    """The MNIST files are neither on disk nor downloadable; the message says where to put them."""


def search_dirs(data_dir=None):
    """Where ``load_mnist`` looks, in order."""
    dirs = [data_dir] if data_dir else []
    if os.environ.get("PPL_DATA_DIR"):
        dirs.append(os.path.join(os.environ["PPL_DATA_DIR"], "mnist"))
    dirs.append(os.path.join(os.path.expanduser("~"), ".cache", "ppl", "mnist"))
    return dirs


def parse_idx(data, name):
    """The array in IDX bytes, after checking the magic number, the dimensions and the payload size."""
    if len(data) < 8:
        raise ValueError(f"{name}: {len(data)} bytes is too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    if magic not in MAGIC:
        raise ValueError(f"{name}: magic number {magic:#010x} is not an IDX ubyte file (expected 0x00000801 "
                         "for labels or 0x00000803 for images)")
    ndim = MAGIC[magic]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{name}: truncated header ({len(data)} bytes)")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise ValueError(f"{name}: header promises shape {shape} ({expected} bytes) but the file has {len(data)} "
                         "bytes (truncated or corrupt)")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_idx(path):
    """Read an IDX file, gzipped (``.gz``) or not; any problem names the file."""
    path = os.fspath(path)
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise ValueError(f"{path}: cannot read ({type(err).__name__}: {err})") from err
    return parse_idx(data, path)


def _find(stem, dirs):
    for folder in dirs:
        for name in (stem + ".gz", stem):
            path = os.path.join(folder, name)
            if os.path.exists(path):
                return path
    return None


def fetch(url):
    """The bytes at ``url`` (kept separate so tests can stand in for the network)."""
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def _where_to_put(dirs):
    names = ", ".join(s + ".gz" for pair in FILES.values() for s in pair)
    return (f"Put the four files {names} in one of: {', '.join(dirs)} "
            "(or set PPL_DATA_DIR to a folder holding mnist/).")


def download_file(stem, folder, dirs=None):
    """Fetch ``stem`` from the mirrors, verify the decompressed SHA-256, write ``folder/stem.gz`` atomically."""
    errors = []
    for mirror in MIRRORS:
        try:
            packed = fetch(mirror + stem + ".gz")
            raw = gzip.decompress(packed)
        except Exception as err:  # any failure: try the next mirror, report all of them
            errors.append(f"{mirror}: {type(err).__name__}: {err}")
            continue
        digest = hashlib.sha256(raw).hexdigest()
        if digest != SHA256[stem]:
            errors.append(f"{mirror}: checksum {digest} does not match {SHA256[stem]}")
            continue
        path = os.path.join(folder, stem + ".gz")
        with atomic_write(path) as f:
            f.write(packed)
        return path
    raise MNISTNotFoundError(
        f"MNIST file {stem}.gz is not on this machine and could not be downloaded ({'; '.join(errors)}). "
        + _where_to_put(dirs or search_dirs()))


def _load(path):
    """The decoded file, cached in memory; the key includes size and mtime so a replaced file is re-read."""
    stat = os.stat(path)
    return _load_cached(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _load_cached(path, size, mtime_ns):
    array = read_idx(path)
    array.setflags(write=False)  # the cache is shared: nobody may write into it
    return array


def load_mnist(split, binarize=True, data_dir=None, download=True):
    """``(images, labels)``: float32 images (N, 784) and int64 labels for ``split`` in {"train", "test"}.

    ``binarize=True`` rounds as the course does, ``np.rint(x / 255)``, to {0, 1};
    ``binarize=False`` gives floats in [0, 1].
    """
    if split not in FILES:
        raise ValueError(f"load_mnist: split must be 'train' or 'test', got {split!r}")
    dirs = search_dirs(data_dir)
    arrays = []
    for stem in FILES[split]:
        path = _find(stem, dirs)
        if path is None:
            if not download:
                raise MNISTNotFoundError(f"MNIST file {stem}(.gz) not found and download=False. "
                                         + _where_to_put(dirs))
            path = download_file(stem, dirs[0], dirs)
        arrays.append(_load(path))
    images, labels = arrays
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels) or images.shape[1:] != (28, 28):
        raise ValueError(f"MNIST {split}: images of shape {images.shape} do not match labels of shape "
                         f"{labels.shape} (expected (N, 28, 28) and (N,))")
    images = images.reshape(len(images), 784).astype(np.float32) / np.float32(255)
    if binarize:
        images = np.rint(images)
    return images, labels.astype(np.int64)
