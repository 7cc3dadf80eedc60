"""The provisioned-concurrency reconciler: a CloudFormation custom resource (handler.py)
that reads what the account holds (reading.py), plans (planning.py) and applies the plan
(applying.py), every call retried within the time budget (calls.py).
"""
