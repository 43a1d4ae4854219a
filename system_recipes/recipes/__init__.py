"""Level 1: one recipe per kind of file. Each module is a thin declaration on ``core``."""

from system_recipes.daemons import every  # noqa: F401  (registers every validator and reload handler)
