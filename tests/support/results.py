"""What a run said: success, its one error line, a part's line of the report; trees compared."""

from __future__ import annotations

import re


def said(output, part, status):
    """The part's line in the run's output says ``status``."""
    return re.search(rf"^  \[{re.escape(part)}\]\s+{status}\b", output, re.M) is not None


# buildout's installed.cfg is rewritten by every successful run: not configuration of the host.
# (The lock file is never written: a failed run leaves it as it was, a snapshot says so.)
BOOKKEEPING = ("/installed.cfg",)


def snapshot(host, *tops):
    state = {}
    for top in tops:
        state.update({k: v for k, v in host.tree(top).items() if not k.endswith(BOOKKEEPING)})
    return state


def ok(result):
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def one_error_line(result, *fragments):
    """Exit non-zero, no traceback, and an error line naming what was wrong."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert errors, output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]
