"""Reading the TOML configuration files of ``sawdist extract``, ``sawdist run`` and ``sawdist report``."""

from __future__ import annotations

from pathlib import Path


def toml_module():
    """:mod:`tomllib` (Python >= 3.11) or its backport :mod:`tomli`; None when neither is available."""
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            return None
    return tomllib


def read_config(path, tables, keys: dict | None = None) -> dict:
    """Read a configuration file whose top level holds only `tables`; `keys` maps a table to its allowed keys.

    Each problem is one error that names the file and the table or key: a missing file, a missing TOML reader
    (Python 3.10 without tomli), invalid TOML, an unknown table, a table that is not a table, an unknown key.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist.")
    toml = toml_module()
    if toml is None:  # pragma: no cover - Python 3.10 without tomli
        raise ImportError("reading a --config file needs Python >= 3.11 or the tomli package (pip install tomli).")
    with open(path, "rb") as f:
        try:
            config = toml.load(f)
        except toml.TOMLDecodeError as err:
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
