"""Benchmarks: our handler against the common naive Lambda pattern, measured in one run."""
