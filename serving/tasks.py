"""The tasks a model artifact can declare (its manifest's and payload's ``task``).

The image ships no training code, so the handler's runtimes read the list here; training
(training/schema.py), the drift monitor's image (serving/distributions.py) and the traffic
gate's function keep their own copies, and tests/runtime/test_runtimes.py holds all of them
equal.
"""

TASKS = ("binary", "multiclass", "regression")
