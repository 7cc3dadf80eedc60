"""Training pipeline: synthetic churn data, fitting, evaluation and versioned artifacts."""

import sys as _sys
from pathlib import Path as _Path

# The deployed functions live in lambda_src/, each package at the top of its task root as
# Lambda runs it; code that imports them here finds them the same way.
_DEPLOYED = str(_Path(__file__).resolve().parent.parent / "lambda_src")
if _DEPLOYED not in _sys.path:
    _sys.path.insert(0, _DEPLOYED)
