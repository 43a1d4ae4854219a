"""Level 1: one recipe per kind of file. Each module is a thin declaration on ``core``."""
