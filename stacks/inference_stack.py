"""Stateless stack: function, versions, alias, warm-up, endpoint, monitoring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_s3 as s3
from constructs import Construct

from serving.artifacts import MANIFEST
from serving.payload import DEFAULT_MAX_EXPLAIN_ROWS
from stacks.constructs.automated_rollout import AutomatedRollout
from stacks.constructs.batch_scoring import BatchScoring
from stacks.constructs.capture_bucket import capture_bucket_name
from stacks.constructs.capture_delivery import CaptureDelivery
from stacks.constructs.data_keys import allow_log_group, inference_data_key
from stacks.constructs.drift_monitor import DriftMonitor
from stacks.constructs.endpoint import Endpoint
from stacks.constructs.inference_function import InferenceFunction
from stacks.constructs.model_bucket import grant_read_model, model_bucket_name
from stacks.constructs.monitoring import Monitoring
from stacks.constructs.production_alias import ProductionAlias
from stacks.constructs.traffic_gate import TrafficGate
from stacks.constructs.warmer import Warmer
from stacks.settings import ALIAS_NAME, EnvironmentConfig, RolloutMode


class InferenceStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        environment_prefix: str,
        image_directory: Path,
        **stack_props: Any,
    ) -> None:
        super().__init__(scope, id_, **stack_props)
        model = config.model
        model_bucket = s3.Bucket.from_bucket_name(
            self, "ModelBucket", model_bucket_name(environment_prefix)
        )
        settings = config.function
        rollout = config.rollout
        # This stack's own key (stacks.constructs.data_keys): its log group and stream.
        self.data_key = (
            inference_data_key(self, "DataKey") if config.encryption.customer_managed_key else None
        )

        self.inference = InferenceFunction(
            self,
            "Inference",
            image_directory=image_directory,
            # The runtime selects the image's requirements; the model does not touch the image.
            build_args={"MODEL_RUNTIME": model.runtime.value},
            settings=settings,
            environment={
                "MODEL_NAME": model.model_name,
                "MODEL_VERSION": model.model_version,
                "MODEL_RUNTIME": model.runtime.value,
                "MODEL_BUCKET": model_bucket.bucket_name,
                "MODEL_KEY": model.key,
                "MODEL_SHA256": model.sha256,
                "MODEL_SIZE_BYTES": str(model.size_bytes),
                "MAX_BATCH_SIZE": str(settings.max_batch_size),
                # Set only when it differs from the handler's default: a deployed function
                # keeps its configuration (and its published version) until someone sets it.
                **(
                    {"MAX_EXPLAIN_ROWS": str(settings.max_explain_rows)}
                    if settings.max_explain_rows != DEFAULT_MAX_EXPLAIN_ROWS
                    else {}
                ),
                "METRICS_NAMESPACE": settings.metrics_namespace,
                # Capture settings are function configuration: changing them publishes a
                # version, like any other setting of the function.
                "CAPTURE_SAMPLE_RATE": f"{config.capture.effective_rate:g}",
                "CAPTURE_MAX_ROWS": str(config.capture.max_rows_per_request),
            },
            version_description=f"{model.model_name} {model.model_version} ({model.runtime.value})",
            log_key=self.data_key,
        )
        if self.data_key is not None:
            allow_log_group(self.data_key, self.inference.log_group)
        function = self.inference.function
        grant_read_model(
            self.inference.role,
            model_bucket,
            model.model_prefix,
            why="the stable version of a canary (same role) reads an older version's key.",
        )

        # "Release": the construct ID of the first release, which the alias's logical ID keeps.
        self.release = ProductionAlias(
            self,
            "Release",
            function=function,
            alias_name=ALIAS_NAME,
            stable_lambda_version=rollout.stable_lambda_version,
            canary_weight=rollout.canary_weight,
            provisioned_concurrency=config.pc_share,
            autoscaling=config.provisioned_concurrency.autoscaling,
        )
        automated = rollout.mode is RolloutMode.AUTOMATED
        self.traffic_gate = TrafficGate(
            self,
            "TrafficGate",
            function=function,
            candidate=self.release.candidate,
            stable=self.release.stable if rollout.canary_weight > 0 else None,
            candidate_weight=self.release.candidate_weight,
            alias_name=ALIAS_NAME,
            model=model,
            stable_model=config.stable_model,
            model_bucket=model_bucket,
            tolerances=config.quality_gate,
            automated=automated,
        )
        if self.traffic_gate.resource is not None:
            # Published, warm (scale_up), then checked, then routed.
            self.traffic_gate.resource.node.add_dependency(
                self.release.provisioned_concurrency.scale_up
            )
            self.release.alias.node.add_dependency(self.traffic_gate.resource)
        self.warmer = (
            Warmer(
                self,
                "Warmer",
                versions=self.release.serving,
                rate_minutes=config.warmer.rate_minutes,
            )
            if config.warmer.enabled
            else None
        )
        self.capture = None
        if config.capture.enabled:
            self.capture = CaptureDelivery(
                self,
                "Capture",
                log_group=self.inference.log_group,
                bucket=s3.Bucket.from_bucket_name(
                    self, "CaptureBucket", capture_bucket_name(environment_prefix)
                ),
                stream_key=self.data_key,
                bucket_encrypted_with_kms=config.encryption.customer_managed_key,
            )
        self.drift_monitor = None
        canary_analysis = config.drift is not None and (rollout.is_canary or automated)
        if config.drift is not None:
            self.drift_monitor = DriftMonitor(
                self,
                "DriftMonitor",
                settings=config.drift,
                architecture=settings.architecture,
                log_group=self.inference.log_group,
                model_bucket=model_bucket,
                model_prefix=model.model_prefix,
                manifest_key=f"{model.prefix}{MANIFEST}",
                model_version=model.model_version,
                metrics_namespace=settings.metrics_namespace,
                # Canary analysis of predictions while two versions take traffic.
                canary_alias=(function, ALIAS_NAME) if canary_analysis else None,
            )
        self.endpoint = Endpoint(
            self, "Endpoint", alias=self.release.alias, auth=config.endpoint_auth
        )
        dashboard_name = f"{environment_prefix}-{model.model_name}"
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            function_name=function.function_name,
            alias_name=ALIAS_NAME,
            candidate_version=self.release.candidate.version,
            rollout=rollout,
            model=model,
            metrics_namespace=settings.metrics_namespace,
            dashboard_name=dashboard_name,
            alarms=config.alarms,
            drift=config.drift,
            canary_analysis=canary_analysis,
            drift_monitor=self.drift_monitor,
            capture=self.capture,
        )
        self.automated_rollout = None
        if rollout.traffic_shift is not None:
            self.automated_rollout = AutomatedRollout(
                self,
                "AutomatedRollout",
                alias=self.release.alias,
                traffic_shift=rollout.traffic_shift,
                alarms=self.monitoring.alarms.rollback,
                pre_traffic_hook=self.traffic_gate.function,
            )
            self.traffic_gate.allow_deployments(
                self.automated_rollout.application, self.automated_rollout.deployment_group
            )

        self.batch_scoring = None
        if config.batch_scoring.enabled:
            self.batch_scoring = BatchScoring(
                self,
                "BatchScoring",
                function=function,
                settings=config.batch_scoring,
                alias_name=ALIAS_NAME,
                timeout_seconds=settings.timeout_seconds,
                log_retention_days=settings.log_retention_days,
            )
            CfnOutput(
                self,
                "BatchScoringStateMachineArn",
                value=self.batch_scoring.state_machine.state_machine_arn,
                description="The batch-scoring state machine (python -m tools.batch starts it).",
            )

        CfnOutput(
            self, "EndpointUrl", value=self.endpoint.url.url, description="HTTPS endpoint (alias)"
        )
        CfnOutput(self, "AliasArn", value=self.release.alias.function_arn)
        CfnOutput(
            self,
            "PublishedVersion",
            value=self.release.candidate.version,
            description="The version this deploy published: the next canary's stable_version.",
        )
        CfnOutput(self, "ModelVersion", value=model.model_version)
        CfnOutput(
            self,
            "LogGroupName",
            value=self.inference.log_group.log_group_name,
            description="The function's log group: prediction logs and capture records.",
        )
        CfnOutput(self, "DashboardName", value=dashboard_name)
