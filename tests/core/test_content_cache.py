"""In-process content checks (python-crontab's reading, supervisor's parse) are remembered by
the sha256 of what they read: the same content is read once per process, changed content is
read again. And a run that reads no cron or supervisor file does not import their libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest

from system_recipes.core.declare.errors import ConfigError
from system_recipes.core.hooks import validate
from system_recipes.daemons import cron, supervisor

CRON = "SHELL=/bin/sh\n0 3 * * * www-data /usr/bin/find /tmp -delete\n"
PROGRAM = "[program:shop]\ncommand = /opt/shop/bin/shop-server --port 8080\n"


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.setattr(cron, "READINGS", validate.ContentCache())
    monkeypatch.setattr(supervisor, "PARSES", validate.ContentCache())


def test_python_crontab_reads_a_content_once():
    first = cron.read_entries(CRON)
    assert [job.command for job in first] == ["/usr/bin/find /tmp -delete"]
    assert (cron.READINGS.hits, cron.READINGS.misses) == (0, 1)
    assert cron.read_entries(CRON) is first  # identical content: the cache
    assert (cron.READINGS.hits, cron.READINGS.misses) == (1, 1)
    changed = cron.read_entries(CRON.replace("0 3", "5 3"))  # changed content: read again
    assert changed is not first and str(changed[0].slices) == "5 3 * * *"
    assert (cron.READINGS.hits, cron.READINGS.misses) == (1, 2)


def test_a_schedule_is_judged_once_and_its_verdict_kept():
    assert cron.schedule_problem("0 3 * * *", "/bin/true") is None
    assert cron.schedule_problem("0 3 * * *", "/usr/bin/other") is None  # same schedule
    assert (cron.READINGS.hits, cron.READINGS.misses) == (1, 1)
    bad = cron.schedule_problem("61 3 * * *", "/bin/true")
    assert bad is not None and "61" in bad
    assert cron.schedule_problem("61 3 * * *", "/bin/true") == bad
    assert (cron.READINGS.hits, cron.READINGS.misses) == (2, 2)
    # without a command python-crontab's entry is not valid: that is part of the key
    assert cron.schedule_problem("0 3 * * *", "") == "schedule '0 3 * * *' is not valid"


def test_supervisor_parses_a_content_once_for_the_recipe_and_the_validator():
    sections = {"program:shop": [("command", "/opt/shop/bin/shop-server --port 8080")]}
    supervisor.read_back("shop", PROGRAM, sections)
    assert (supervisor.PARSES.hits, supervisor.PARSES.misses) == (0, 1)
    assert supervisor.top_level_groups(supervisor.parsed(PROGRAM)) == {"shop": "program:shop"}
    assert (supervisor.PARSES.hits, supervisor.PARSES.misses) == (1, 1)
    # changed content is parsed again, and judged on what it says
    cut = PROGRAM.replace("--port 8080", "--port 8080 ;comment")
    with pytest.raises(ConfigError, match="supervisor would read"):
        supervisor.read_back(
            "shop",
            cut,
            {"program:shop": [("command", "/opt/shop/bin/shop-server --port 8080 ;comment")]},
        )
    assert (supervisor.PARSES.hits, supervisor.PARSES.misses) == (1, 2)


def test_the_cache_is_bounded():
    cache = validate.ContentCache(size=2)
    for text in ("a", "b", "c"):
        cache.get(lambda text=text: text.upper(), text)
    assert cache.get(lambda: "again", "a") == "again"  # the oldest went
    assert cache.get(lambda: "never", "c") == "C"


def test_the_extension_imports_no_cron_or_supervisor_library():
    """Loading the extension (every run, a no-op included) leaves python-crontab, supervisor's
    modules and jinja2 to the first part that reads or renders such a file."""
    code = (
        "import sys, system_recipes.extension\n"
        "print(sorted(m for m in ('crontab', 'supervisor.options', 'supervisor.datatypes', "
        "'jinja2') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout
