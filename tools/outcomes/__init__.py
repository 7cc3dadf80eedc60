"""``python -m tools.outcomes``: which model version predicted better, from ground truth."""
