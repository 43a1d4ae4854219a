"""Property test: whatever the size of a value, an error is one short line.

Any option of any daemon recipe set to a long value (up to a few hundred kilobytes) gives either
a plan or an error whose every line is at most ~300 characters: errors echo about 100
characters of a value (``'aaaa…' (1048576 characters)``), never the value itself.
"""

from __future__ import annotations

import os
import shutil

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support.declare import declare
from support.host import link_nagios_plugins, make_scratch_root

from system_recipes.core.declare.errors import ConfigError, RunError, shown
from system_recipes.recipes import cron, logrotate, nagios, nrpe, runscript, supervisor

LONGEST = 300
BASE = {  # a valid part of each recipe; one option is then replaced by a long value
    cron: {"entries": "@daily /bin/true"},
    supervisor: {"command": "/bin/true"},
    runscript: {"command": "/usr/bin/sleep 1", "kind": "systemd"},
    nagios: {"hosts": "h1 127.0.0.1"},
    nrpe: {"checks": "check_x check_dummy 0"},
    logrotate: {"paths": "/var/log/x.log"},
}
# what a long value starts with, so that it gets past the first checks of its option
PREFIXES = [
    "",
    "/",
    "@daily /bin/echo ",
    "check_x check_dummy ",
    "h1 127.0.0.1 ",
    "0 0 * * * ",
    "A=",
    "/usr/bin/sleep ",
    "h1 desc check_x!",
]
PIECE = st.text(
    alphabet=st.sampled_from(list("aZ0 /%$'\"\\;#=!-_.") + ["\u00e9", "\t"]), min_size=1, max_size=6
)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    top = make_scratch_root(str(tmp_path_factory.mktemp("errors") / "root"))
    link_nagios_plugins(top)
    os.makedirs(os.path.join(top, "usr/bin"))
    shutil.copy2("/usr/bin/sleep", os.path.join(top, "usr/bin/sleep"))
    return top


def test_shown_clips_long_values_and_keeps_short_ones():
    assert shown("abc") == "'abc'"
    assert shown("a" * (1 << 20)) == "'" + "a" * 100 + "…' (1048576 characters)"
    assert shown("it's" * 100).endswith('…" (400 characters)')
    assert len(str(ConfigError("web", "extra", "p" * 5000, "e"))) < LONGEST


@pytest.mark.sandbox
@settings(
    max_examples=int(os.environ.get("ERROR_LINE_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
@given(
    data=st.data(),
    module=st.sampled_from(list(BASE)),
    prefix=st.sampled_from(PREFIXES),
    piece=PIECE,
    times=st.sampled_from([30, 200, 2000, 40000]),
)
def test_property_a_long_value_gives_short_error_lines(root, data, module, prefix, piece, times):
    names = sorted(n for n in module.SCHEMA.options if n != "force")
    option = data.draw(st.sampled_from(names), label="option")
    options = dict(BASE[module], **{option: prefix + piece * times})
    try:
        declare(module, root, options)
    except (ConfigError, RunError) as error:
        for line in str(error).splitlines():
            # the expected form is fixed text of the recipe, whatever the value
            problem = (
                line.rpartition(" (expected ")[0]
                if line.endswith(")") and " (expected " in line
                else line
            )
            assert len(problem) <= LONGEST and len(line) <= 2 * LONGEST, line[:700]
        event(f"refused: {type(error).__name__}")
        return
    event("accepted")
