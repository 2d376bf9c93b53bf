"""Fetch CIFAR-10, CIFAR-100 and MNIST into the layout :mod:`sawdist.extraction.data` reads (standard library and tqdm
only).

:func:`download` is what ``download=True`` of the loaders (``sawdist extract --download``) calls. It fetches

* CIFAR-10: ``cifar-10-python.tar.gz`` (the python version) from ``https://www.cs.toronto.edu/~kriz/``, unpacked to
  ``ROOT/cifar-10-batches-py/``;
* CIFAR-100: ``cifar-100-python.tar.gz`` from the same site, unpacked to ``ROOT/cifar-100-python/``;
* MNIST: the four idx files ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
  ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` into ``ROOT/`` (kept compressed; the loader reads
  ``.gz``), from the S3 mirror torchvision uses, ``https://ossci-datasets.s3.amazonaws.com/mnist/``, with
  ``http://yann.lecun.com/exdb/mnist/`` as fallback.

Every file is streamed into a temporary file in the target folder, its MD5 checksum is compared with the published
one (:data:`CHECKSUMS`), and only then is it renamed into place; a failed download or a checksum mismatch leaves no
file behind and raises :class:`DownloadError` with one sentence that names the URL and the folder. Archives are
unpacked only after every member has been checked (no absolute paths, no ``..``, no links, no device files; Python's
``filter="data"`` on top where it exists). Files that are already there are never overwritten or deleted: a dataset
whose files the loader already finds is not fetched again, an archive or ``.gz`` file already in the folder is
verified instead of fetched (a mismatch is an error, and the file stays), and unpacking keeps any file already in
place.

Mirrors: set the environment variable ``SAWDIST_DATA_MIRROR`` to a base URL (``https://``, ``http://`` or
``file://``) under which the files above lie by their original names, e.g. ``https://mirror.example.org/datasets/``
holding ``cifar-10-python.tar.gz``; it replaces the official sites for every dataset. The ``base_url`` argument of
:func:`download` overrides both, and :data:`BASE_URLS` holds the defaults.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath

__all__ = ["BASE_URLS", "CHECKSUMS", "MIRROR_ENV", "DownloadError", "download", "file_urls"]

#: Environment variable holding a base URL that replaces the official sites (files under their original names).
MIRROR_ENV = "SAWDIST_DATA_MIRROR"

#: Default base URLs per dataset, tried in order (the file name is appended).
BASE_URLS: dict[str, tuple[str, ...]] = {
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/",),
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
}

#: Published MD5 checksums of the files fetched (the same values torchvision checks).
CHECKSUMS: dict[str, str] = {
    "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
    "cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85",
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

#: Seconds a connection attempt or a single read may take before the download is given up.
DEFAULT_TIMEOUT = 60.0

_BLOCK = 1 << 20


class DownloadError(OSError):
    """A dataset file could not be fetched, verified or unpacked; the message says which, where, and what to do."""


@dataclasses.dataclass(frozen=True)
class _Spec:
    files: tuple[str, ...]  # names on the server and in ROOT
    folder: str | None  # the archive's top folder (tar archives), None: the files themselves are the data
    needed: tuple[str, ...]  # files the loader reads (in folder, or in ROOT for MNIST without .gz)
    layout: str  # for the error messages; "{root}" is filled in


_MNIST_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte")

_SPECS = {
    "cifar10": _Spec(("cifar-10-python.tar.gz",), "cifar-10-batches-py",
                     tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",),
                     "{root}/cifar-10-batches-py/ with data_batch_1 ... data_batch_5 and test_batch from the python "
                     "version of CIFAR-10"),
    "cifar100": _Spec(("cifar-100-python.tar.gz",), "cifar-100-python", ("train", "test"),
                      "{root}/cifar-100-python/ with train and test from the python version of CIFAR-100"),
    "mnist": _Spec(tuple(stem + ".gz" for stem in _MNIST_STEMS), None, _MNIST_STEMS,
                   "{root}/ with " + ", ".join(_MNIST_STEMS) + ", optionally .gz"),
}


def _bases(name: str, base_url) -> tuple[str, ...]:
    if base_url is not None:
        bases = (base_url,) if isinstance(base_url, str) else tuple(base_url)
    elif os.environ.get(MIRROR_ENV, "").strip():
        bases = (os.environ[MIRROR_ENV].strip(),)
    else:
        bases = tuple(BASE_URLS[name])
    if not bases:
        raise ValueError(f"'base_url' must name at least one base URL, got {base_url!r}.")
    return bases


def file_urls(name: str, filename: str, base_url: str | Sequence[str] | None = None) -> list[str]:
    """The URLs tried, in order, for ``filename`` of dataset ``name`` (``base_url``, else the mirror, else defaults)."""
    return [base.rstrip("/") + "/" + filename for base in _bases(name, base_url)]


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class _Mismatch(Exception):
    pass


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP Error {error.code}: {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason) or type(error.reason).__name__
    return str(error) or type(error).__name__


def _fetch_one(url: str, dest: Path, md5: str, timeout: float, progress: bool) -> None:
    """Stream ``url`` into a temporary file next to ``dest``, check its MD5, rename it to ``dest``; else remove it."""
    from tqdm.auto import tqdm

    fd, part = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "sawdist (python urllib)"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                length = response.headers.get("Content-Length", "")
                total = int(length) if length.strip().isdigit() else None
                with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name,
                          disable=not progress or total is None, dynamic_ncols=True) as bar:
                    while block := response.read(_BLOCK):
                        out.write(block)
                        digest.update(block)
                        bar.update(len(block))
        if digest.hexdigest() != md5:
            raise _Mismatch(f"the MD5 checksum of what came is {digest.hexdigest()}, not the expected {md5}")
        os.replace(part, dest)
    except BaseException:
        Path(part).unlink(missing_ok=True)
        raise


def _fetch(name: str, filename: str, root: Path, base_url, timeout: float, progress: bool, layout: str) -> Path:
    """Fetch ``filename`` into ``root`` from the first base URL that delivers it intact."""
    dest = root / filename
    failures = []
    for url in file_urls(name, filename, base_url):
        try:
            _fetch_one(url, dest, CHECKSUMS[filename], timeout, progress)
            return dest
        except (OSError, ValueError, http.client.HTTPException, _Mismatch) as error:
            if isinstance(error, urllib.error.HTTPError):
                error.close()
            failures.append((url, _reason(error)))
    (url, reason), others = failures[0], failures[1:]
    also = "".join(f" (nor from {u}: {r})" for u, r in others)
    raise DownloadError(f"could not download {url} into {root}: {reason}{also}; put the files there yourself "
                        f"(expected layout: {layout}).")


def _verify_existing(path: Path, layout: str) -> None:
    expected = CHECKSUMS[path.name]
    found = _md5(path)
    if found != expected:
        raise DownloadError(f"{path} is already there but its MD5 checksum is {found}, not the expected {expected} of "
                            f"the official file; it was left as it is: remove it to download again, or put the files "
                            f"there yourself (expected layout: {layout}).")


def _unsafe(member: tarfile.TarInfo) -> str | None:
    name = member.name.replace("\\", "/")
    if name.startswith("/") or PureWindowsPath(member.name).drive or PureWindowsPath(member.name).is_absolute():
        return "has an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "leads out of the folder (..)"
    if member.issym() or member.islnk():
        return "is a link"
    if not (member.isfile() or member.isdir()):
        return "is not a regular file or folder"
    return None


def _unpack(archive: Path, root: Path, layout: str) -> None:
    """Unpack the checked members of ``archive`` into ``root``, keeping every file already in place."""
    suffix = f"; put the files there yourself (expected layout: {layout})."
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                why = _unsafe(member)
                if why is not None:
                    raise DownloadError(f"refusing to unpack {archive} into {root}: its member {member.name!r} "
                                        f"{why}{suffix}")
            staging = Path(tempfile.mkdtemp(prefix=".sawdist-unpack-", dir=root))
            try:
                if hasattr(tarfile, "data_filter"):  # Python 3.12, and 3.8.17 / 3.9.17 / 3.10.12 / 3.11.4 onwards
                    tar.extractall(staging, members=members, filter="data")
                else:  # pragma: no cover - older Pythons; the members were checked above
                    tar.extractall(staging, members=members)
                for folder, _, files in os.walk(staging):
                    target = root / Path(folder).relative_to(staging)
                    target.mkdir(exist_ok=True)
                    for file in files:
                        if not os.path.lexists(target / file):  # never overwrite a file already in place
                            os.replace(Path(folder) / file, target / file)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except DownloadError:
        raise
    except (OSError, tarfile.TarError, EOFError) as error:
        raise DownloadError(f"could not unpack {archive} into {root}: {_reason(error)}{suffix}") from None


def _mnist_path(root: Path, stem: str) -> Path | None:
    """The idx file of ``stem`` under ``root`` (plain or ``.gz``; in ``root``, ``root/MNIST/raw`` (torchvision's
    layout) or ``root/mnist``), or None: the one search of the MNIST loader (:func:`sawdist.extraction.data.mnist`)
    and of :func:`download`, which fetches only what it would not find."""
    for folder in (root, root / "MNIST" / "raw", root / "mnist"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def _loader_finds(spec: _Spec, root: Path) -> list[Path | None]:
    """Per needed file: what the loader already reads under ``root`` (for an archive's folder: the folder), or None."""
    if spec.folder is not None:
        folder = next((c for c in (root / spec.folder, root) if all((c / f).is_file() for f in spec.needed)), None)
        return [folder] * len(spec.needed)
    return [_mnist_path(root, stem) for stem in spec.needed]


def download(name: str, root: str | os.PathLike[str], *, base_url: str | Sequence[str] | None = None,
             timeout: float = DEFAULT_TIMEOUT, progress: bool = True) -> list[Path]:
    """Fetch dataset ``name`` (``"cifar10"``, ``"cifar100"`` or ``"mnist"``) into ``root`` unless it is there.

    Parameters
    ----------
    name : str
        Dataset to fetch.
    root : path-like
        Folder the loader reads (created when missing); the files land in the layout of :mod:`sawdist.extraction.data`.
    base_url : str or sequence of str, optional
        Base URL(s) to fetch from, tried in order; default: ``$SAWDIST_DATA_MIRROR`` when set, else
        :data:`BASE_URLS` (the official sites).
    timeout : float
        Seconds a connection attempt or any single read may take.
    progress : bool
        Show a tqdm progress bar per file (when the server announces the size).

    Returns
    -------
    list of Path
        The files downloaded by this call (empty when everything was already there).

    Raises
    ------
    DownloadError
        When a file cannot be fetched, fails its checksum, or an archive holds an unsafe member; nothing this call
        started is left behind (files it completed and verified stay, so a new call fetches only the rest).
    """
    if name not in _SPECS:
        raise ValueError(f"'name' must be one of {', '.join(_SPECS)}, got {name!r}.")
    if timeout is None or not timeout > 0:
        raise ValueError(f"'timeout' must be a positive number of seconds, got {timeout!r}.")
    spec = _SPECS[name]
    root = Path(root).expanduser()
    layout = spec.layout.format(root=root)
    found = _loader_finds(spec, root)
    if all(p is not None for p in found):
        return []
    _bases(name, base_url)  # reject an empty base_url before touching the disk
    missing_dirs = [p for p in (root, *root.parents) if not p.exists()]
    root.mkdir(parents=True, exist_ok=True)
    fetched: list[Path] = []
    try:
        if spec.folder is not None:  # one tar archive
            archive = root / spec.files[0]
            if archive.exists():
                _verify_existing(archive, layout)
            else:
                fetched.append(_fetch(name, archive.name, root, base_url, timeout, progress, layout))
            try:
                _unpack(archive, root, layout)
            except DownloadError:
                if fetched:  # ours and useless: remove it
                    archive.unlink(missing_ok=True)
                    fetched.clear()
                raise
        else:  # MNIST: the compressed idx files themselves
            for filename, there in zip(spec.files, found):
                if there is not None:  # the loader reads it: verify it when it is the published .gz file
                    if there.name == filename:
                        _verify_existing(there, layout)
                    continue
                fetched.append(_fetch(name, filename, root, base_url, timeout, progress, layout))
    except BaseException:
        for folder in missing_dirs:  # deepest first: remove the folders this call created, when still empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return fetched
