"""sawdist.extraction.download against a local HTTP server on 127.0.0.1 (no other traffic): fetch, verify, unpack,
refuse."""

# ruff: noqa: F811  (pytest fixtures imported from extraction_fixtures are test arguments of the same name)
import functools
import gzip
import hashlib
import http.server
import io
import re
import tarfile
import threading
import time
import types

import numpy as np
import pytest

from sawdist.extraction import download as dl
from sawdist.extraction.data import load_dataset

from .extraction_fixtures import _one_torch_thread  # noqa: F401  (fixture)
from .test_data import _cifar_batch, _idx

TIMEOUT = 10.0  # seconds; every request of these tests goes to 127.0.0.1


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        if self.path.startswith("/slow/"):
            time.sleep(1.0)
        super().do_GET()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that gave up (the timeout test): not an error here
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serve ``tmp_path/served`` over HTTP on 127.0.0.1; ``requests`` lists the paths asked for."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)
    served = tmp_path / "served"
    served.mkdir()
    httpd = _Server(("127.0.0.1", 0), functools.partial(_Handler, directory=str(served)))
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield types.SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_address[1]}/", folder=served,
                                    requests=httpd.requests)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=TIMEOUT)


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _tar_gz(entries) -> bytes:
    """A tar.gz of ``(name, bytes)`` regular files and ready-made ``TarInfo`` members (``(info, None)``)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in entries:
            if data is None:
                tar.addfile(name)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _fake_cifar10(tmp_path) -> bytes:
    """The python version of CIFAR-10 in miniature: cifar-10-batches-py/ with 4 images per batch, 3 in test_batch."""
    rng = np.random.default_rng(5)
    folder = tmp_path / "fake-cifar"
    folder.mkdir()
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        _cifar_batch(folder / name, 3 if name == "test_batch" else 4, rng)
    return _tar_gz([(f"cifar-10-batches-py/{n}", (folder / n).read_bytes()) for n in names])


def _serve(server, monkeypatch, filename: str, data: bytes, md5: str | None = None):
    (server.folder / filename).write_bytes(data)
    monkeypatch.setitem(dl.CHECKSUMS, filename, md5 or _md5(data))


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) if folder.exists() else []


def test_cifar10_download_loads_and_is_not_fetched_twice(tmp_path, server, monkeypatch):
    archive = _fake_cifar10(tmp_path)
    _serve(server, monkeypatch, "cifar-10-python.tar.gz", archive)
    monkeypatch.setenv(dl.MIRROR_ENV, server.url)
    root = tmp_path / "data" / "cifar"  # missing: created
    data = load_dataset("cifar10", root=root, download=True)
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_test.shape == (3, 3, 32, 32)
    assert server.requests == ["/cifar-10-python.tar.gz"]
    assert _files(root) == ["cifar-10-batches-py"] + [f"cifar-10-batches-py/{n}" for n in (
        "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")] + [
        "cifar-10-python.tar.gz"]  # no temporary files left
    again = load_dataset("cifar10", root=root, download=True)
    assert server.requests == ["/cifar-10-python.tar.gz"]  # nothing downloaded the second time
    assert (again.x_test == data.x_test).all()
    # the verified archive alone is unpacked again without a download
    (root / "cifar-10-batches-py" / "test_batch").unlink()
    assert dl.download("cifar10", root, timeout=TIMEOUT, progress=False) == []
    assert server.requests == ["/cifar-10-python.tar.gz"] and (root / "cifar-10-batches-py" / "test_batch").is_file()


def test_unpacking_keeps_files_already_there(tmp_path, server, monkeypatch):
    _serve(server, monkeypatch, "cifar-10-python.tar.gz", _fake_cifar10(tmp_path))
    root = tmp_path / "data"
    (root / "cifar-10-batches-py").mkdir(parents=True)
    mine = root / "cifar-10-batches-py" / "test_batch"
    _cifar_batch(mine, 2, np.random.default_rng(9))
    before = mine.read_bytes()
    assert dl.download("cifar10", root, base_url=server.url, timeout=TIMEOUT, progress=False) == [
        root / "cifar-10-python.tar.gz"]
    assert mine.read_bytes() == before  # never overwritten
    assert load_dataset("cifar10", root=root).x_test.shape[0] == 2


def test_mnist_download_with_fallback_mirror(tmp_path, server, monkeypatch):
    rng = np.random.default_rng(6)
    shapes = {"train-images-idx3-ubyte": (5, 28, 28), "train-labels-idx1-ubyte": (5,),
              "t10k-images-idx3-ubyte": (3, 28, 28), "t10k-labels-idx1-ubyte": (3,)}
    arrays = {}
    for stem, shape in shapes.items():
        arrays[stem] = rng.integers(0, 10 if len(shape) == 1 else 256, shape, dtype=np.uint8)
        _serve(server, monkeypatch, stem + ".gz", gzip.compress(_idx(arrays[stem], 0x08)))
    # the module-level table is the default; its first base URL answers 404, the second serves the files
    monkeypatch.setitem(dl.BASE_URLS, "mnist", (server.url + "gone/", server.url))
    root = tmp_path / "mnist"
    data = load_dataset("mnist", root=root, download=True)
    assert data.x_train.shape == (5, 1, 28, 28) and data.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert len(server.requests) == 8 and sum(p.startswith("/gone/") for p in server.requests) == 4
    assert _files(root) == sorted(stem + ".gz" for stem in shapes)
    load_dataset("mnist", root=root, download=True)
    assert len(server.requests) == 8  # present and verified: nothing fetched
    # one file missing: only that one is fetched
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    assert dl.download("mnist", root, base_url=server.url, timeout=TIMEOUT, progress=False) == [
        root / "t10k-labels-idx1-ubyte.gz"]
    assert server.requests[8:] == ["/t10k-labels-idx1-ubyte.gz"]


def test_wrong_checksum_leaves_nothing(tmp_path, server, monkeypatch):
    _serve(server, monkeypatch, "cifar-10-python.tar.gz", _fake_cifar10(tmp_path), md5="0" * 32)
    root, url = tmp_path / "data", re.escape(server.url)
    r = re.escape(str(root))
    with pytest.raises(dl.DownloadError, match=(
            rf"^could not download {url}cifar-10-python\.tar\.gz into {r}: the MD5 checksum of what came "
            rf"is [0-9a-f]{{32}}, not the expected 0{{32}}; put the files there yourself \(expected layout: {r}/"
            r"cifar-10-batches-py/ with data_batch_1 \.\.\. data_batch_5 and test_batch from the python version of "
            r"CIFAR-10\)\.$")):
        dl.download("cifar10", root, base_url=server.url, timeout=TIMEOUT, progress=False)
    assert not root.exists()  # the folder it created is gone too
    root.mkdir()
    with pytest.raises(dl.DownloadError, match=r"^could not download .*: the MD5 checksum"):
        dl.download("cifar10", root, base_url=server.url, timeout=TIMEOUT, progress=False)
    assert _files(root) == []


def test_existing_file_with_wrong_checksum_is_kept(tmp_path, server, monkeypatch):
    _serve(server, monkeypatch, "cifar-10-python.tar.gz", _fake_cifar10(tmp_path))
    root = tmp_path / "data"
    root.mkdir()
    (root / "cifar-10-python.tar.gz").write_bytes(b"not the archive")
    with pytest.raises(dl.DownloadError, match=r"cifar-10-python\.tar\.gz is already there but its MD5 checksum is "
                                               r"[0-9a-f]{32}, not the expected [0-9a-f]{32} of the official file; "
                                               r"it was left as it is"):
        dl.download("cifar10", root, base_url=server.url, timeout=TIMEOUT, progress=False)
    assert (root / "cifar-10-python.tar.gz").read_bytes() == b"not the archive" and server.requests == []


def _link(name, kind, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


@pytest.mark.parametrize(("member", "why"), [
    (("../escape", b"outside"), r"leads out of the folder \(\.\.\)"),
    (("cifar-10-batches-py/../../escape", b"outside"), r"leads out of the folder \(\.\.\)"),
    (("/tmp/escape-absolute", b"outside"), "has an absolute path"),
    (_link("cifar-10-batches-py/link", tarfile.SYMTYPE, "../../escape"), "is a link"),
    (_link("cifar-10-batches-py/hard", tarfile.LNKTYPE, "cifar-10-batches-py/test_batch"), "is a link"),
])
def test_unsafe_archive_is_refused(tmp_path, server, monkeypatch, member, why):
    good = [("cifar-10-batches-py/test_batch", b"x")]
    _serve(server, monkeypatch, "cifar-10-python.tar.gz", _tar_gz(good + [member]))
    root = tmp_path / "deep" / "data"
    r = re.escape(str(root))
    with pytest.raises(dl.DownloadError, match=rf"^refusing to unpack {r}/cifar-10-python\.tar\.gz into {r}: "
                                               rf"its member '.*' {why}; put the files there yourself"):
        dl.download("cifar10", root, base_url=server.url, timeout=TIMEOUT, progress=False)
    assert not (tmp_path / "deep").exists() and not (tmp_path / "escape").exists()


def test_http_404_is_one_sentence(tmp_path, server, monkeypatch):
    monkeypatch.setenv(dl.MIRROR_ENV, server.url + "nothing/")
    root, url = tmp_path / "data", re.escape(server.url)
    r = re.escape(str(root))
    root.mkdir()
    with pytest.raises(dl.DownloadError, match=(
            rf"^could not download {url}nothing/cifar-100-python\.tar\.gz into {r}: HTTP Error 404: "
            rf"File not found; put the files there yourself \(expected layout: {r}/cifar-100-python/ with train "
            r"and test from the python version of CIFAR-100\)\.$")):
        load_dataset("cifar100", root=root, download=True)
    assert _files(root) == []
    with pytest.raises(dl.DownloadError, match=(
            rf"^could not download {url}a/train-images-idx3-ubyte\.gz into {r}: HTTP Error 404: File not "
            rf"found \(nor from {url}b/train-images-idx3-ubyte\.gz: HTTP Error 404: File not found\); put")):
        dl.download("mnist", root, base_url=[server.url + "a", server.url + "b/"], timeout=TIMEOUT, progress=False)
    assert _files(root) == []


def test_timeout_bounds_a_stalled_server(tmp_path, server, monkeypatch):
    _serve(server, monkeypatch, "cifar-10-python.tar.gz", b"late")
    (server.folder / "slow").mkdir()
    (server.folder / "slow" / "cifar-10-python.tar.gz").write_bytes(b"late")
    with pytest.raises(dl.DownloadError, match=r"^could not download .*/slow/cifar-10-python\.tar\.gz into .*: "
                                               r"timed out; put"):
        dl.download("cifar10", tmp_path / "data", base_url=server.url + "slow/", timeout=0.2, progress=False)
    assert not (tmp_path / "data").exists()


def test_mirror_environment_and_errors(monkeypatch):
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)
    assert dl.file_urls("mnist", "t10k-labels-idx1-ubyte.gz") == [
        "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
        "http://yann.lecun.com/exdb/mnist/t10k-labels-idx1-ubyte.gz"]
    assert dl.file_urls("cifar10", "cifar-10-python.tar.gz") == [
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
    monkeypatch.setenv(dl.MIRROR_ENV, "https://mirror.example.org/data")
    assert dl.file_urls("cifar100", "cifar-100-python.tar.gz") == [
        "https://mirror.example.org/data/cifar-100-python.tar.gz"]
    assert dl.file_urls("cifar100", "x", base_url="file:///srv/") == ["file:///srv/x"]
    with pytest.raises(ValueError, match=r"^'name' must be one of cifar10, cifar100, mnist, got 'imagenet'\.$"):
        dl.download("imagenet", "/nonexistent")
    with pytest.raises(ValueError, match=r"^'timeout' must be a positive number of seconds, got 0\.$"):
        dl.download("mnist", "/nonexistent", timeout=0)


def test_published_checksums():
    assert dl.CHECKSUMS == {
        "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
        "cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85",
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }
