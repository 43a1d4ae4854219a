"""Level 4: a system model turned into per-host profiles and applied over ssh."""
