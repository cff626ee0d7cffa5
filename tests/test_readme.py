"""The README's Python API block imports what it says (names move; docs must follow)."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def test_readme_python_imports_exist():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    imports = [
        line for b in blocks for line in b.splitlines() if line.startswith("from nmt")
    ]
    assert imports
    for line in imports:
        exec(line, {})  # an ImportError names the stale line
