"""Operator and developer tools (local serving, rollout, set-up helpers)."""
