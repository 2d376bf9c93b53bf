"""The README is a promise: its Python examples run as written."""

import os
import re

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _python_blocks(path):
    with open(path, encoding="utf-8") as fh:
        return re.findall(r"```python\n(.*?)```", fh.read(), flags=re.S)


@pytest.mark.parametrize("index, block", list(enumerate(_python_blocks(os.path.join(ROOT, "README.md")))))
def test_readme_python_examples_run(index, block, capsys):
    exec(compile(block, f"README.md[{index}]", "exec"), {})
