"""The package keeps its layering: every import-linter contract in pyproject.toml
([tool.importlinter]: the layers from the command line down to the plain records, the independent
still-image stages, byte formats and core importing nothing above them) holds for this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_imports_keep_the_contracts() -> None:
    # A child process, so the package analysed is this checkout's (PYTHONPATH first), and no cache
    # is written into the tree.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"
    result = subprocess.run([sys.executable, "-c", command], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
