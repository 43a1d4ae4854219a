"""etc-examples/ is exactly what the example host profiles write today."""

import os
import subprocess
import sys

import pytest
from support.paths import REPO


@pytest.mark.sandbox
def test_etc_examples_match_fresh_output():
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "scripts", "etc-examples.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
