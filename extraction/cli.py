"""``sawdist extract``: train model families across capacity and seed and write their saliency dataset.

Registered in :data:`sawdist.cli.SUBCOMMANDS` as ``"extract": "sawdist.extraction.cli:add_parser"``: like
``sawdist run`` and ``sawdist report`` (:mod:`sawdist.analyses.cli`), this module is the application layer above
the package it drives, and nothing in :mod:`sawdist.extraction` imports it.

Examples
--------
::

    sawdist extract                                   # digits: mlp + cnn_small, capacities 2..32, 16 seeds
    sawdist extract --dataset cifar10 --data-root ~/data --families cnn_small,resnet_small \\
        --capacities 4,8,16,32,64 --seeds 32 --epochs 10 --out cifar10.nc
    sawdist extract --config run.toml --seeds 8       # flags override the file
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import re
import shlex
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from sawdist.cli import CommandError, UsageError, read_config

from .config import DEFAULTS, check_scheduler, check_shard
from .recipe import MODES, OPTIMIZERS, SCHEDULES, Recipe

if TYPE_CHECKING:
    import os
    from collections.abc import Iterator
    from typing import Literal

__all__ = ["Origin", "add_merge_parser", "add_parser", "check_data", "merge", "need_torch", "prepare", "run",
           "set_threads"]

log = logging.getLogger("sawdist.extract")

# mirrors sawdist.extraction.saliency.TARGETS (no torch here)
_TARGETS = ("label_logit", "pred_logit", "loss", "log_softmax")


# Flag types: argparse shows their errors as "sawdist extract: error: argument --seeds: expected ..., got '-2'".


def _name_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of names, got {text!r}")
    return items


def _int(text: str, minimum: int = 1, maximum: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum or (maximum is not None and value > maximum):
        expected = f"an integer from {minimum} to {maximum}" if maximum is not None else "a positive integer"
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    return _int(text)


def _complevel(text: str) -> int:
    return _int(text, 0, 9)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def _threads(text: str):
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or auto, got {text!r}")
    return value


def _key_value(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:  # TOML literal (numbers, booleans, lists, quoted strings); anything else is a plain string
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key.strip(), parsed


def _device(text: str) -> str:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}")
    return text


def _shard(text: str) -> str:
    try:
        index, count = check_shard(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N (e.g. 0/4), got {text!r}") from None
    return f"{index}/{count}"


def _scheduler(text: str) -> str:
    try:
        return check_scheduler(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected local:N (N >= 1) or a Dask scheduler address such as "
                                         f"tcp://host:8786, got {text!r}") from None


def _configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    group = parser.add_argument_group("run")
    group.add_argument("--dataset", help="digits (default), cifar10, cifar100, mnist, tinyimagenet or synthetic")
    group.add_argument("--families", type=_name_list, metavar="F1,F2",
                     help="model families (mlp, cnn_small, cnn_large, resnet_small, resnet_large, vit)")
    group.add_argument("--capacities", type=_int_list, metavar="K1,K2", help="capacities k of every family")
    group.add_argument("--seeds", type=_positive_int, metavar="N",
                       help="number of seeds (models) per family and capacity")
    group.add_argument("--out", metavar="FILE.nc", help="output netCDF file (default saliency-<dataset>.nc)")
    group.add_argument("--target", choices=_TARGETS, help="saliency target (default label_logit)")
    group.add_argument("--inputs", type=_positive_int, metavar="N",
                       help="saliency on the first N test inputs (default 1000)")
    group.add_argument("--device", type=_device, metavar="auto|cpu|cuda|cuda:N",
                       help="default auto: CUDA when available; cuda:N is GPU N")
    group.add_argument("--mode", choices=MODES,
                       help="training path (default auto: batched when a chunk holds several seeds)")
    group.add_argument("--chunk-size", type=_positive_int, metavar="N",
                       help="seeds trained together (default 16 CPU, 64 GPU)")
    group.add_argument("--threads", type=_threads, metavar="N|auto",
                       help="CPU threads for torch (default auto: the cores other processes leave idle)")
    group.add_argument("--complevel", type=_complevel, metavar="0-9",
                       help="zlib level of the output file (default 1, as small as 4 and twice as fast; 0: "
                            "uncompressed, about 16 %% larger, written fastest)")
    group.add_argument("--save-models", metavar="DIR",
                       help="also keep the trained models in DIR (for sawdist report --models DIR)")
    group.add_argument("--shard", type=_shard, metavar="I/N",
                       help="train only shard I of N of the sweep (0 <= I < N) into --out; combine the N shard files "
                            "with sawdist merge")
    group.add_argument("--scheduler", type=_scheduler, metavar="local:N|tcp://HOST:PORT",
                       help="train on a Dask cluster: N worker processes here, or a running scheduler (the parts "
                            "folder next to --out must be on a file system every worker sees)")
    group.add_argument("--config", metavar="FILE.toml", help="TOML file with [extract], [dataset], [recipe] tables")
    group.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                     help="no progress bar")
    data = parser.add_argument_group("dataset")
    data.add_argument("--data-root", metavar="DIR", help="directory with the dataset files (all but digits)")
    data.add_argument("--download", action="store_true", default=None,
                      help="download the dataset into --data-root (cifar10, cifar100, mnist; MD5-checked; "
                           "mirror: $SAWDIST_DATA_MIRROR)")
    data.add_argument("--data-option", type=_key_value, action="append", metavar="KEY=VALUE", default=[],
                      help="loader option, e.g. shape=[3,32,32] for synthetic (repeatable)")
    recipe = parser.add_argument_group("training recipe (defaults: sawdist.extraction.train.Recipe; digits: 10 epochs)")
    choices = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES}
    for field in dataclasses.fields(Recipe):
        flag = "--" + field.name.replace("_", "-")
        if field.type in ("bool", bool):
            recipe.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, dest=f"recipe_{field.name}")
        else:
            kind = {"int": int, "float": float, "str": str}[field.type if isinstance(field.type, str)
                                                            else field.type.__name__]
            recipe.add_argument(flag, type=kind, choices=choices.get(field.name), default=None,
                                dest=f"recipe_{field.name}", metavar=field.name.upper(),
                                help=f"default {field.default}")
    parser.set_defaults(func=run)
    return parser


def _command_line(argv: list[str] | None) -> str:
    """The command to repeat in the resume message (``sawdist extract ...`` or ``python -m sawdist extract ...``)."""
    argv = list(sys.argv if argv is None else argv)
    program = Path(argv[0]).name if argv else "sawdist"
    if program == "__main__.py":
        program = "python -m sawdist"
    return " ".join([program, *(shlex.quote(a) for a in argv[1:])])


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``extract`` subcommand to the ``sawdist`` command line."""
    parser = subparsers.add_parser(
        "extract", help="train model families and write their saliency dataset",
        description="Train SEEDS models of every (family, capacity), compute their input-saliency directions and write "
                    "them to a netCDF file, one model at a time; rerun the same command to resume.",
    )
    return _configure(parser)


def add_merge_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``merge`` subcommand: combine the shard files of a sweep into one dataset."""
    parser = subparsers.add_parser(
        "merge", help="merge the shard files of a sweep (sawdist extract --shard I/N) into one dataset",
        description="Check that SHARD files are the N shards of one sweep, each once, with no model missing or "
                    "duplicated, and write the sweep's dataset to --out (the same data an unsharded run writes).",
    )
    parser.add_argument("shards", nargs="+", metavar="SHARD.nc", help="the shard files, in any order")
    parser.add_argument("--out", required=True, metavar="FILE.nc", help="the merged netCDF file")
    parser.add_argument("--complevel", type=_complevel, metavar="0-9",
                        help="zlib level of the output (default: the shards')")
    parser.set_defaults(func=merge)
    return parser


def merge(args: argparse.Namespace) -> int:
    """Run ``sawdist merge``: one line on success; errors name the file and the shard."""
    from sawdist.cli import input_file
    from sawdist.shards import merge as merge_shards

    paths = [input_file(p, "SHARD") for p in args.shards]
    out = Path(args.out).expanduser()
    try:
        merge_shards(paths, out, complevel=args.complevel)
    except ValueError as err:
        raise CommandError(str(err).replace("'out' ", "--out ", 1).replace("'paths' ", "SHARD ", 1)) from None
    print(f"wrote {out} ({len(paths)} shards)")
    return 0



# --- checks at the command-line boundary ---------------------------------------------------------------------------


class Origin:
    """Names each setting as the user gave it, for error messages: its flag or its key in the ``--config`` file.

    ``flags`` maps ``(table, key)`` (``("extract", "seeds")``, ``("recipe", "epochs")``, ``("dataset", "root")``) to
    the flag as typed (``"--seeds"``, ``"--epochs"``, ``"--data-root"``) for the settings given on the command line.
    """

    def __init__(self, config_path: str | os.PathLike[str] | None = None, file_config: dict | None = None,
                 flags: dict | None = None) -> None:
        self.config_path = config_path
        self.file_config = file_config or {}
        self.flags = dict(flags or {})

    def name(self, key: str, table: str = "extract") -> str:
        """``--seeds``, ``run.toml: [extract] seeds``, or (a default value) ``the default seeds``."""
        if (table, key) in self.flags:
            return self.flags[(table, key)]
        if key in self.file_config.get(table, {}):
            return f"{self.config_path}: [{table}] {key}"
        return "the output file" if (table, key) == ("extract", "out") else f"the default {key}"

    def _setting(self, parameter: str):
        """(key, table) of the setting behind a Python parameter named in an API message, or None."""
        parameter = {"family": "families", "capacity": "capacities"}.get(parameter, parameter)
        if parameter in DEFAULTS:
            return parameter, "extract"
        if parameter in {f.name for f in dataclasses.fields(Recipe)}:
            return parameter, "recipe"
        if (parameter in ("root", "download") or ("dataset", parameter) in self.flags
                or parameter in self.file_config.get("dataset", {})):
            return parameter, "dataset"
        return None

    def translate(self, message: str) -> str:
        """A message of the Python API (``'seeds' must be ...``, ``pass download=True``) in the user's terms."""
        match = re.match(r"'(\w+)'", message)
        setting = self._setting(match.group(1)) if match else None
        if setting is not None:
            message = self.name(*setting) + message[match.end():]
        return message.replace("download=True", "--download")

    @contextlib.contextmanager
    def translating(self, error: type[CommandError]) -> Iterator[None]:
        """Re-raise the API's user errors as ``error``, their messages put through :meth:`translate`.

        With :class:`~sawdist.cli.UsageError` every ValueError becomes one; with :class:`~sawdist.cli.CommandError`
        a ValueError, OSError or ImportError whose message names a setting does (the others are shown as they are).
        """
        caught = ValueError if issubclass(error, UsageError) else (ValueError, OSError, ImportError)
        try:
            yield
        except caught as err:
            message = self.translate(str(err))
            if issubclass(error, UsageError) or message != str(err):
                raise error(message) from err
            raise


def _is_int(value, minimum: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _check_settings(config: dict, origin: Origin) -> None:
    """Check the types and ranges of the merged settings (what argparse cannot check for a ``--config`` file)."""

    def fail(key: str, expected: str):
        raise UsageError(f"{origin.name(key)} must be {expected}, got {config[key]!r}.")

    if not isinstance(config["dataset"], str):
        fail("dataset", "a dataset name")
    families = config["families"]
    if not (isinstance(families, list | tuple) and families and all(isinstance(f, str) for f in families)):
        fail("families", "a non-empty list of family names")
    capacities = config["capacities"]
    if not (isinstance(capacities, list | tuple) and capacities and all(_is_int(k) for k in capacities)):
        fail("capacities", "a non-empty list of positive integers")
    seeds = config["seeds"]
    if not (_is_int(seeds) or (isinstance(seeds, list | tuple) and seeds and all(_is_int(s, 0) for s in seeds))):
        fail("seeds", "a positive integer (or a list of non-negative seeds)")
    for key in ("inputs", "chunk_size"):
        if config[key] is not None and not _is_int(config[key]):
            fail(key, "a positive integer")
    if not _is_int(config["complevel"], 0) or config["complevel"] > 9:
        fail("complevel", "an integer from 0 to 9")
    if config["threads"] != "auto" and not _is_int(config["threads"]):
        fail("threads", "a positive integer or auto")
    if config["target"] not in _TARGETS:
        fail("target", f"one of {', '.join(_TARGETS)}")
    if not (isinstance(config["device"], str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", config["device"])):
        fail("device", "auto, cpu, cuda or cuda:N")
    for key, check in (("shard", "check_shard"), ("scheduler", "check_scheduler")):
        if config[key] is not None:
            try:
                {"check_shard": check_shard, "check_scheduler": check_scheduler}[check](config[key])
            except (ValueError, TypeError):
                fail(key, "I/N with 0 <= I < N" if key == "shard" else "local:N or a Dask scheduler address")
    if config["shard"] is not None and config["save_models"] is not None:
        raise UsageError(f"{origin.name('save_models')} cannot be combined with {origin.name('shard')}: a shard holds "
                         "only some models of each capacity.")
    if config["mode"] not in MODES:
        fail("mode", f"one of {', '.join(MODES)}")
    if not isinstance(config["progress"], bool):
        fail("progress", "true or false")
    if not isinstance(config["out"], str):
        fail("out", "a file name")
    if config["save_models"] is not None and not isinstance(config["save_models"], str):
        fail("save_models", "a folder name")
    out = Path(config["out"]).expanduser()
    if out.is_dir():
        raise CommandError(f"{origin.name('out')} {config['out']!r} is a folder; pass a file name such as "
                           f"{str(out / ('saliency-' + config['dataset'] + '.nc'))!r}.")
    keep = config["save_models"]
    if keep is not None and Path(keep).expanduser().exists() and not Path(keep).expanduser().is_dir():
        raise CommandError(f"{origin.name('save_models')} {keep!r} is a file; pass a folder.")


def prepare(file_config: dict, config_path: str | os.PathLike[str] | None = None, overrides: dict | None = None,
            recipe: dict | None = None, options: dict | None = None,
            flags: dict | None = None) -> tuple[dict, Origin]:
    """Merge the settings of an extraction (:func:`sawdist.extraction.config.resolve`) and check them before any work.

    Returns the keyword arguments of :func:`sawdist.extraction.sweep.extract` (with ``threads``) and the :class:`Origin`
    that names each setting in messages. Needs no torch; :func:`check_data` does the checks that do.
    """
    from .config import resolve

    origin = Origin(config_path, file_config, flags)
    with origin.translating(UsageError):  # the recipe: "'epochs' must be ..." -> "--epochs must be ..."
        config = resolve(file_config, overrides, recipe, options)
    _check_settings(config, origin)
    return config, origin


def need_torch(extra: str = "extraction") -> None:
    """A :class:`~sawdist.cli.CommandError` that says how to install PyTorch when it is missing."""
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError as err:
        if err.name != "torch":
            raise
        raise CommandError(f"PyTorch is not installed; install it with: pip install 'sawdist[{extra}]'") from None


def check_data(config: dict, origin: Origin) -> None:
    """Check the dataset name, its options (``--data-root``, ``--download``, ``--data-option``) and the families."""
    import inspect

    from .data import DATASETS
    from .models import FAMILIES

    name = config["dataset"]
    if name not in DATASETS:
        raise UsageError(f"{origin.name('dataset')} must be one of {', '.join(DATASETS)}, got {name!r}.")
    unknown = [f for f in config["families"] if f not in FAMILIES]
    if unknown:
        raise UsageError(f"{origin.name('families')} has unknown family {unknown[0]!r}; the families are "
                         f"{', '.join(FAMILIES)}.")
    parameters = inspect.signature(DATASETS[name]).parameters
    options = config["dataset_options"]
    for key in options:
        if key in parameters:
            continue
        if key == "download":
            able = [n for n, loader in DATASETS.items() if "download" in inspect.signature(loader).parameters]
            raise UsageError(f"{origin.name(key, 'dataset')} works only for the datasets {', '.join(able)}, "
                             f"not {name}.")
        raise UsageError(f"{origin.name(key, 'dataset')} is not an option of the {name} dataset; its options are "
                         f"{', '.join(parameters) or 'none'}.")
    root = options.get("root")
    if "root" in parameters and parameters["root"].default is None and root is None:
        receives = " (or receives them with --download)" if "download" in parameters else ""
        where = f"; or set root in the [dataset] table of {origin.config_path}" if origin.config_path else ""
        raise UsageError(f"dataset {name!r} needs --data-root DIR, the folder that holds its files{receives}{where}.")
    if root is not None:
        if not isinstance(root, str):
            raise UsageError(f"{origin.name('root', 'dataset')} must be a folder name, got {root!r}.")
        path = Path(root).expanduser()
        if path.exists() and not path.is_dir():
            raise CommandError(f"{origin.name('root', 'dataset')} {root!r} is a file, not a folder.")
        if not path.exists() and not options.get("download"):
            raise CommandError(f"{origin.name('root', 'dataset')} {root!r} does not exist.")


def set_threads(threads: int | Literal["auto"]) -> None:
    """Set torch's CPU threads: a number, or ``"auto"`` (:func:`sawdist.extraction.config.auto_threads`)."""
    import torch

    from .config import auto_threads

    torch.set_num_threads(auto_threads() if threads == "auto" else int(threads))


def _flag(key: str) -> str:
    return "--no-progress" if key == "progress" else "--" + key.replace("_", "-")


def run(args: argparse.Namespace) -> int:
    """Run an extraction from parsed arguments; return 0 when the file is complete, 130 when stopped early.

    User errors raise :class:`sawdist.cli.UsageError` or :class:`~sawdist.cli.CommandError` with messages that name
    the flags and config keys (:func:`sawdist.cli.execute` prints them).
    """
    from .config import load_toml

    file_config = read_config(args.config, load_toml) if args.config else {}
    overrides = {name: getattr(args, name) for name in
                 ("dataset", "families", "capacities", "seeds", "out", "target", "inputs", "device", "mode",
                  "chunk_size", "progress", "threads", "complevel", "save_models", "shard", "scheduler")}
    recipe = {f.name: getattr(args, f"recipe_{f.name}") for f in dataclasses.fields(Recipe)}
    options = dict(args.data_option)
    flags = {("extract", k): _flag(k) for k, v in overrides.items() if v is not None}
    flags.update({("recipe", k): _flag(k) for k, v in recipe.items() if v is not None})
    flags.update({("dataset", k): f"--data-option {k}" for k in options})
    if args.data_root is not None:
        options["root"] = args.data_root
        flags[("dataset", "root")] = "--data-root"
    if args.download:
        options["download"] = True
        flags[("dataset", "download")] = "--download"
    config, origin = prepare(file_config, args.config, overrides, recipe, options, flags)
    need_torch()
    check_data(config, origin)
    set_threads(config.pop("threads"))
    if not log.isEnabledFor(logging.INFO):  # -q: no progress bar either
        config["progress"] = False
    log.debug("settings: " + ", ".join(f"{k}={v!r}" for k, v in config.items()))
    # "extracting N models ... into OUT" comes from the sweep once it has checked the output and the data
    from .sweep import extract

    hint = "rerun: " + _command_line(getattr(args, "argv", None))
    with origin.translating(CommandError):  # e.g. "--out 'x.nc' already holds a different run"
        result = extract(resume_hint=hint, **config)
    if result.complete:
        print(f"wrote {result.path} ({result.n_total} models)")
        if config["save_models"] is not None:
            print(f"kept the models in {config['save_models']} (sawdist report --models {config['save_models']})")
        return 0
    return 130

