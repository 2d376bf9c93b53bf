"""The README is a promise: its Python examples run as written."""

import os
import re

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _python_blocks(path):
    with open(path, encoding="utf-8") as fh:
        return re.findall(r"```python\n(.*?)```", fh.read(), flags=re.S)


def test_readme_python_examples_run():
    # one namespace for all blocks, in order, as in one session of a reader who types them
    namespace = {}
    for index, block in enumerate(_python_blocks(os.path.join(ROOT, "README.md"))):
        exec(compile(block, f"README.md[{index}]", "exec"), namespace)
