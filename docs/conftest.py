"""pytest collection under docs/: the Sphinx configuration and extensions are not test modules.

The Markdown pages' ``>>>`` examples run as doctests (``--doctest-glob=*.md``); the tutorials are MyST notebooks
(``{code-cell}`` blocks, no ``>>>``), executed by the docs build instead.
"""

collect_ignore = ["conf.py"]
collect_ignore_glob = ["_ext/*", "_build/*", "api/*", "_templates/*"]
