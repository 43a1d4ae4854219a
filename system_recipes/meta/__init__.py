"""Level 2: meta-recipes that add level-1 sections to the buildout."""
