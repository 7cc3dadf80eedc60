"""Traffic gate: a new Lambda version answers the golden set before it takes any traffic.

The candidate version is invoked by its qualified ARN (the real image, runtime and
artifact) with the golden rows of its model version, in batches, and passes when:

* identity: every answer is within ``serving.gate_decision.IDENTITY_BOUND`` of the one
  recorded in ``golden.json`` for the deployed runtime (binary: the probability;
  multiclass: every cell of the probability row; regression: the value) and every label
  is the recorded one: the version runs the artifact that was tested;
* quality: no worse than the stable version's beyond the environment's tolerances, both
  scored on the same rows: the candidate's golden set and the stable model's (both
  versions are invoked on both). Binary: log loss, ROC AUC and Brier score; multiclass:
  log loss and one-vs-rest ROC AUC; regression: RMSE, relative to the stable model's.
  The share of rows whose label flips between the two is reported. The stable model's
  golden set is what catches a candidate trained on bad labels: its own golden set
  carries the same bad labels, on which every model looks alike. Models of different
  tasks or classes are not compared: the gate refuses and says so.

A refusal names the metric, the value and the tolerance. Two ways in, one check:

* CloudFormation custom resource (manual rollouts; ordered after the version is published
  and before the alias moves). Properties: ``FunctionArn`` (the candidate, qualified),
  ``StableFunctionArn`` (qualified; optional: without it only identity is checked),
  ``GoldenBucket``, ``GoldenKey``, ``GoldenSha256`` (the candidate model's golden.json),
  ``StableGoldenKey``, ``StableGoldenSha256`` (the stable model's; optional, same bucket),
  ``Runtime``, ``MaxLogLossIncrease``,
  ``MaxAucDecrease``, ``MaxBrierIncrease``, optional ``MaxRmseIncreaseFraction``,
  ``BatchSize`` and ``AllowUnlabelledGolden`` (``true``: a golden set without labels
  passes with quality unchecked; otherwise it is refused); ``CandidateWeight`` (the
  candidate's share of traffic after this deploy),
  ``FunctionName`` (unqualified) and ``AliasName``. FAILED fails the deploy before the
  alias update; Delete always succeeds. The check runs only when the candidate's traffic
  grows (``cloudformation.not_needed``): SUCCESS at once, with the reason, for
  ``CandidateWeight`` 0 (a roll back; no AWS call) and when ``GetAlias`` shows the alias
  already routes the candidate (a ramp, a promote, an update-rollback). Properties without
  ``CandidateWeight`` (an earlier release's template) are always checked.
* CodeDeploy ``BeforeAllowTraffic`` hook (automated rollouts). The versions come from the
  deployment's AppSpec (``TargetVersion`` is the candidate, ``CurrentVersion`` the stable):
  ``GetDeployment``'s revision, or ``GetApplicationRevision``'s when GetDeployment's answer
  leaves the content out (the API does not promise it);
  the rest from the environment: ``GOLDEN_BUCKET``, ``GOLDEN_KEY``, ``GOLDEN_SHA256``,
  ``STABLE_GOLDEN_KEY``, ``STABLE_GOLDEN_SHA256`` (optional), ``MODEL_RUNTIME``,
  ``MAX_LOG_LOSS_INCREASE``, ``MAX_AUC_DECREASE``, ``MAX_BRIER_INCREASE``, optional
  ``MAX_RMSE_INCREASE_FRACTION``, ``BATCH_SIZE`` and ``ALLOW_UNLABELLED_GOLDEN``. It reports with
  ``PutLifecycleEventHookExecutionStatus``; Failed stops the shift before any traffic moves.

**Deadline.** The function's timeout is 600 s. Before each invocation batch the gate
reads ``context.get_remaining_time_in_millis()``; with less than ``run.DEADLINE_MARGIN_MS``
(30 s) left it stops and answers FAILED (custom resource) or Failed (hook) with a message
naming the deadline, so the answer always arrives: past the timeout CloudFormation would
wait for the custom resource's own timeout and CodeDeploy a full hour for the hook.

The checks are plain functions of lists (``serving.gate_decision.evaluate``):
``python -m tools.rollout start`` runs the same ones offline against the local artifacts.
Only the standard library and the boto3 that the Lambda Python runtime ships are used.

This module is the function's entry (``handler``): it tells the two ways in apart. Each
job has its module: ``settings`` (properties and environment), ``run`` (S3, Lambda, the
deadline), ``cloudformation`` (the custom resource), ``hook`` (CodeDeploy).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from custom_resource.response import REASON_MAX_CHARS, respond
from traffic_gate.cloudformation import on_custom_resource
from traffic_gate.hook import on_hook
from traffic_gate.run import Deadline


def handler(event: Mapping[str, Any], context: Any) -> None:
    import boto3  # the runtime's boto3; imported here so tests of the logic need none

    # Every answer must reach CloudFormation or CodeDeploy before the function times out.
    deadline = Deadline(context.get_remaining_time_in_millis)
    lambda_client, s3 = boto3.client("lambda"), boto3.client("s3")
    if "LifecycleEventHookExecutionId" in event:
        on_hook(
            event,
            os.environ,
            lambda_client=lambda_client,
            s3=s3,
            codedeploy=boto3.client("codedeploy"),
            deadline=deadline,
        )
        return
    try:
        status, reason, physical_id = on_custom_resource(
            event, lambda_client=lambda_client, s3=s3, deadline=deadline
        )
    except Exception as error:  # every failure must reach CloudFormation, or it waits an hour
        status, reason = "FAILED", f"{type(error).__name__}: {error}"[:REASON_MAX_CHARS]
        physical_id = str(event.get("ResourceProperties", {}).get("FunctionArn", "traffic-gate"))
        print(reason)
    respond(event, status, reason, physical_id)
