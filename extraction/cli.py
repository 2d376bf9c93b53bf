"""``sawdist extract``: train model families across width and seed and write their saliency dataset.

Registered in :data:`sawdist.cli.SUBCOMMANDS` as ``"extract": "extraction.cli:add_parser"``; also runnable as
``python -m extraction ...`` (same flags).

Examples
--------
::

    sawdist extract                                   # digits: mlp + cnn_small, widths 2..32, 16 seeds
    sawdist extract --dataset cifar10 --data-root ~/data --families cnn_small,resnet_small \\
        --widths 4,8,16,32,64 --seeds 32 --epochs 10 --out cifar10.nc
    sawdist extract --config run.toml --seeds 8       # flags override the file
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

from .recipe import MODES, OPTIMIZERS, SCHEDULES, Recipe

__all__ = ["add_parser", "build_parser", "main", "run"]

_TARGETS = ("label_logit", "pred_logit", "loss", "log_softmax")  # mirrors extraction.saliency.TARGETS (no torch here)


def _name_list(flag: str):
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"'{flag}' must be a comma-separated list, got {text!r}.")
        return items

    return parse


def _int_list(text: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'--widths' must be comma-separated integers, got {text!r}.") from None
    if not values:
        raise argparse.ArgumentTypeError(f"'--widths' must be comma-separated integers, got {text!r}.")
    return values


def _threads(text: str):
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"'--threads' must be a positive integer or auto, got {text!r}.")
    return value


def _key_value(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"'--data-option' must look like KEY=VALUE, got {text!r}.")
    from .config import toml_module

    toml = toml_module()
    try:  # TOML literal (numbers, booleans, lists, quoted strings); anything else is a plain string
        parsed = toml.loads(f"v = {value}")["v"] if toml is not None else value
    except toml.TOMLDecodeError:
        parsed = value
    return key.strip(), parsed


def _configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    group = parser.add_argument_group("run")
    group.add_argument("--dataset", help="digits (default), cifar10, cifar100, mnist, tinyimagenet or synthetic")
    group.add_argument("--families", type=_name_list("--families"), metavar="F1,F2",
                     help="model families (mlp, cnn_small, cnn_large, resnet_small, resnet_large, vit)")
    group.add_argument("--widths", type=_int_list, metavar="K1,K2", help="widths k of every family")
    group.add_argument("--seeds", type=int, metavar="N", help="number of seeds (models) per family and width")
    group.add_argument("--out", metavar="FILE.nc", help="output netCDF file (default saliency-<dataset>.nc)")
    group.add_argument("--target", choices=_TARGETS, help="saliency target (default label_logit)")
    group.add_argument("--samples", type=int, metavar="N", help="saliency on the first N test inputs (default 1000)")
    group.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default auto: CUDA when available")
    group.add_argument("--mode", choices=MODES, help="training path (default auto: the faster one, timed)")
    group.add_argument("--chunk-size", type=int, metavar="N", help="seeds trained together (default 16 CPU, 64 GPU)")
    group.add_argument("--threads", type=_threads, metavar="N|auto",
                       help="CPU threads for torch (default auto: the cores other processes leave idle)")
    group.add_argument("--complevel", type=int, metavar="0-9",
                       help="zlib level of the output file (default 4; 0: uncompressed, about 16 %% larger, written "
                            "fastest)")
    group.add_argument("--save-models", metavar="DIR",
                       help="also keep the trained models in DIR (for sawdist report --models DIR)")
    group.add_argument("--config", metavar="FILE.toml", help="TOML file with [extract], [dataset], [recipe] tables")
    group.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                     help="no progress bar")
    data = parser.add_argument_group("dataset")
    data.add_argument("--data-root", metavar="DIR", help="directory with the dataset files (all but digits)")
    data.add_argument("--download", action="store_true", default=None,
                      help="download the dataset with torchvision (cifar10, cifar100, mnist)")
    data.add_argument("--data-option", type=_key_value, action="append", metavar="KEY=VALUE", default=[],
                      help="loader option, e.g. shape=[3,32,32] for synthetic (repeatable)")
    recipe = parser.add_argument_group("training recipe (defaults: extraction.train.Recipe; digits: 10 epochs)")
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
    """The command to repeat in the resume message (``sawdist extract ...`` or ``python -m extraction ...``)."""
    argv = list(sys.argv if argv is None else argv)
    program = Path(argv[0]).name if argv else "sawdist"
    if program == "__main__.py":
        program = "python -m extraction"
    return " ".join([program, *(shlex.quote(a) for a in argv[1:])])


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``extract`` subcommand to the ``sawdist`` command line."""
    parser = subparsers.add_parser(
        "extract", help="train model families and write their saliency dataset",
        description="Train SEEDS models of every (family, width), compute their input-saliency directions and write "
                    "them to a netCDF file, one model at a time; rerun the same command to resume.",
    )
    return _configure(parser)


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser with the ``extract`` flags (for ``python -m extraction``)."""
    return _configure(argparse.ArgumentParser(prog="python -m extraction", description=__doc__.splitlines()[0]))


def run(args: argparse.Namespace) -> int:
    """Run an extraction from parsed arguments; return 0 when the file is complete, 130 when stopped early."""
    from .config import auto_threads, load_toml, resolve

    try:
        import torch  # noqa: F401
    except ImportError:
        raise SystemExit("sawdist extract needs PyTorch; install it with: pip install 'sawdist[extraction]'") from None
    from .sweep import extract

    file_config = load_toml(args.config) if args.config else {}
    overrides = {name: getattr(args, name) for name in
                 ("dataset", "families", "widths", "seeds", "out", "target", "samples", "device", "mode",
                  "chunk_size", "progress", "threads", "complevel", "save_models")}
    recipe = {f.name: getattr(args, f"recipe_{f.name}") for f in dataclasses.fields(Recipe)}
    options = dict(args.data_option)
    if args.data_root is not None:
        options["root"] = args.data_root
    if args.download:
        options["download"] = True
    config = resolve(file_config, overrides, recipe, options)
    threads = config.pop("threads")
    if threads == "auto":
        threads = auto_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise SystemExit(f"'threads' must be a positive integer or auto, got {threads!r}.")
    torch.set_num_threads(threads)
    hint = "rerun: " + _command_line(getattr(args, "argv", None))
    result = extract(resume_hint=hint, **config)
    if result.complete:
        print(f"wrote {result.path} ({result.n_total} models)")
        if config["save_models"] is not None:
            print(f"kept the models in {config['save_models']} (sawdist report --models {config['save_models']})")
        return 0
    return 130


def main(argv: list[str] | None = None) -> int:
    """``python -m extraction [flags]``."""
    args = build_parser().parse_args(argv)
    return run(args)
