"""The direction of imports, checked by a real tool: import-linter's contracts in pyproject.toml.

Data flows one way: read -> preprocess -> model -> postprocess -> write, with inference on
top of those stages, quality and reports on top of inference. The contracts
(``[tool.importlinter]`` in pyproject.toml) say which package may import which, directly or
through other modules, including imports inside functions.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.skip("lint-imports not found: install import-linter (pip install -e '.[test]')")
    # The config file as an argument: `--config FILE` still works but is deprecated since import-linter 2.
    res = subprocess.run([exe, "--no-logo", "--no-cache", "pyproject.toml"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, f"lint-imports broke a contract of pyproject.toml:\n{res.stdout}\n{res.stderr}"
    assert "0 broken" in res.stdout and " kept" in res.stdout, res.stdout
