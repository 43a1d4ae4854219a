"""The machinery every recipe shares: options -> render -> validate -> plan -> commit -> reload."""
