"""Automated mode: CodeDeploy shifts the alias to each new version and rolls back on alarm."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from stacks.constructs.nag_ids import logical_id
from stacks.settings import TrafficShift

DEPLOYMENT_CONFIGS: dict[TrafficShift, codedeploy.ILambdaDeploymentConfig] = {
    TrafficShift.CANARY_10_5MIN: codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_5_MINUTES,
    TrafficShift.CANARY_10_15MIN: codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_15_MINUTES,
    TrafficShift.LINEAR_10_EVERY_1MIN: (
        codedeploy.LambdaDeploymentConfig.LINEAR_10_PERCENT_EVERY_1_MINUTE
    ),
    TrafficShift.LINEAR_10_EVERY_3MIN: (
        codedeploy.LambdaDeploymentConfig.LINEAR_10_PERCENT_EVERY_3_MINUTES
    ),
    TrafficShift.ALL_AT_ONCE: codedeploy.LambdaDeploymentConfig.ALL_AT_ONCE,
}


class AutomatedRollout(Construct):
    """A CodeDeploy deployment group on the alias, rolled back by the given alarms.

    The group gives the alias a ``CodeDeployLambdaAliasUpdate`` update policy: when a deploy
    publishes a new version, CloudFormation does not move the alias itself but starts a
    CodeDeploy deployment that shifts traffic from the version the alias serves to the new
    one, and waits for it. An alarm in ALARM during the shift (or a failed/stopped
    deployment) sends all traffic back to the old version and fails the stack update, which
    CloudFormation then rolls back.

    Provisioned concurrency: the alias never carries any (CodeDeploy's weights would make
    Lambda refuse it). The reconciler's ``scale_up`` (which the alias depends on) gives the
    new version the whole configured total before CodeDeploy starts, while the old version
    keeps its allocation; ``settle`` (which depends on the alias) runs after CodeDeploy has
    finished and releases the old version's. Both sides are warm for the whole shift, at
    the price of twice the provisioned concurrency for its duration.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        alias: lambda_.Alias,
        traffic_shift: TrafficShift,
        alarms: Sequence[cloudwatch.IAlarm],
        pre_traffic_hook: lambda_.IFunction | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.application = codedeploy.LambdaApplication(self, "Application")
        self.deployment_group = codedeploy.LambdaDeploymentGroup(
            self,
            "DeploymentGroup",
            application=self.application,
            alias=alias,
            deployment_config=DEPLOYMENT_CONFIGS[traffic_shift],
            alarms=list(alarms),
            # The traffic gate: the new version answers its golden set before any traffic.
            pre_hook=pre_traffic_hook,
            auto_rollback=codedeploy.AutoRollbackConfig(
                failed_deployment=True, deployment_in_alarm=True, stopped_deployment=True
            ),
        )
        # The update policy names the group; when a deploy switches to automated mode and
        # publishes a version at once, the group must exist before the alias update.
        alias.node.add_dependency(self.deployment_group)
        if pre_traffic_hook is not None:
            hook_id = logical_id(pre_traffic_hook)
            Validations.of(self.deployment_group.role).acknowledge(
                Acknowledgment(
                    id=f"AwsSolutions-IAM5[Resource::<{hook_id}.Arn>:*]",
                    reason="CDK grants the deployment group invoke on the traffic gate hook "
                    "and its qualifiers; the hook is this one function.",
                )
            )
        Validations.of(self.deployment_group.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
                "service-role/AWSCodeDeployRoleForLambdaLimited]",
                reason="The AWS managed policy CodeDeploy documents for Lambda deployments: "
                "update aliases, read versions, invoke only functions named CodeDeployHook_*.",
            )
        )
