"""Reading the TOML configuration files of ``sawdist extract``, ``sawdist run`` and ``sawdist report``."""

from __future__ import annotations

import tomllib
from pathlib import Path


def read_config(path, tables, keys: dict | None = None) -> dict:
    """Read a configuration file whose top level holds only `tables`; `keys` maps a table to its allowed keys.

    Each problem is one error that names the file and the table or key: a missing file, invalid TOML, an unknown
    table, a table that is not a table, an unknown key.
    """
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
