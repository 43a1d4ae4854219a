"""Helpers shared by the test modules (``tests/`` is on ``sys.path``: ``from support.X import Y``).

- :mod:`support.paths`: the checkout, the venv's commands, profiles/base.cfg, the download cache.
- :mod:`support.host`: :class:`Host` (host configurations run with the real buildout), a
  scratch install root, the machine's Nagios plugins linked into one.
- :mod:`support.results`: ``ok``, ``one_error_line``, ``said`` (a part's line of the run's
  report) and ``snapshot`` (a tree without buildout's bookkeeping).
- :mod:`support.declare`: a recipe constructed and validated in-process in a plan-mode run.
- :mod:`support.net`: a free port, waiting for a listener, an HTTP GET.
- :mod:`support.daemons`: talking to the real daemons of a sandbox (supervisorctl, check_nrpe).
- :mod:`support.sandbox`: :class:`Sandbox`, a private mount namespace with overlays.
- :mod:`support.rpmbuild` and :mod:`support.example_fixtures`: the example application's RPM.
- :mod:`support.release`: a copy of the example project at another version.
- :mod:`support.markers`: ``@needs("sandbox", "daemon")`` on a fixture marks its tests.
- :mod:`support.cases`: the recipe cases of tests/recipes/ (data) and their scratch root.
- :mod:`support.examples`: the documented configuration examples, made runnable.
- :mod:`support.fleet_hosts`: sshd test hosts in network namespaces (a pytest plugin).
- :mod:`support.fleet_scenarios`: the fleet tests' small system (roles, model, :class:`System`).
- :mod:`support.ansible_export`: that system exported to Ansible, its playbook run and recap.
- :mod:`support.live_daemons`: daemons started on the test hosts, each stopped by its pid.
- :mod:`support.dnf_host`: dnf and a repository of the example RPMs on a test host.

Test modules import from here, never from each other; tests/conftest.py holds only fixtures
and pytest hooks.
"""
