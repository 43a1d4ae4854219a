"""Where things are: the checkout, the venv's commands, the shared profile, the download cache."""

from __future__ import annotations

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASE_CFG = os.path.join(REPO, "profiles", "base.cfg")
BIN = os.path.dirname(sys.executable)
BUILDOUT = os.path.join(BIN, "buildout")
SYSTEM_RECIPES = os.path.join(BIN, "system-recipes")
# pip's cache for the release tests: only the first run on a machine downloads
CACHE = os.environ.get("SR_TEST_CACHE") or os.path.expanduser("~/.cache/system-recipes-tests")
