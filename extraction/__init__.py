"""The extraction side of sawdist: train model families across capacity and seed, compute input-saliency directions,
and write them as a saliency dataset (see :mod:`sawdist.io` for the schema).

Modules
-------
data
    Datasets (digits, CIFAR-10/100, MNIST, Tiny-ImageNet from local files; synthetic).
download
    Fetch CIFAR-10/100 and MNIST, checksum-verified, into the layout ``data`` reads (``download=True``).
models
    The model zoo, each family parameterised by a capacity k.
train
    Many seeds trained at once with ``torch.func`` (or one by one), from a :class:`~sawdist.extraction.train.Recipe`.
saliency
    Per-input gradients of a target, normalized to unit directions.
sweep
    :func:`~sawdist.extraction.sweep.extract`, the resumable sweep behind ``sawdist extract``: its settings, the
    decisions made once, the units of work and the loop over them.
parts
    The resumable part store: one part file per finished model, the manifest of decisions, and the assembly of the
    parts into the dataset (or into a shard file, ``--shard I/N``; :mod:`sawdist.shards` merges shards).
distributed
    The Dask cluster a sweep runs its units on (``--scheduler local:N`` or ``tcp://HOST:PORT``).
pool
    :class:`~sawdist.extraction.pool.TorchModelPool`, trained models kept for the transfer attack.
cli, config
    The command line and its TOML configuration.

Needs PyTorch (``pip install 'sawdist[extraction]'``); ``import sawdist`` never imports it.
"""

__all__ = ["extract"]


def __getattr__(name):
    if name == "extract":
        from .sweep import extract

        return extract
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
