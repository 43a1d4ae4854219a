"""What system-recipes ships beside its code for host configurations to extend.

The profiles -- ``base.cfg`` and ``roles/`` with the ``templates/`` the roles name -- are
package data (``system_recipes/profiles`` in a wheel, built from the checkout's
``profiles/``). ``system-recipes profiles`` prints where they are; a release installs a link
to them at ``PREFIX/profiles`` (``/opt/NAME/profiles`` in its RPM), a path that does not
change with the Python version.
"""

from __future__ import annotations

import os

PACKAGE = os.path.dirname(os.path.abspath(__file__))


def profiles_directory() -> str:
    """``system_recipes/profiles`` in an installed copy, ``profiles/`` in a checkout (an
    editable install reads the checkout, like the packaged templates)."""
    installed = os.path.join(PACKAGE, "profiles")
    if os.path.isfile(os.path.join(installed, "base.cfg")):
        return installed
    return os.path.join(os.path.dirname(PACKAGE), "profiles")
