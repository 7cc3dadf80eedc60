"""The traffic gate: a new version answers its golden set before it takes any traffic.

One function (lambda_src/traffic_gate, see its docstring), two ways in:

* manual mode: a custom resource that the alias waits for, run after the version is
  published and its provisioned concurrency is ready; FAILED fails the deploy before the
  alias moves, and CloudFormation rolls back. It carries the candidate's weight after the
  deploy and the alias's identity, so that it checks only a version whose traffic grows: a
  roll back (weight 0) or a version the alias already routes is answered at once, and the
  role may read the alias (``lambda:GetAlias`` on the unqualified function ARN);
* automated mode: CodeDeploy's BeforeAllowTraffic hook of the deployment group; Failed
  stops the shift before any traffic moves. ``allow_deployments`` grants the CodeDeploy
  calls on this stack's deployment group and application once they exist.

Either way the gate stops 30 s before its 10-minute timeout and answers FAILED, so
CloudFormation and CodeDeploy never wait for a gate that timed out.
"""

from __future__ import annotations

from aws_cdk import (
    Acknowledgment,
    CustomResource,
    Duration,
    Validations,
)
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.constructs.model_bucket import grant_read_model
from stacks.constructs.project_function import grant_on_versions, logs_and_role, python_function
from stacks.settings import ModelArtifact, QualityGateSettings

# The golden set and tolerances: custom-resource properties in manual mode, the hook's
# environment variables (these names) in automated mode.
VARIABLES = {
    "GoldenBucket": "GOLDEN_BUCKET",
    "GoldenKey": "GOLDEN_KEY",
    "GoldenSha256": "GOLDEN_SHA256",
    "Runtime": "MODEL_RUNTIME",
    "MaxLogLossIncrease": "MAX_LOG_LOSS_INCREASE",
    "MaxAucDecrease": "MAX_AUC_DECREASE",
    "MaxBrierIncrease": "MAX_BRIER_INCREASE",
    "MaxRmseIncreaseFraction": "MAX_RMSE_INCREASE_FRACTION",
    "StableGoldenKey": "STABLE_GOLDEN_KEY",
    "StableGoldenSha256": "STABLE_GOLDEN_SHA256",
    "AllowUnlabelledGolden": "ALLOW_UNLABELLED_GOLDEN",
}


class TrafficGate(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        function: lambda_.IFunction,
        candidate: lambda_.IVersion,
        stable: lambda_.IVersion | None,
        candidate_weight: float,
        alias_name: str,
        model: ModelArtifact,
        stable_model: ModelArtifact | None,
        model_bucket: s3.IBucket,
        tolerances: QualityGateSettings,
        automated: bool,
    ) -> None:
        super().__init__(scope, id_)
        if model.golden_file is None or model.golden_sha256 is None:
            raise ValueError(
                f"{model.model_name} {model.model_version} has no golden set: retrain it, or "
                "add one with python -m training.reference"
            )
        log_group, role = logs_and_role(
            self, description="Traffic gate: invokes new versions with their golden set."
        )
        golden = {
            "GoldenBucket": model_bucket.bucket_name,
            "GoldenKey": f"{model.prefix}{model.golden_file}",
            "GoldenSha256": model.golden_sha256,
            "Runtime": model.runtime.value,
            "MaxLogLossIncrease": f"{tolerances.max_log_loss_increase:g}",
            "MaxAucDecrease": f"{tolerances.max_auc_decrease:g}",
            "MaxBrierIncrease": f"{tolerances.max_brier_increase:g}",
            "MaxRmseIncreaseFraction": f"{tolerances.max_rmse_increase_fraction:g}",
            # Only when set: templates without it stay as they were (the gate reads false).
            **({"AllowUnlabelledGolden": "true"} if tolerances.allow_unlabelled_golden else {}),
        }
        stable_golden = (
            {
                "StableGoldenKey": f"{stable_model.prefix}{stable_model.golden_file}",
                "StableGoldenSha256": str(stable_model.golden_sha256),
            }
            if stable_model is not None and stable_model.golden_file is not None
            else {}
        )
        environment = {
            VARIABLES[name]: value for name, value in {**golden, **stable_golden}.items()
        }
        self.function = python_function(
            self,
            "Function",
            package="traffic_gate",
            # Both versions answer both golden sets in batches, cold starts included.
            timeout=Duration.minutes(10),
            memory_mb=512,
            role=role,
            log_group=log_group,
            environment=environment if automated else {},
            description="Traffic gate: golden-set identity and quality of a new version.",
        )
        grant_on_versions(
            role,
            function,
            ["lambda:InvokeFunction"],
            why="The gate invokes the published versions of this one function by qualifier",
        )
        grant_read_model(
            role,
            model_bucket,
            model.model_prefix,
            why="the gate reads the golden sets of the candidate's and the stable side's versions.",
        )
        self.role = role
        self.resource: CustomResource | None = None
        if automated:
            # The CodeDeploy permissions name the deployment group, which is made after
            # this function (it names it as its hook): see allow_deployments.
            return
        # IAM checks GetAlias against the unqualified function ARN, not function:NAME:*.
        role.add_to_policy(
            iam.PolicyStatement(actions=["lambda:GetAlias"], resources=[function.function_arn])
        )
        properties: dict[str, str] = {
            "FunctionArn": candidate.function_arn,
            # The gate checks only a version whose traffic grows: not one that takes none
            # after this deploy (weight 0, a roll back), nor one the alias already routes.
            "CandidateWeight": f"{candidate_weight:g}",
            "FunctionName": function.function_name,
            "AliasName": alias_name,
            **golden,
        }
        if stable is not None:
            properties["StableFunctionArn"] = stable.function_arn
            properties.update(stable_golden)
        self.resource = CustomResource(
            self,
            "Check",
            service_token=self.function.function_arn,
            resource_type="Custom::TrafficGate",
            properties=properties,
            service_timeout=Duration.minutes(10),
        )

    def allow_deployments(
        self, application: codedeploy.ILambdaApplication, group: codedeploy.ILambdaDeploymentGroup
    ) -> None:
        """Automated mode: the hook reads the deployments of ``group`` and the revisions of
        ``application``, and reports its verdict.

        Resource types from the Service Authorization Reference: ``GetDeployment`` checks
        the deployment group, ``GetApplicationRevision`` the application, and
        ``PutLifecycleEventHookExecutionStatus`` has none (only ``*`` matches it). Naming
        the group here is no reference cycle: the group's role may invoke this function,
        but the group itself depends only on its role, not on that role's policy (CDK's own
        hook grant already names the group in this policy)."""
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["codedeploy:GetDeployment"], resources=[group.deployment_group_arn]
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["codedeploy:GetApplicationRevision"],
                resources=[application.application_arn],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["codedeploy:PutLifecycleEventHookExecutionStatus"], resources=["*"]
            )
        )
        Validations.of(self.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="codedeploy:PutLifecycleEventHookExecutionStatus has no resource type "
                "in the Service Authorization Reference: only * matches it. The hook reports "
                "only for the deployment that invoked it.",
            )
        )
