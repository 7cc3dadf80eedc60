"""Compose the app: per environment, one model store and one inference stack per model.

The environment's first model (``model_name``) keeps the stack name of a one-model app,
``<prefix>-<env>-inference``; each further model (``models``) gets
``<prefix>-<env>-inference-<model>``, so adding a model changes no existing stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import App, Environment, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from stacks.constructs.capture_bucket import capture_bucket_name
from stacks.constructs.model_bucket import model_bucket_name
from stacks.inference_stack import InferenceStack
from stacks.model_store_stack import ModelStoreStack
from stacks.settings import (
    REPO_ROOT,
    STACK_PREFIX,
    EnvironmentConfig,
    stack_name_of,
)

DEFAULT_IMAGE_DIRECTORY = REPO_ROOT / "lambda_src"


@dataclass(frozen=True)
class AppStacks:
    model_store: ModelStoreStack
    # Every model's inference stack by model name, the first model's included.
    inference: dict[str, InferenceStack]


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
        models=[model.model for model in config.models],
        bucket_name=model_bucket_name(prefix),
        capture_bucket_name=capture_bucket_name(prefix),
        capture_retention_days=config.capture.retention_days,
        customer_managed_key=config.encryption.customer_managed_key,
        env=env,
        description=f"Model artifacts for {', '.join(m.model.model_name for m in config.models)} "
        f"({config.name}); retained.",
        termination_protection=config.termination_protection,
    )
    by_model: dict[str, InferenceStack] = {}
    for model in config.models:
        name = model.model.model_name
        inference = InferenceStack(
            app,
            stack_name_of(model),
            config=model,
            environment_prefix=prefix,
            image_directory=image_directory,
            env=env,
            description=f"Inference for {name} ({config.name}): function, "
            "production alias, endpoint, monitoring.",
            termination_protection=config.termination_protection,
        )
        # No cross-stack reference carries this order (the bucket is addressed by name).
        inference.add_stack_dependency(
            model_store, "the model version is uploaded before a Lambda version that loads it"
        )
        by_model[name] = inference
    for stack in (model_store, *by_model.values()):
        Tags.of(stack).add("project", STACK_PREFIX)
        Tags.of(stack).add("environment", config.name)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return AppStacks(model_store=model_store, inference=by_model)
