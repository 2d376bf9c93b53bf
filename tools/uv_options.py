"""pip's package-index configuration, for uv: ``python tools/uv_options.py OUT_DIR``.

uv does not read pip's configuration, so a machine whose packages come from a mirror, a local index, find-links or
a constraints file would install something else with uv than with pip (or nothing). This reads ``pip config
list`` (pip's configuration files and ``PIP_*`` variables, for the Python that runs it, with the user's HOME) and
writes into OUT_DIR

* ``uv-args``: the matching uv options, one per line (``--index-url``, ``--extra-index-url``, ``--find-links``,
  ``--constraint``, ``--no-index``);
* ``uv-env``: ``NAME=value`` lines for the options uv takes from the environment (pip's certificate bundle as
  ``SSL_CERT_FILE``, its timeout as ``UV_HTTP_TIMEOUT``).

Callers add ``--index-strategy unsafe-best-match``: pip considers every index for every package, uv by default only
the first that has it. Used by ``install.sh`` and ``tools/test_minimum_versions.sh``.
"""

import re
import subprocess
import sys
from pathlib import Path

#: pip's option -> uv's; the sections of ``pip config list`` in rising precedence
FLAGS = {"index-url": "--index-url", "extra-index-url": "--extra-index-url", "find-links": "--find-links",
         "constraint": "--constraint"}
RANK = {"global": 0, "install": 1, ":env:": 2}


def pip_options(listing: str) -> dict[str, str]:
    """``option -> value`` from ``pip config list`` output (``section.option='value'`` lines), the highest-ranked
    section winning."""
    options: dict[str, tuple[int, str]] = {}
    for line in listing.splitlines():
        m = re.fullmatch(r"(:env:|[^.]+)\.([^=]+)='(.*)'", line.strip())
        if m and m.group(1) in RANK:
            section, option, value = m.groups()
            if option not in options or RANK[section] >= options[option][0]:
                options[option] = (RANK[section], value)
    return {option: value for option, (_, value) in options.items()}


def uv_options(options: dict[str, str]) -> tuple[list[str], list[str]]:
    """(uv command-line arguments, ``NAME=value`` environment assignments) for pip's ``options``."""
    args = []
    for option, flag in FLAGS.items():
        for value in options.get(option, "").split():
            args += [flag, value]
    if options.get("no-index", "").lower() in {"1", "true", "yes", "on"}:
        args.append("--no-index")
    env = []
    if "cert" in options:
        env.append(f"SSL_CERT_FILE={options['cert']}")
    timeout = options.get("timeout", options.get("default-timeout"))
    if timeout:
        env.append(f"UV_HTTP_TIMEOUT={timeout}")
    return args, env


def main(out_dir: str) -> None:
    listing = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    args, env = uv_options(pip_options(listing))
    out = Path(out_dir)
    (out / "uv-args").write_text("".join(a + "\n" for a in args))
    (out / "uv-env").write_text("".join(e + "\n" for e in env))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tools/uv_options.py OUT_DIR")
    main(sys.argv[1])
