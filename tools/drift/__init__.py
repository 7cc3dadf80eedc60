"""``python -m tools.drift``: PSI of captured traffic against a version's training reference."""
