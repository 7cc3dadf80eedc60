"""The model-serving domain, one library: what a feature schema, a model artifact, a capture
record and an answer are, and the statistics that compare them (PSI, intervals, tests, the
bootstrap, reference distributions, the drift and canary reports).

Pure Python and numpy: no boto3, no CDK, and no import of any other project package. The
deployed functions (lambda_src/), training, the CDK stacks and the command-line tools all
import it; a test holds the direction (tests/test_layers.py).
"""
