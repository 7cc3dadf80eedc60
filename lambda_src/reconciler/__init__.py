"""The provisioned-concurrency reconciler: a CloudFormation custom resource (handler.py)."""
