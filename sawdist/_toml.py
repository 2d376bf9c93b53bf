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

    Each problem is one error naming the file, table or key: a missing file, a missing TOML reader (Python 3.10
    without tomli), an unknown table, an unknown key.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"'config' file {str(path)!r} does not exist.")
    toml = toml_module()
    if toml is None:  # pragma: no cover - Python 3.10 without tomli
        raise ImportError("reading a --config file needs Python >= 3.11 or the tomli package (pip install tomli).")
    with open(path, "rb") as f:
        config = toml.load(f)
    unknown = sorted(set(config) - set(tables))
    if unknown:
        raise ValueError(f"'config' has unknown table {unknown[0]!r}; the tables are {', '.join(tables)}.")
    for table, allowed in (keys or {}).items():
        bad = sorted(set(config.get(table, {})) - set(allowed))
        if bad:
            raise ValueError(
                f"'config' [{table}] has unknown key {bad[0]!r}; the keys are {', '.join(allowed)}."
            )
    return config
