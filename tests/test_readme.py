"""The README's ```python examples run as written (a stale example is a bug users meet first).

```py blocks need a running server; tests/test_service.py runs that same client contract.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_example_runs(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples may write files (a saved gallery)
    exec(compile(_python_blocks()[index], f"README.md block {index}", "exec"), {})
