# ruff: noqa: F811  (pytest fixtures imported from extraction_fixtures are test arguments of the same name)
import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from sawdist.extraction.data import DATASETS, load_dataset, read_idx

from .extraction_fixtures import _one_torch_thread, digits  # noqa: F401  (fixtures)


def test_digits_split_and_standardization(digits):
    assert digits.input_shape == (1, 8, 8) and digits.n_classes == 10 and digits.n_features == 64
    assert digits.x_train.shape[0] == 1347 and digits.x_test.shape[0] == 450
    assert digits.x_train.dtype == torch.float32 and digits.y_train.dtype == torch.int64
    assert abs(float(digits.x_train.mean())) < 1e-5 and abs(float(digits.x_train.std()) - 1) < 1e-3
    again = load_dataset("digits")
    assert torch.equal(again.x_test, digits.x_test) and torch.equal(again.y_train, digits.y_train)
    assert set(digits.y_test.tolist()) == set(range(10))


def test_synthetic_any_shape_and_seeded():
    a = load_dataset("synthetic", shape=(2, 12, 12), n_classes=3, n_train=30, n_test=10, seed=4)
    b = load_dataset("synthetic", shape="2x12x12", n_classes=3, n_train=30, n_test=10, seed=4)
    c = load_dataset("synthetic", shape=(2, 12, 12), n_classes=3, n_train=30, n_test=10, seed=5)
    assert a.input_shape == (2, 12, 12) and a.x_test.shape == (10, 2, 12, 12)
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, c.x_train)
    flat = load_dataset("synthetic", shape=(17,), n_classes=2, n_train=5, n_test=5)
    assert flat.input_shape == (17,)


@pytest.mark.parametrize(("options", "message"), [
    ({"shape": "3xfoo"}, r"^'shape' must look like 3x32x32, got '3xfoo'\.$"),
    ({"shape": (3, 0, 4)}, r"^'shape' must be a non-empty tuple of positive sizes, got \(3, 0, 4\)\.$"),
    ({"n_classes": 1}, r"^'n_classes' must be at least 2, got 1\.$"),
    ({"n_train": 0}, r"^'n_train' and 'n_test' must be positive, got 0 and 1000\.$"),
])
def test_synthetic_errors(options, message):
    with pytest.raises(ValueError, match=message):
        load_dataset("synthetic", **options)


def test_unknown_dataset():
    with pytest.raises(ValueError, match=r"^'dataset' must be one of digits, cifar10, cifar100, mnist, "
                                         r"tinyimagenet, synthetic, got 'imagenet'\.$"):
        load_dataset("imagenet")


def test_digits_test_size_error():
    with pytest.raises(ValueError, match=r"^'test_size' must lie strictly between 0 and 1, got 1\.5\.$"):
        load_dataset("digits", test_size=1.5)


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "mnist", "tinyimagenet"])
def test_file_datasets_need_root(name):
    with pytest.raises(ValueError, match=r"^'root' must be the directory that holds the .* files, got None\.$"):
        load_dataset(name)


# --- CIFAR ---------------------------------------------------------------------------------------------------


def _cifar_batch(path, n, rng, labels_key=b"labels", n_classes=10, extra=None):
    batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             labels_key: rng.integers(0, n_classes, n).tolist()}
    batch.update(extra or {})
    with open(path, "wb") as f:
        pickle.dump(batch, f)
    return batch


def test_cifar10_from_pickles(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = [_cifar_batch(folder / f"data_batch_{i}", 4, rng) for i in range(1, 6)]
    test = _cifar_batch(folder / "test_batch", 3, rng)
    data = load_dataset("cifar10", root=tmp_path)
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_test.shape == (3, 3, 32, 32) and data.n_classes == 10
    assert data.y_train.tolist() == sum((b[b"labels"] for b in batches), [])
    assert data.y_test.tolist() == test[b"labels"]
    # channel-major layout: the first 1024 bytes are the red plane of image 0
    red = batches[0][b"data"][0, :1024].reshape(32, 32).astype(np.float64)
    standard = data.x_train[0, 0].numpy().astype(np.float64)
    assert np.corrcoef(red.ravel(), standard.ravel())[0, 1] > 0.9999
    assert torch.allclose(data.x_train.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.equal(load_dataset("cifar10", root=folder).x_test, data.x_test)  # root may be the folder itself


def test_cifar10_missing_files_name_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"CIFAR-10 files not found: expected .*cifar-10-batches-py "
                                                r"\(data_batch_1\.\.5 and test_batch pickles\)"):
        load_dataset("cifar10", root=tmp_path)


def test_cifar100_fine_and_coarse(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    coarse = {b"coarse_labels": rng.integers(0, 20, 6).tolist()}
    train = _cifar_batch(folder / "train", 6, rng, b"fine_labels", 100, coarse)
    _cifar_batch(folder / "test", 2, rng, b"fine_labels", 100, {b"coarse_labels": [0, 1]})
    fine = load_dataset("cifar100", root=tmp_path)
    assert fine.n_classes == 100 and fine.y_train.tolist() == train[b"fine_labels"]
    superclasses = load_dataset("cifar100", root=tmp_path, labels="coarse")
    assert superclasses.n_classes == 20 and superclasses.y_train.tolist() == train[b"coarse_labels"]


def test_cifar100_labels_error(tmp_path):
    with pytest.raises(ValueError, match=r"^'labels' must be 'fine' or 'coarse', got 'medium'\.$"):
        load_dataset("cifar100", root=tmp_path, labels="medium")


def test_cifar100_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"CIFAR-100 files not found: expected .*cifar-100-python"):
        load_dataset("cifar100", root=tmp_path)


class _Exploit:
    """Unpickles as a call of os.system: what a crafted batch under --data-root could run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch '{self.marker}'",)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar_crafted_batch_is_refused_and_runs_nothing(tmp_path, protocol):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(2, 6)] + ["test_batch"]:
        _cifar_batch(folder / name, 2, rng)
    marker = tmp_path / "ran"
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"data": _Exploit(marker), b"labels": [0]}, f, protocol=protocol)
    with pytest.raises(ValueError, match=r"^'.*data_batch_1' is not a CIFAR batch: it asks to load "
                                         r"(posix|nt|os)\.system, which the format never needs; refused without "
                                         r"running it\.$"):
        load_dataset("cifar10", root=tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("numpy_module", ["numpy.core.multiarray", "numpy._core.multiarray"])
def test_cifar_batch_as_published_loads(tmp_path, numpy_module):
    # protocol 2 as in the published batches (pickled by Python 2 with NumPy 1, hence numpy.core.multiarray)
    rng = np.random.default_rng(2)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    batches = {}
    for name, n in (("train", 4), ("test", 2)):
        batches[name] = {b"batch_label": b"training batch 1 of 1", b"filenames": [b"a.png"] * n,
                         b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"fine_labels": rng.integers(0, 100, n).tolist(),
                         b"coarse_labels": rng.integers(0, 20, n).tolist()}
        raw = pickle.dumps(batches[name], protocol=2)
        for spelling in (b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"):
            raw = raw.replace(spelling, numpy_module.encode() + b"\n")
        assert numpy_module.encode() in raw
        (folder / name).write_bytes(raw)
    data = load_dataset("cifar100", root=tmp_path)
    assert data.y_train.tolist() == batches["train"][b"fine_labels"] and data.x_test.shape == (2, 3, 32, 32)


def test_cifar_batch_that_is_not_a_dict(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "train").write_bytes(pickle.dumps([1, 2], protocol=2))
    (folder / "test").write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(ValueError, match=r"^'.*train' is not a CIFAR batch: it holds a list, not a dict\.$"):
        load_dataset("cifar100", root=tmp_path)


# --- MNIST ---------------------------------------------------------------------------------------------------


def _idx(array: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write_mnist(folder, rng, compress):
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 5, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 3, dtype=np.uint8),
    }
    for name, array in arrays.items():
        raw = _idx(array, 0x08)
        if compress:
            (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_from_idx(tmp_path, compress):
    arrays = _write_mnist(tmp_path, np.random.default_rng(2), compress)
    data = load_dataset("mnist", root=tmp_path)
    assert data.x_train.shape == (5, 1, 28, 28) and data.x_test.shape == (3, 1, 28, 28)
    assert data.y_train.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert data.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


def test_mnist_torchvision_layout(tmp_path):
    _write_mnist(tmp_path / "MNIST" / "raw", np.random.default_rng(3), compress=True)
    assert load_dataset("mnist", root=tmp_path).x_train.shape == (5, 1, 28, 28)


def test_mnist_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"MNIST files not found: expected .* to hold the idx files "
                                                r"train-images-idx3-ubyte, .*missing"):
        load_dataset("mnist", root=tmp_path)


def test_read_idx_other_types_and_errors(tmp_path):
    values = np.arange(6, dtype=">i4").reshape(2, 3)
    (tmp_path / "ints").write_bytes(_idx(values, 0x0C))
    assert np.array_equal(read_idx(tmp_path / "ints"), values)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(ValueError, match=r"is not an idx file \(bad magic number\)\.$"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(_idx(np.zeros(4, np.uint8), 0x08)[:-1])
    with pytest.raises(ValueError, match=r"holds 3 values, its header says \(4,\)\.$"):
        read_idx(tmp_path / "short")
    (tmp_path / "code").write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x00")
    with pytest.raises(ValueError, match=r"has an unknown idx data type code 0x07\.$"):
        read_idx(tmp_path / "code")


# --- Tiny-ImageNet -------------------------------------------------------------------------------------------


def test_tinyimagenet_folder_layout(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(4)
    root = tmp_path / "tiny-imagenet-200"
    wnids = ["n01443537", "n01629819"]
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for wnid in wnids:
        (root / "train" / wnid / "images").mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
                root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG")
    lines = []
    for i, wnid in enumerate([wnids[1], wnids[0], wnids[1]]):
        Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(root / "val" / "images" / f"val_{i}.JPEG")
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    data = load_dataset("tinyimagenet", root=tmp_path)
    assert data.input_shape == (3, 64, 64) and data.n_classes == 2
    assert data.y_train.tolist() == [0, 0, 1, 1] and data.y_test.tolist() == [1, 0, 1]


def test_tinyimagenet_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Tiny-ImageNet files not found: expected .*tiny-imagenet-200 "
                                                r"with wnids\.txt, train/<wnid>/images/\*\.JPEG"):
        load_dataset("tinyimagenet", root=tmp_path)


def test_registry_is_complete():
    assert list(DATASETS) == ["digits", "cifar10", "cifar100", "mnist", "tinyimagenet", "synthetic"]
