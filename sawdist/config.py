"""Reading the TOML configuration files of ``sawdist extract``, ``sawdist run`` and ``sawdist report``.

Public so that the extraction (:func:`sawdist.extraction.config.load_toml`) and the command line
(:func:`sawdist.analyses.cli.load_config`) read their files with the one reader and the same messages.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable, Mapping

__all__ = ["read_config"]


def read_config(path: str | os.PathLike[str], tables: Iterable[str],
                keys: Mapping[str, Iterable[str]] | None = None) -> dict:
    """Read a TOML configuration file whose top level holds only `tables`.

    Parameters
    ----------
    path : str or path-like
        The file.
    tables : iterable of str
        The tables the file may hold (``"extract"``, ``"recipe"``, ...).
    keys : mapping of str to iterable of str, optional
        The keys each table may hold; a table not named here may hold any key.

    Returns
    -------
    dict
        The file's tables.

    Raises
    ------
    FileNotFoundError
        When `path` is not a file.
    ValueError
        One sentence naming the file and the table or key: invalid TOML, an unknown table, a table that is not a
        table, an unknown key.
    """
    tables = tuple(tables)
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist.")
    with open(path, "rb") as f:
        try:
            config = tomllib.load(f)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path}: invalid TOML: {err}.") from None
    names = ", ".join(f"[{t}]" for t in tables)
    for table, value in config.items():
        if table not in tables:
            raise ValueError(f"{path}: unknown table [{table}]; the tables are {names}.")
        if not isinstance(value, dict):
            raise ValueError(f"{path}: {table} must be a table, [{table}], got {value!r}.")
    for table, allowed in (keys or {}).items():
        bad = sorted(set(config.get(table, {})) - set(allowed))
        if bad:
            raise ValueError(
                f"{path}: unknown key {bad[0]!r} in [{table}]; the keys are {', '.join(allowed)}."
            )
    return config
