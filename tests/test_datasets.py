"""MNIST loading: shapes, values, canonical label counts, corrupt files, the offline error, faked downloads."""
import gzip
import os

import numpy as np
import pytest

from ppl import datasets

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# CI sets PPL_DATA_DIR=../shared/data relative to the repo; run the same way when it is unset.
DATA_DIR = os.path.abspath(os.environ.get("PPL_DATA_DIR", os.path.join(REPO, "..", "shared", "data")))
MNIST_DIR = os.path.join(DATA_DIR, "mnist")
HAVE_MNIST = all(datasets._find(stem, [MNIST_DIR]) for pair in datasets.FILES.values() for stem in pair)
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason=f"the four MNIST IDX files are not in {MNIST_DIR}")

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture
def data_env(monkeypatch):
    monkeypatch.setenv("PPL_DATA_DIR", DATA_DIR)


@pytest.fixture
def empty_env(monkeypatch, tmp_path):
    """No MNIST anywhere: PPL_DATA_DIR and HOME point at empty folders."""
    monkeypatch.setenv("PPL_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def idx_bytes(array, magic):
    header = magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + np.asarray(array, np.uint8).tobytes()


# ---------------------------------------------------------------- the real files


@needs_mnist
@pytest.mark.parametrize("split, counts", [("train", TRAIN_COUNTS), ("test", TEST_COUNTS)])
def test_shapes_values_and_label_counts(data_env, split, counts):
    images, labels = datasets.load_mnist(split)
    n = sum(counts)
    assert images.shape == (n, 784) and images.dtype == np.float32
    assert labels.shape == (n,) and labels.dtype == np.int64
    assert set(np.unique(images).tolist()) == {0.0, 1.0}
    assert np.bincount(labels, minlength=10).tolist() == counts


@needs_mnist
def test_grey_levels_and_binarizing_rule(data_env):
    grey, labels = datasets.load_mnist("test", binarize=False)
    assert grey.dtype == np.float32 and grey.min() == 0.0 and grey.max() == 1.0
    assert len(np.unique(grey)) == 256  # every byte level k / 255 occurs
    binary, _ = datasets.load_mnist("test")
    np.testing.assert_array_equal(binary, np.rint(grey))
    # the first test digit is a 7 (known since LeCun's release)
    assert labels[0] == 7


@needs_mnist
def test_cache_cannot_be_corrupted_by_callers(data_env):
    images, labels = datasets.load_mnist("test", binarize=False)
    images[:] = -1.0
    labels[:] = -1
    again, labels_again = datasets.load_mnist("test", binarize=False)
    assert again.min() == 0.0 and labels_again.min() == 0


@needs_mnist
def test_explicit_data_dir_comes_first(empty_env):
    images, _ = datasets.load_mnist("test", data_dir=MNIST_DIR, download=False)
    assert images.shape == (10000, 784)


@needs_mnist
def test_uncompressed_files_are_accepted(empty_env):
    folder = empty_env / "raw"
    folder.mkdir()
    for stem in datasets.FILES["test"]:
        with gzip.open(os.path.join(MNIST_DIR, stem + ".gz")) as f:
            (folder / stem).write_bytes(f.read())
    images, labels = datasets.load_mnist("test", data_dir=str(folder), download=False)
    assert images.shape == (10000, 784) and np.bincount(labels).tolist() == TEST_COUNTS


def test_bad_split_is_named():
    with pytest.raises(ValueError, match="split"):
        datasets.load_mnist("validation")


# ---------------------------------------------------------------- the IDX reader


def test_read_idx_roundtrip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(array, 0x803)))
    np.testing.assert_array_equal(datasets.read_idx(path), array)
    labels = np.array([3, 1, 4], np.uint8)
    raw = tmp_path / "y-idx1-ubyte"
    raw.write_bytes(idx_bytes(labels, 0x801))
    np.testing.assert_array_equal(datasets.read_idx(str(raw)), labels)


def test_corrupt_magic_names_the_file(tmp_path):
    path = tmp_path / "bad-magic-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((2, 2, 2)), 0x0D03))  # float64 type code, not ubyte
    with pytest.raises(ValueError, match="bad-magic-idx3-ubyte.*magic number 0x00000d03"):
        datasets.read_idx(path)


def test_truncated_payload_names_the_file(tmp_path):
    path = tmp_path / "short-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((4, 3, 3)), 0x803)[:-5])
    with pytest.raises(ValueError, match=r"short-idx3-ubyte.*\(4, 3, 3\).*52 bytes.*47 bytes"):
        datasets.read_idx(path)


def test_truncated_gzip_names_the_file(tmp_path):
    packed = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8).reshape(2, 10, 10), 0x803))
    path = tmp_path / "cut-idx3-ubyte.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ValueError, match="cut-idx3-ubyte.gz"):
        datasets.read_idx(path)


def test_mismatched_files_are_refused(empty_env):
    folder = empty_env / "odd"
    folder.mkdir()
    (folder / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((3, 28, 28)), 0x803))
    (folder / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(2), 0x801))
    with pytest.raises(ValueError, match=r"\(3, 28, 28\).*\(2,\)"):
        datasets.load_mnist("test", data_dir=str(folder), download=False)


# ---------------------------------------------------------------- downloads, faked


def test_offline_error_says_where_to_put_the_files(empty_env, monkeypatch):
    def no_network(url):
        raise OSError(f"no route to {url}")

    monkeypatch.setattr(datasets, "fetch", no_network)
    with pytest.raises(datasets.MNISTNotFoundError) as info:
        datasets.load_mnist("train", data_dir=str(empty_env / "mine"))
    message = str(info.value)
    for folder in (empty_env / "mine", empty_env / "env" / "mnist", empty_env / "home" / ".cache" / "ppl" / "mnist"):
        assert str(folder) in message
    assert "PPL_DATA_DIR" in message and "train-images-idx3-ubyte.gz" in message
    assert all(mirror in message for mirror in datasets.MIRRORS)
    assert isinstance(info.value, FileNotFoundError)
    assert not (empty_env / "mine").exists() or not os.listdir(empty_env / "mine")


def test_no_download_when_told_not_to(empty_env, monkeypatch):
    monkeypatch.setattr(datasets, "fetch", lambda url: pytest.fail(f"fetched {url}"))
    with pytest.raises(FileNotFoundError, match="download=False"):
        datasets.load_mnist("test", download=False)


def fake_mnist(stem):
    """Small stand-in files of the right format, and their checksums."""
    if "labels" in stem:
        return idx_bytes(np.arange(5) % 10, 0x801)
    return idx_bytes(np.random.default_rng(0).integers(0, 256, (5, 28, 28)), 0x803)


def test_good_download_lands_atomically(empty_env, monkeypatch):
    import hashlib

    sums = {stem: hashlib.sha256(fake_mnist(stem)).hexdigest() for stem in datasets.SHA256}
    monkeypatch.setattr(datasets, "SHA256", sums)
    calls = []

    def flaky(url):  # the first mirror is down, the second serves the file
        calls.append(url)
        if url.startswith(datasets.MIRRORS[0]):
            raise OSError("503")
        return gzip.compress(fake_mnist(os.path.basename(url)[:-3]))

    monkeypatch.setattr(datasets, "fetch", flaky)
    folder = empty_env / "dl"
    images, labels = datasets.load_mnist("test", data_dir=str(folder))
    assert images.shape == (5, 784) and labels.tolist() == [0, 1, 2, 3, 4]
    assert sorted(os.listdir(folder)) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert len(calls) == 4
    # the second load reads the disk, not the network
    monkeypatch.setattr(datasets, "fetch", lambda url: pytest.fail(f"fetched {url} again"))
    np.testing.assert_array_equal(datasets.load_mnist("test", data_dir=str(folder))[0], images)


def test_bad_checksum_is_rejected_and_leaves_no_file(empty_env, monkeypatch):
    monkeypatch.setattr(datasets, "fetch", lambda url: gzip.compress(fake_mnist(os.path.basename(url)[:-3])))
    folder = empty_env / "dl"
    with pytest.raises(datasets.MNISTNotFoundError, match="checksum"):
        datasets.load_mnist("test", data_dir=str(folder))
    assert not folder.exists() or os.listdir(folder) == []


def test_failed_write_leaves_no_partial_file(empty_env, monkeypatch):
    import hashlib

    stem = "t10k-labels-idx1-ubyte"
    monkeypatch.setattr(datasets, "SHA256", {stem: hashlib.sha256(fake_mnist(stem)).hexdigest()})
    monkeypatch.setattr(datasets, "fetch", lambda url: gzip.compress(fake_mnist(stem)))

    def disk_full(fd):
        raise OSError("No space left on device")

    monkeypatch.setattr(datasets.os, "fsync", disk_full)
    folder = empty_env / "dl"
    with pytest.raises(OSError, match="No space"):
        datasets.download_file(stem, str(folder))
    assert os.listdir(folder) == []
