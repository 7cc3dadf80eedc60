"""Compose the app: one model store and one inference stack per environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import App, Environment, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from stacks.constructs.capture_bucket import capture_bucket_name
from stacks.constructs.model_bucket import model_bucket_name
from stacks.inference_stack import InferenceStack
from stacks.model_store_stack import ModelStoreStack
from stacks.settings import REPO_ROOT, EnvironmentConfig

DEFAULT_IMAGE_DIRECTORY = REPO_ROOT / "lambda_src"
STACK_PREFIX = "sklearn-serving"


@dataclass(frozen=True)
class AppStacks:
    model_store: ModelStoreStack
    inference: InferenceStack


def build_app(
    app: App,
    config: EnvironmentConfig,
    *,
    image_directory: Path = DEFAULT_IMAGE_DIRECTORY,
) -> AppStacks:
    """Add the stacks for ``config`` to ``app``; synth fails on any cdk-nag finding."""
    # Without an account/region the stacks are environment-agnostic: deterministic, no
    # lookups, and deployable to whatever account the credentials select.
    env = Environment(account=config.account, region=config.region)
    prefix = f"{STACK_PREFIX}-{config.name}"
    model_store = ModelStoreStack(
        app,
        f"{prefix}-model-store",
        model=config.model,
        bucket_name=model_bucket_name(prefix),
        capture_bucket_name=capture_bucket_name(prefix),
        capture_retention_days=config.capture.retention_days,
        env=env,
        description=f"Model artifacts for {config.model.model_name} ({config.name}); retained.",
        termination_protection=config.termination_protection,
    )
    inference = InferenceStack(
        app,
        f"{prefix}-inference",
        config=config,
        environment_prefix=prefix,
        image_directory=image_directory,
        env=env,
        description=f"Inference for {config.model.model_name} ({config.name}): function, "
        "production alias, endpoint, monitoring.",
        termination_protection=config.termination_protection,
    )
    # No cross-stack reference carries this order (the bucket is addressed by name).
    inference.add_stack_dependency(
        model_store, "the model version is uploaded before a Lambda version that loads it"
    )
    for stack in (model_store, inference):
        Tags.of(stack).add("project", STACK_PREFIX)
        Tags.of(stack).add("environment", config.name)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return AppStacks(model_store=model_store, inference=inference)
