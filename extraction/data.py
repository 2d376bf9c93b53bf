"""Datasets for the extraction side: images as float32 tensors of shape ``(n, *input_shape)`` with int64 labels.

``digits`` (scikit-learn's 8x8 digits, shipped with scikit-learn) is the default and needs no files. ``cifar10``,
``cifar100``, ``mnist`` and ``tinyimagenet`` read their standard on-disk formats from a local directory ``root``;
``download=True`` first fetches CIFAR-10, CIFAR-100 or MNIST into ``root`` from the official sites (or
``$SAWDIST_DATA_MIRROR``), checks the published MD5 checksums and unpacks the archives
(:mod:`sawdist.extraction.download`, standard library only). ``synthetic`` draws a seeded classification problem of
any input shape. Every loader standardises its inputs with statistics of the training split only.

Examples
--------
>>> from sawdist.extraction.data import load_dataset
>>> data = load_dataset("digits")
>>> data.input_shape, data.n_classes, tuple(data.x_train.shape)
((1, 8, 8), 10, (1347, 1, 8, 8))
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .download import _MNIST_STEMS, _mnist_path

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

__all__ = ["Dataset", "DATASETS", "load_dataset"]


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A classification dataset held in memory (on one device).

    Attributes
    ----------
    name : str
        Registry name (``"digits"``, ``"cifar10"``, ...).
    x_train, x_test : torch.Tensor
        float32 inputs of shape ``(n, *input_shape)``, standardised with the training split's statistics.
    y_train, y_test : torch.Tensor
        int64 class labels in ``[0, n_classes)``.
    n_classes : int
    options : dict
        The loader's options that define the data (used to recognise a run when it resumes).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    options: dict = dataclasses.field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, e.g. ``(3, 32, 32)``."""
        return tuple(int(s) for s in self.x_train.shape[1:])

    @property
    def n_features(self) -> int:
        """Number of input features d (the dimension of the saliency sphere)."""
        return math.prod(self.input_shape)

    def to(self, device: str | torch.device) -> Dataset:
        """Return a copy with all tensors on ``device`` (the whole dataset lives on the training device)."""
        move = {f: getattr(self, f).to(device) for f in ("x_train", "y_train", "x_test", "y_test")}
        return dataclasses.replace(self, **move)

    def describe(self) -> dict:
        """JSON-serialisable description: name, options, sizes, shape."""
        return {
            "name": self.name,
            "options": self.options,
            "n_train": int(self.x_train.shape[0]),
            "n_test": int(self.x_test.shape[0]),
            "input_shape": list(self.input_shape),
            "n_classes": self.n_classes,
        }


def _standardize(x_train: np.ndarray, x_test: np.ndarray, axis) -> tuple[torch.Tensor, torch.Tensor]:
    """Subtract the training mean and divide by the training standard deviation (per channel or global)."""
    x_train = x_train.astype(np.float32)
    x_test = x_test.astype(np.float32)
    mean = x_train.mean(axis=axis, keepdims=True, dtype=np.float64)
    std = x_train.std(axis=axis, keepdims=True, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    standard = [((x - mean) / std).astype(np.float32) for x in (x_train, x_test)]
    return torch.from_numpy(standard[0]), torch.from_numpy(standard[1])


def _labels(y) -> torch.Tensor:
    return torch.as_tensor(np.asarray(y, dtype=np.int64))


def _maybe_download(kind: str, root: Path) -> None:
    """Fetch ``kind`` into ``root`` unless its loader already finds it there
    (:func:`sawdist.extraction.download.download`)."""
    from .download import download

    download(kind, root)


def _need_root(root, name: str) -> Path:
    if root is None:
        raise ValueError(f"'root' must be the directory that holds the {name} files, got None.")
    return Path(root).expanduser()


# --- digits ------------------------------------------------------------------------------------------------------


def digits(*, test_size: float = 0.25, split_seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1797 images, 10 classes, d = 64).

    A stratified split (``test_size`` of the images, ``split_seed`` fixed) gives 1347 training and 450 test images
    by default; pixels are standardised with the training split's global mean and standard deviation.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise ValueError(f"'test_size' must lie strictly between 0 and 1, got {test_size}.")
    bunch = load_digits()
    images = bunch.images.reshape(-1, 1, 8, 8)
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, bunch.target, test_size=test_size, random_state=split_seed, stratify=bunch.target
    )
    x_tr, x_te = _standardize(x_tr, x_te, axis=None)
    return Dataset("digits", x_tr, _labels(y_tr), x_te, _labels(y_te), 10,
                   {"test_size": test_size, "split_seed": split_seed})


# --- CIFAR (python pickle batches) -----------------------------------------------------------------------------


def _cifar_globals() -> dict[tuple[str, str], object]:
    """The only globals a python-version CIFAR batch refers to: a dict of bytes keys to uint8 arrays, lists and
    bytes needs NumPy's array reconstructors (``numpy.core`` in the published files, ``numpy._core`` from NumPy 2 on;
    ``_frombuffer`` for protocol 5) and ``_codecs.encode`` (bytes written by Python 3 at protocol 2)."""
    import codecs

    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray, numeric
    found = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): codecs.encode}
    for package in ("numpy.core", "numpy._core"):
        found[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        if hasattr(numeric, "_frombuffer"):
            found[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    return found


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR batch and nothing else: ``find_class`` admits only :func:`_cifar_globals`, so a crafted
    file under ``--data-root`` cannot name a function (``os.system``, ``builtins.eval``) for the load to call."""

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="bytes")
        self._path = path
        self._allowed = _cifar_globals()

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise ValueError(f"'{self._path}' is not a CIFAR batch: it asks to load {module}.{name}, which the "
                             f"format never needs; refused without running it.") from None


def _unpickle(path: Path) -> dict:
    """Load one CIFAR batch (a dict) with :class:`_CifarUnpickler`; any other content is a ValueError naming `path`."""
    with open(path, "rb") as f:
        try:
            batch = _CifarUnpickler(f, path).load()
        except (pickle.UnpicklingError, EOFError, TypeError, AttributeError, IndexError) as err:
            raise ValueError(f"'{path}' is not a readable CIFAR batch ({type(err).__name__}: {err}).") from None
    if not isinstance(batch, dict):
        raise ValueError(f"'{path}' is not a CIFAR batch: it holds a {type(batch).__name__}, not a dict.")
    return batch


def _cifar_dir(root: Path, folder: str, files: list[str], name: str, layout: str) -> Path:
    for candidate in (root / folder, root):
        if all((candidate / f).is_file() for f in files):
            return candidate
    missing = [f for f in files if not (root / folder / f).is_file()]
    raise FileNotFoundError(
        f"{name} files not found: expected {root / folder} ({layout}) with {', '.join(missing)} missing; "
        f"pass download=True to fetch it, or unpack the python version of {name} there."
    )


def _cifar_images(raw: np.ndarray) -> np.ndarray:
    return np.asarray(raw, dtype=np.uint8).reshape(-1, 3, 32, 32)


def cifar10(root: str | os.PathLike[str] | None = None, *, download: bool = False) -> Dataset:
    """CIFAR-10 from the python pickle batches in ``root/cifar-10-batches-py`` (or ``root`` itself).

    ``download=True`` first fetches ``cifar-10-python.tar.gz`` into ``root`` and unpacks it there, unless the batches
    are already in place.

    Layout: ``data_batch_1`` ... ``data_batch_5`` and ``test_batch``, each a pickled dict with ``b"data"``
    (n x 3072 uint8, channel-major) and ``b"labels"``. Inputs are standardised per channel.
    """
    root = _need_root(root, "CIFAR-10")
    if download:
        _maybe_download("cifar10", root)
    train_files = [f"data_batch_{i}" for i in range(1, 6)]
    folder = _cifar_dir(root, "cifar-10-batches-py", train_files + ["test_batch"], "CIFAR-10",
                        "data_batch_1..5 and test_batch pickles")
    train = [_unpickle(folder / f) for f in train_files]
    test = _unpickle(folder / "test_batch")
    x_tr = _cifar_images(np.concatenate([b[b"data"] for b in train]))
    y_tr = np.concatenate([b[b"labels"] for b in train])
    x_tr, x_te = _standardize(x_tr, _cifar_images(test[b"data"]), axis=(0, 2, 3))
    return Dataset("cifar10", x_tr, _labels(y_tr), x_te, _labels(test[b"labels"]), 10, {"root": str(root)})


def cifar100(root: str | os.PathLike[str] | None = None, *, download: bool = False, labels: str = "fine") -> Dataset:
    """CIFAR-100 from the python pickles ``root/cifar-100-python/{train,test}`` (or ``root`` itself).

    ``labels`` chooses the 100 ``"fine"`` classes or the 20 ``"coarse"`` superclasses. ``download=True`` first
    fetches ``cifar-100-python.tar.gz`` into ``root`` and unpacks it there, unless the pickles are already in place.
    """
    if labels not in ("fine", "coarse"):
        raise ValueError(f"'labels' must be 'fine' or 'coarse', got {labels!r}.")
    root = _need_root(root, "CIFAR-100")
    if download:
        _maybe_download("cifar100", root)
    folder = _cifar_dir(root, "cifar-100-python", ["train", "test"], "CIFAR-100", "train and test pickles")
    train, test = _unpickle(folder / "train"), _unpickle(folder / "test")
    key = b"fine_labels" if labels == "fine" else b"coarse_labels"
    x_tr, x_te = _standardize(_cifar_images(train[b"data"]), _cifar_images(test[b"data"]), axis=(0, 2, 3))
    n_classes = 100 if labels == "fine" else 20
    return Dataset("cifar100", x_tr, _labels(train[key]), x_te, _labels(test[key]), n_classes,
                   {"root": str(root), "labels": labels})


# --- MNIST (idx files) -------------------------------------------------------------------------------------------

# The loader and the downloader (sawdist.extraction.download, standard library only) find the files one way.
_MNIST_FILES = dict(zip(("x_train", "y_train", "x_test", "y_test"), _MNIST_STEMS, strict=True))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an idx file (the MNIST format; gzip-compressed when the name ends in ``.gz``) into a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"'path' {str(path)!r} is not an idx file (bad magic number).")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in dtypes:
        raise ValueError(f"'path' {str(path)!r} has an unknown idx data type code {raw[2]:#04x}.")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=dtypes[raw[2]], offset=4 + 4 * ndim)
    if data.size != math.prod(shape):
        raise ValueError(f"'path' {str(path)!r} holds {data.size} values, its header says {shape}.")
    return data.reshape(shape).astype(data.dtype.newbyteorder("="))


def mnist(root: str | os.PathLike[str] | None = None, *, download: bool = False) -> Dataset:
    """MNIST from the four idx files (optionally ``.gz``) in ``root`` or ``root/MNIST/raw`` (torchvision's layout).

    ``download=True`` first fetches the missing ``.gz`` idx files into ``root``.

    Pixels are standardised with the training split's global mean and standard deviation; inputs are (1, 28, 28).
    """
    root = _need_root(root, "MNIST")
    if download:
        _maybe_download("mnist", root)
    paths = {key: _mnist_path(root, stem) for key, stem in _MNIST_FILES.items()}
    missing = [_MNIST_FILES[k] for k, p in paths.items() if p is None]
    if missing:
        raise FileNotFoundError(
            f"MNIST files not found: expected {root} (or {root / 'MNIST' / 'raw'}) to hold the idx files "
            f"{', '.join(_MNIST_FILES.values())} (optionally .gz), missing {', '.join(missing)}."
        )
    arrays = {key: read_idx(p) for key, p in paths.items()}
    x_tr, x_te = (arrays[k][:, None, :, :] for k in ("x_train", "x_test"))
    x_tr, x_te = _standardize(x_tr, x_te, axis=None)
    return Dataset("mnist", x_tr, _labels(arrays["y_train"]), x_te, _labels(arrays["y_test"]), 10,
                   {"root": str(root)})


# --- Tiny-ImageNet (folder layout) --------------------------------------------------------------------------------


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1)


def tinyimagenet(root: str | os.PathLike[str] | None = None) -> Dataset:
    """Tiny-ImageNet-200 from its folder layout; the labelled ``val`` split serves as the test split.

    Layout (``root/tiny-imagenet-200`` or ``root`` itself): ``wnids.txt``; ``train/<wnid>/images/*.JPEG``;
    ``val/images/*.JPEG`` with ``val/val_annotations.txt`` (``file<TAB>wnid<TAB>...`` per line). Images are read as
    RGB (3, 64, 64) and standardised per channel.
    """
    root = _need_root(root, "Tiny-ImageNet")
    folder = next((c for c in (root / "tiny-imagenet-200", root) if (c / "wnids.txt").is_file()), None)
    if folder is None or not (folder / "val" / "val_annotations.txt").is_file():
        raise FileNotFoundError(
            f"Tiny-ImageNet files not found: expected {root / 'tiny-imagenet-200'} with wnids.txt, "
            "train/<wnid>/images/*.JPEG, val/images/*.JPEG and val/val_annotations.txt."
        )
    wnids = [w.strip() for w in (folder / "wnids.txt").read_text().split() if w.strip()]
    index = {w: i for i, w in enumerate(wnids)}
    x_tr, y_tr = [], []
    for wnid in wnids:
        for path in sorted((folder / "train" / wnid / "images").glob("*.JPEG")):
            x_tr.append(_read_image(path))
            y_tr.append(index[wnid])
    x_te, y_te = [], []
    for line in (folder / "val" / "val_annotations.txt").read_text().splitlines():
        fields = line.split("\t")
        if len(fields) >= 2:
            x_te.append(_read_image(folder / "val" / "images" / fields[0]))
            y_te.append(index[fields[1]])
    if not x_tr or not x_te:
        raise FileNotFoundError(f"Tiny-ImageNet under {folder} has no training or validation images.")
    x_tr, x_te = _standardize(np.stack(x_tr), np.stack(x_te), axis=(0, 2, 3))
    return Dataset("tinyimagenet", x_tr, _labels(y_tr), x_te, _labels(y_te), len(wnids), {"root": str(root)})


# --- synthetic ---------------------------------------------------------------------------------------------------


def _parse_shape(shape) -> tuple[int, ...]:
    if isinstance(shape, str):
        try:
            shape = tuple(int(s) for s in shape.lower().replace(",", "x").split("x") if s)
        except ValueError:
            raise ValueError(f"'shape' must look like 3x32x32, got {shape!r}.") from None
    shape = tuple(int(s) for s in shape)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"'shape' must be a non-empty tuple of positive sizes, got {shape}.")
    return shape


def synthetic(*, shape: str | Sequence[int] = (3, 32, 32), n_classes: int = 10, n_train: int = 5000, n_test: int = 1000,
              noise: float = 1.0, seed: int = 0) -> Dataset:
    """A seeded Gaussian-mixture classification problem with inputs of any ``shape``.

    Each class has a smooth random mean image (drawn at a quarter of the resolution and upsampled, so convolutions
    have spatial structure to learn); an input is its class mean plus ``noise`` times white noise.
    """
    shape = _parse_shape(shape)
    if n_classes < 2:
        raise ValueError(f"'n_classes' must be at least 2, got {n_classes}.")
    if n_train < 1 or n_test < 1:
        raise ValueError(f"'n_train' and 'n_test' must be positive, got {n_train} and {n_test}.")
    g = torch.Generator().manual_seed(int(seed))
    if len(shape) == 3:
        c, h, w = shape
        coarse = torch.randn(n_classes, c, max(1, h // 4), max(1, w // 4), generator=g)
        means = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
        means = means / means.flatten(1).std(dim=1).clamp_min(1e-6).view(-1, 1, 1, 1)
    else:
        means = torch.randn(n_classes, *shape, generator=g)
    y = torch.randint(n_classes, (n_train + n_test,), generator=g)
    x = means[y] + noise * torch.randn(n_train + n_test, *shape, generator=g)
    options = {"shape": list(shape), "n_classes": n_classes, "n_train": n_train, "n_test": n_test,
               "noise": noise, "seed": seed}
    return Dataset("synthetic", x[:n_train].contiguous(), y[:n_train].clone(), x[n_train:].contiguous(),
                   y[n_train:].clone(), n_classes, options)


#: Registry: dataset name -> loader (keyword options as documented by each loader).
DATASETS = {
    "digits": digits,
    "cifar10": cifar10,
    "cifar100": cifar100,
    "mnist": mnist,
    "tinyimagenet": tinyimagenet,
    "synthetic": synthetic,
}


def load_dataset(name: str = "digits", **options: Any) -> Dataset:
    """Load dataset ``name`` from :data:`DATASETS` with the loader's keyword ``options`` (``root=...``, ...).

    Examples
    --------
    >>> data = load_dataset("synthetic", shape=(3, 16, 16), n_classes=4, n_train=64, n_test=16)
    >>> tuple(data.x_test.shape), data.n_classes
    ((16, 3, 16, 16), 4)
    """
    if name not in DATASETS:
        raise ValueError(f"'dataset' must be one of {', '.join(DATASETS)}, got {name!r}.")
    return DATASETS[name](**options)
