"""Package facts from the real package databases."""

import re

from support.results import ok, one_error_line

PROFILE = """
[buildout]
extends = {base}
parts = facts

[pkg]
recipe = system_recipes:package
name = cron
manager = dpkg
prefix = /usr/sbin

[facts]
recipe = system_recipes:template
path = /etc/facts.txt
text = {{ sections.pkg.version }}-{{ sections.pkg.release }} {{ sections.pkg.prefix }}
"""


def test_dpkg_facts_reach_other_sections(host):
    host.write(PROFILE)
    ok(host.buildout())
    version = host.sandbox.run(["dpkg-query", "-W", "-f", "${Version}", "cron"]).stdout
    assert host.read("/etc/facts.txt") == f"{version} /usr/sbin\n"
    assert re.match(r"\d", version)


def test_missing_package_is_one_line_before_anything_is_written(host):
    host.write(PROFILE.replace("name = cron", "name = no-such-package"))
    line = one_error_line(host.buildout(), "[pkg] name:", "not installed")
    assert "no-such-package" in line
    assert not host.exists("/etc/facts.txt")
