"""The ``sawdist`` command line.

Each subcommand lives in the module that implements it and registers itself in :data:`SUBCOMMANDS` as
``name -> "module:function"``; the function receives the subparsers object and adds its parser (with
``set_defaults(func=...)``). Modules are imported only when the command line is built, so ``import sawdist`` stays
light.

Errors
------
:func:`execute` runs a command and turns every exception into one line on stderr, ``<prog>: error: <message>``
(``sawdist extract: error: ...``), and an exit status: 2 for bad usage (:class:`UsageError`, and argparse's own
errors, which :class:`ArgumentParser` prints as one line too, pointing to ``--help`` instead of printing the
usage), 1 for a failure while running (:class:`CommandError`, and the user errors of the Python API:
:data:`USER_ERRORS`), 130 for Ctrl-C. Any other exception is a bug: one line says so. ``--debug`` (or the environment
variable ``SAWDIST_DEBUG=1``) adds the Python traceback. Messages and progress lines go through the ``sawdist``
:mod:`logging` logger; ``-v`` shows debug messages, ``-q`` only warnings and errors.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["USER_ERRORS", "ArgumentParser", "CommandError", "UsageError", "add_global_flags", "build_parser",
           "describe_error", "execute", "input_file", "main", "output_folder", "read_config"]

log = logging.getLogger("sawdist")

#: Environment variable that turns on ``--debug``.
DEBUG_ENV = "SAWDIST_DEBUG"


class CommandError(Exception):
    """A failure while running a command that the user can fix; shown as one line, exit status 1.

    The message names what the user typed (a flag, a file, a config key), not a Python parameter.
    """

    exit_status = 1


class UsageError(CommandError):
    """Bad usage: a flag's value, a config file's table, key or value. Exit status 2."""

    exit_status = 2


#: Exceptions of the Python API whose message is shown to a command-line user as it is (exit status 1): bad values
#: (ValueError), files and folders (OSError: FileNotFoundError, FileExistsError, IsADirectoryError,
#: NotADirectoryError, PermissionError, a full disk, ...) and missing optional packages (ImportError). Any other
#: exception is an internal error.
USER_ERRORS = (CommandError, ValueError, OSError, ImportError)

_OWN_PACKAGES = ("sawdist",)


class ArgumentParser(argparse.ArgumentParser):
    """The parser of ``sawdist`` and of every subcommand: a usage error is one line on stderr, exit status 2.

    argparse prints the whole usage block (16 lines for ``sawdist extract``) before its message, which hides the one
    line that says what is wrong; this parser prints ``<prog>: error: <message> (see <prog> --help)`` alone.
    ``add_subparsers`` builds the subcommands' parsers with the class of their parent, so :func:`build_parser` sets it
    once for all of them.
    """

    def error(self, message: str) -> NoReturn:
        """Print ``<prog>: error: <message> (see <prog> --help)`` on stderr and exit with status 2.

        Parameters
        ----------
        message : str
            argparse's message (``argument --seeds: expected a positive integer, got '-2'``).
        """
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")

#: Subcommand name -> "module:function" that adds its parser.
SUBCOMMANDS: dict[str, str] = {
    "extract": "sawdist.extraction.cli:add_parser",
    "merge": "sawdist.extraction.cli:add_merge_parser",
    "run": "sawdist.analyses.cli:add_run_parser",
    "report": "sawdist.analyses.cli:add_report_parser",
}


def add_global_flags(parser: argparse.ArgumentParser, *, top: bool = True) -> None:
    """Add ``--debug``, ``-v/--verbose`` and ``-q/--quiet`` to ``parser``.

    On a subcommand (``top=False``) they set nothing unless given, so ``sawdist -q extract`` and
    ``sawdist extract -q`` mean the same.
    """
    group = parser.add_argument_group("messages")
    group.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS,
                       help=f"show the Python traceback of an error (also: environment variable {DEBUG_ENV}=1)")
    level_default = None if top else argparse.SUPPRESS  # None: INFO (execute)
    group.add_argument("-v", "--verbose", dest="log_level", action="store_const", const=logging.DEBUG,
                       default=level_default, help="also show debug messages")
    group.add_argument("-q", "--quiet", dest="log_level", action="store_const", const=logging.WARNING,
                       default=level_default,
                       help="show only warnings and errors (no progress messages or bars)")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``sawdist`` command (used by the docs too)."""
    from . import __version__

    parser = ArgumentParser(
        prog="sawdist",
        description="Saliency directions of model families and their hyperspherical statistics.",
    )
    parser.add_argument("--version", action="version", version=f"sawdist {__version__}")
    add_global_flags(parser)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for target in SUBCOMMANDS.values():
        module_name, function_name = target.split(":")
        command = getattr(importlib.import_module(module_name), function_name)(subparsers)
        add_global_flags(command, top=False)
        command.set_defaults(command_parser=command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``sawdist`` command line; return the exit status."""
    return execute(build_parser(), argv)


def execute(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse ``argv`` with ``parser`` and run the chosen command (``args.func(args)``); return the exit status.

    The one place where command-line errors become messages: see the module's docstring. ``parser`` is the
    ``sawdist`` parser, or another one given :func:`add_global_flags`.
    """
    args, extra = parser.parse_known_args(argv)
    command = getattr(args, "command_parser", parser)
    if extra:  # named by the subcommand that was given them: "sawdist extract: error: unrecognized arguments"
        command.error(f"unrecognized arguments: {' '.join(extra)}")
    if not hasattr(args, "func"):  # `sawdist` alone: its usage, then the one error line
        parser.print_usage(sys.stderr)
        parser.error(f"no command given; choose one of {', '.join(SUBCOMMANDS)}")
    debug = getattr(args, "debug", False) or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")
    with _messages(getattr(args, "log_level", None) or logging.INFO):
        try:
            return int(args.func(args) or 0)
        except KeyboardInterrupt:
            if debug:
                traceback.print_exc()
            log.error(f"{command.prog}: interrupted (Ctrl-C)")
            return 130
        except Exception as err:  # noqa: BLE001 - every error becomes one line
            if debug:
                traceback.print_exc()
            import errno

            if isinstance(err, OSError) and err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
                # A full disk (or a spent quota) is the user's to fix: say so, with the file being written. (netCDF-C
                # does not say so: sawdist.io.to_netcdf_atomic turns its errors on a full disk into ENOSPC.)
                name = err.filename
                name = os.fsdecode(name) if isinstance(name, str | bytes | os.PathLike) else name
                where = "" if name is None else f" writing '{name}'"
                quota = " (disk quota exceeded)" if err.errno != errno.ENOSPC else ""
                log.error(f"{command.prog}: error: no space left on the device{where}{quota}; free some space or "
                          "write elsewhere, and rerun")
                return 1
            status, message = describe_error(err)
            log.error(f"{command.prog}: error: {message}")
            return status


def describe_error(err: BaseException) -> tuple[int, str]:
    """(exit status, one-line message) for an exception raised by a command."""
    package = _missing_package(err)
    if package is not None:
        return 1, (f"the Python package {package!r} is not installed; install the optional dependencies with: "
                   "pip install 'sawdist[all]'")
    if isinstance(err, ImportError) and err.name is not None:
        return 1, _internal(err)  # "No module named 'sawdist.x'", "cannot import name ...": a bug, not the user's
    if not isinstance(err, USER_ERRORS):
        return 1, _internal(err)
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        message = f"{err.filename}: {err.strerror}"  # not "[Errno 21] Is a directory: 'x'"
    else:
        message = str(err) or type(err).__name__
    return getattr(err, "exit_status", 1), _one_line(message)


def _missing_package(err: ImportError) -> str | None:
    """The top-level package that is not installed, or None (an ImportError of our own modules is a bug)."""
    name = getattr(err, "name", None)
    if not isinstance(err, ModuleNotFoundError) or not name:
        return None
    top = name.split(".")[0]
    return None if top in _OWN_PACKAGES else top


def _internal(err: BaseException) -> str:
    return _one_line(f"internal error ({type(err).__name__}: {err}); rerun with --debug to see the traceback")


def _one_line(message: str) -> str:
    return " ".join(line.strip() for line in str(message).splitlines() if line.strip())


class _StderrHandler(logging.Handler):
    """Plain messages on the current ``sys.stderr``, written above tqdm's progress bars when there are any."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            tqdm = sys.modules.get("tqdm")
            if tqdm is not None:
                tqdm.tqdm.write(message, file=sys.stderr)
            else:
                sys.stderr.write(message + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


@contextlib.contextmanager
def _messages(level: int):
    """The ``sawdist`` logger prints plain messages at ``level`` and above on stderr while a command runs."""
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    saved = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]


# --- checks at the command-line boundary ---------------------------------------------------------------------------


def input_file(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a Path after checking that it is an existing file; ``what`` names it (``"--config"``)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise CommandError(f"{what} {str(path)!r} is a folder, not a file.")
    if not path.is_file():
        raise CommandError(f"{what} {str(path)!r} does not exist.")
    return path


def output_folder(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a Path after checking that it is not an existing file (the folder is not created)."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise CommandError(f"{what} {str(path)!r} is a file; pass a folder.")
    return path


def read_config(path: str | os.PathLike[str], reader: Callable[[Path], dict]) -> dict:
    """Read the ``--config`` file ``path`` with ``reader``; a bad file (syntax, table, key) is a :class:`UsageError`."""
    path = input_file(path, "--config")
    try:
        return reader(path)
    except ValueError as err:
        raise UsageError(str(err)) from err


if __name__ == "__main__":  # pragma: no cover - `python -m sawdist` is the module form of the command
    sys.exit(main())
