"""The ``system-recipes`` console script."""

import sys


def main(argv=None) -> int:
    print("system-recipes: not yet", file=sys.stderr)
    return 1
