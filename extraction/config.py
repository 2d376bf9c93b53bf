"""Run configuration: per-dataset defaults, TOML files, and command-line overrides.

Precedence, highest first: command-line flags, the ``--config`` TOML file, the dataset's defaults
(:data:`DATASET_DEFAULTS`), the global defaults. A TOML file has up to three tables::

    [extract]                 # the run: any of the keys of DEFAULTS
    dataset = "digits"
    families = ["mlp", "cnn_small"]
    capacities = [2, 4, 8, 16, 32]
    seeds = 16
    out = "digits.nc"

    [dataset]                 # keyword options of the dataset loader
    root = "~/data/cifar"

    [recipe]                  # fields of sawdist.extraction.train.Recipe
    epochs = 15
    lr = 0.05
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from typing import TYPE_CHECKING

from sawdist.config import read_config

from .recipe import Recipe

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["DEFAULTS", "DATASET_DEFAULTS", "auto_threads", "check_scheduler", "check_shard", "load_toml",
           "resolve"]

#: Global defaults of the run (the keys of the ``[extract]`` table).
DEFAULTS = {
    "dataset": "digits",
    "families": ["cnn_small"],
    "capacities": [4, 8, 16, 32, 64],
    "seeds": 16,
    "out": None,  # default: saliency-<dataset>.nc
    "target": "label_logit",
    "inputs": 1000,
    "device": "auto",
    "mode": "auto",
    "chunk_size": None,
    "progress": True,
    "threads": "auto",  # torch CPU threads: a number, or "auto" (see auto_threads)
    "complevel": 1,  # zlib level of the output file, 0 (none) to 9: 1 compresses as well as 4, twice as fast
    "save_models": None,  # a folder for the trained models (a model pool for sawdist report --models)
    "shard": None,  # "I/N": train only shard I of N of the units (combine the shards with sawdist merge)
    "scheduler": None,  # a Dask cluster: "local:N" (N worker processes here) or "tcp://HOST:PORT"
}

#: Per-dataset defaults. digits is tuned so that the default run (2 families x 5 capacities x 16 seeds) trains and
#: extracts in under 2 minutes on a 2-core CPU (see benchmarks/RESULTS.md) with test accuracy of 0.93-0.99 from
#: capacity 4 up.
DATASET_DEFAULTS = {
    "digits": {"families": ["mlp", "cnn_small"], "capacities": [2, 4, 8, 16, 32], "seeds": 16,
               "recipe": {"epochs": 10}},
}

_TABLES = ("extract", "dataset", "recipe")


def check_shard(shard: str | Sequence[int]) -> tuple[int, int]:
    """``shard`` as ``(index, count)``, from a pair or the text ``"I/N"``, with 0 <= I < N."""
    text = shard if isinstance(shard, str) else None
    if text is not None:
        parts = text.split("/")
        shard = tuple(int(p) if p.strip().isdigit() else p for p in parts)
    ok = (isinstance(shard, tuple | list) and len(shard) == 2
          and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in shard)
          and 0 <= shard[0] < shard[1])
    if not ok:
        got = text if text is not None else repr(shard)
        raise ValueError(f"'shard' must be I/N with 0 <= I < N (e.g. 0/4), got {got}.")
    return int(shard[0]), int(shard[1])


def check_scheduler(scheduler: str) -> str:
    """``scheduler`` checked: ``"local:N"`` (N >= 1 worker processes) or the address of a Dask scheduler
    (:func:`sawdist.cluster.check_scheduler`)."""
    from sawdist.cluster import check_scheduler as check

    return check(scheduler)


def auto_threads() -> int:
    """CPU threads for torch: the cores that other processes leave idle (1-minute load average), at least one.

    Intra-op threads that outnumber the free cores wait for each other at every parallel region; with the small
    models of a digits sweep that made training 4-10x slower on a busy 2-core machine (benchmarks/RESULTS.md).
    """
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - platforms without a load average
        return cores
    return max(1, min(cores, cores - round(load)))


def load_toml(path: str | os.PathLike[str]) -> dict:
    """Read a configuration file; unknown tables, ``[extract]`` or ``[recipe]`` keys are an error."""
    return read_config(path, _TABLES, {"extract": DEFAULTS, "recipe": [f.name for f in recipe_fields()]})


def resolve(file_config: dict | None = None, overrides: dict | None = None,
            recipe_overrides: dict | None = None, dataset_overrides: dict | None = None) -> dict:
    """Merge defaults, a file's configuration and explicit overrides into keyword arguments of ``extract``.

    ``overrides`` and ``recipe_overrides`` hold only the values the user gave (None values are ignored).
    """
    file_config = file_config or {}
    run = dict(DEFAULTS)
    chosen = {k: v for k, v in (overrides or {}).items() if v is not None}
    dataset = chosen.get("dataset", file_config.get("extract", {}).get("dataset", DEFAULTS["dataset"]))
    per_dataset = DATASET_DEFAULTS.get(dataset, {})
    recipe = dict(per_dataset.get("recipe", {}))
    run.update({k: v for k, v in per_dataset.items() if k != "recipe"})
    run.update(file_config.get("extract", {}))
    run.update(chosen)
    recipe.update(file_config.get("recipe", {}))
    recipe.update({k: v for k, v in (recipe_overrides or {}).items() if v is not None})
    options = dict(file_config.get("dataset", {}))
    options.update(dataset_overrides or {})
    if run["out"] is None:
        run["out"] = f"saliency-{run['dataset']}.nc"
    run["recipe"] = Recipe.from_dict(recipe)
    run["dataset_options"] = options
    return run


def recipe_fields() -> list[dataclasses.Field]:
    """The fields of :class:`sawdist.extraction.train.Recipe` (each has a command-line flag)."""
    return list(dataclasses.fields(Recipe))
