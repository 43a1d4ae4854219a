"""What each daemon knows, between ``core`` and ``recipes``: per tool, what it reads on disk,
how it judges a file (the batched validators of :mod:`system_recipes.core.hooks.validate`) and how it
is reloaded (the handlers of :mod:`system_recipes.core.hooks.reload`).

Importing a daemon module registers its validators and reload handlers; :mod:`.every` imports
them all (the recipes, the extension and the command line import it; nothing is imported by
name). This package imports none of them itself, so a module of facts (:mod:`.packages`: rpm's
and dpkg's) is read without them: the fleet's host step asks it on every no-op. Recipes import
``core`` and their daemon module, never the reverse.
"""
