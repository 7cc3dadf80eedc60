"""The drift monitor and the canary evaluator: one image, two entry points (index, canary)."""
