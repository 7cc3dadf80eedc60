"""Configuration parsing: defaults from cdk.json, overrides, and every refusal."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stacks.capacity import split_provisioned_concurrency
from stacks.config import load_config
from stacks.settings import (
    Architecture,
    ConfigError,
    EndpointAuth,
    ModelRuntime,
    ProvisionedConcurrencySettings,
    Rollout,
    RolloutMode,
)
from tests.infra.conftest import artifacts_with, cdk_context

REPO = Path(__file__).resolve().parents[2]


def load(**overrides: Any) -> Any:
    return load_config({**cdk_context(), **overrides})


def with_env_setting(env: str, path: str, value: Any) -> dict[str, Any]:
    context = cdk_context()
    node = context["environments"][env]
    *parents, leaf = path.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = value
    return context


def test_dev_defaults_from_cdk_json() -> None:
    config = load()
    assert config.name == "dev"
    assert config.model.model_name == "churn"
    assert config.model.runtime is ModelRuntime.COMPILED
    assert re.fullmatch(r"models/churn/v1/[0-9a-f]{16}/model\.compiled\.npz", config.model.key)
    manifest = json.loads((REPO / "model_artifacts/churn/v1/manifest.json").read_text())
    assert config.model.sha256 == manifest["artifacts"]["compiled"]["sha256"]
    assert config.function.reserved_concurrency == 10
    assert config.function.architecture is Architecture.ARM64
    assert config.endpoint_auth is EndpointAuth.AWS_IAM
    assert config.rollout == Rollout(RolloutMode.MANUAL, "v1", None, 0.0)
    assert config.provisioned_concurrency.total == 0
    assert config.warmer.enabled, "without provisioned concurrency the warmer is on (auto)"
    assert config.account is None and config.region is None


def test_prod_has_provisioned_concurrency_and_no_warmer() -> None:
    config = load(env="prod")
    assert config.provisioned_concurrency.total > 0
    assert config.provisioned_concurrency.autoscaling is not None
    assert not config.warmer.enabled, "provisioned concurrency covers traffic (auto)"


def test_command_line_overrides_the_committed_rollout() -> None:
    config = load(model_version="v2", stable_version="7", canary_weight="0.25")
    assert config.rollout.model_version == "v2"
    assert config.rollout.stable_lambda_version == 7
    assert config.rollout.canary_weight == 0.25
    assert re.fullmatch(r"models/churn/v2/[0-9a-f]{16}/model\.compiled\.npz", config.model.key)


def test_committed_rollout_values_are_json_typed() -> None:
    context = with_env_setting("dev", "rollout.stable_version", 3)
    context["environments"]["dev"]["rollout"]["canary_weight"] = 0.5
    config = load_config(context)
    assert (config.rollout.stable_lambda_version, config.rollout.canary_weight) == (3, 0.5)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"canary_weight": "1", "stable_version": "7"}, r"canary_weight='1'.*\[0, 1\)"),
        ({"canary_weight": "1.5", "stable_version": "7"}, r"canary_weight='1.5'.*\[0, 1\)"),
        ({"canary_weight": "-0.1", "stable_version": "7"}, r"canary_weight='-0.1'.*\[0, 1\)"),
        ({"canary_weight": "ten", "stable_version": "7"}, r"canary_weight='ten'.*number"),
        ({"canary_weight": "0.1"}, r"canary_weight='0.1' needs stable_version"),
        ({"stable_version": "7.5"}, r"stable_version='7.5'.*integer"),
        ({"stable_version": "seven"}, r"stable_version='seven'.*integer"),
        ({"stable_version": "0"}, r"stable_version='0'.*integer from 1"),
        ({"model_version": "v9"}, r"model_version='v9' has no artifact.*available.*v1, v2"),
        ({"model_version": "latest"}, r"model_version='latest'.*'v' and a number"),
        ({"env": "staging"}, r"env='staging'.*dev, prod"),
        ({"canary_wieght": "0.1"}, r"unknown context key\(s\) canary_wieght.*canary_weight"),
    ],
)
def test_bad_command_line_values_name_key_value_and_allowed(
    overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load(**overrides)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("function.memory_mb", 64, r"function.memory_mb=64.*128 to 10240"),
        ("function.architecture", "arm", r"architecture='arm'.*'arm64', 'x86_64'"),
        ("function.log_retention_days", 10, r"log_retention_days=10.*accepts 1, 3"),
        ("function.tracing", "yes", r"tracing='yes'.*true, false"),
        ("function.memroy_mb", 512, r"unknown key\(s\) environments.dev.function.memroy_mb"),
        ("runtime", "onnx", r"runtime='onnx'.*'sklearn', 'compiled'"),
        ("endpoint.auth", "none", r"endpoint.auth='none'.*'AWS_IAM', 'NONE'"),
        ("warmer.enabled", "sometimes", r"warmer.enabled='sometimes'.*'auto'"),
        ("alarms.email", "ops", r"alarms.email='ops'.*an address"),
        ("rollout.mode", "yolo", r"rollout.mode='yolo'.*'manual'"),
        ("account", "123", r"account='123'.*12 digits"),
        ("account", "123456789012\n", r"account='123456789012\\n'.*12 digits"),
        # `$` matches before a final newline: patterns match the whole value (fullmatch).
        ("models", {"fraud\n": {}}, r"models key 'fraud\\n' is not allowed"),
        ("provisioned_concurrency.total", -1, r"total=-1.*integer from 0"),
        (
            "encryption.customer_managed_key",
            "kms",
            r"environments.dev.encryption.customer_managed_key='kms' is not allowed: use "
            r"true, false",
        ),
        (
            "encryption.key_arn",
            "x",
            r"unknown key\(s\) environments.dev.encryption.key_arn: "
            r"allowed under environments.dev.encryption are customer_managed_key",
        ),
    ],
)
def test_bad_environment_settings_name_key_value_and_allowed(
    path: str, value: Any, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(with_env_setting("dev", path, value))


def test_canary_needs_provisioned_concurrency_for_both_sides() -> None:
    context = with_env_setting("prod", "provisioned_concurrency.total", 1)
    context["environments"]["prod"]["provisioned_concurrency"]["autoscaling"] = None
    with pytest.raises(ConfigError, match=r"total=1 cannot keep both sides"):
        load_config({**context, "env": "prod", "stable_version": "7", "canary_weight": "0.1"})


def automated(context: dict[str, Any], env: str) -> dict[str, Any]:
    context["environments"][env]["rollout"]["mode"] = "automated"
    return {**context, "env": env}


@pytest.mark.parametrize("mode", ["manual", "automated"])
@pytest.mark.parametrize(
    ("autoscaling", "reserved", "needed"),
    [({"max_total": 20, "target_utilization": 0.7}, 39, 40), (None, 7, 8)],
)
def test_reserved_concurrency_holds_both_versions_while_one_takes_over(
    mode: str, autoscaling: dict[str, Any] | None, reserved: int, needed: int
) -> None:
    # A promote (manual) or the end of a CodeDeploy shift (automated) raises the version
    # taking over towards the ceiling before the one it replaces is released: the
    # reconciler gives it the live capacity of an autoscaled stable side.
    context = with_env_setting("prod", "function.reserved_concurrency", reserved)
    context["environments"]["prod"]["provisioned_concurrency"]["autoscaling"] = autoscaling
    context["environments"]["prod"]["rollout"]["mode"] = mode
    key = "autoscaling.max_total" if autoscaling else "total"
    with pytest.raises(
        ConfigError,
        match=rf"environments.prod.function.reserved_concurrency={reserved} is below the "
        r"provisioned concurrency that can be allocated at once \(environments.prod."
        rf"provisioned_concurrency.{key}={needed // 2}: .* 2 x {needed // 2} = {needed}\): "
        rf"allowed is at least {needed}",
    ):
        load_config({**context, "env": "prod"})
    context["environments"]["prod"]["function"]["reserved_concurrency"] = needed
    assert load_config({**context, "env": "prod"}).function.reserved_concurrency == needed


def test_without_provisioned_concurrency_any_reservation_is_enough() -> None:
    context = with_env_setting("dev", "function.reserved_concurrency", 1)
    assert load_config({**context, "env": "dev"}).function.reserved_concurrency == 1


@pytest.mark.parametrize(
    "overrides",
    [
        {"env": "dev"},
        {"env": "prod"},
        {"env": "prod", "stable_version": "7", "canary_weight": "0.15"},
        {"env": "prod", "stable_version": "7", "canary_weight": "0.5"},
    ],
)
def test_committed_reserved_concurrency_holds_what_cdk_json_allocates(
    overrides: dict[str, str],
) -> None:
    assert load(**overrides).function.reserved_concurrency in (10, 50)
    assert load_config(automated(cdk_context(), overrides["env"])).function.reserved_concurrency


def test_runtime_without_artifact_in_manifest_stops(tmp_path: Path) -> None:
    directory = tmp_path / "churn" / "v1"
    shutil.copytree(REPO / "model_artifacts/churn/v1", directory)
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["artifacts"] = {"sklearn": manifest["artifacts"]["sklearn"]}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    context = with_env_setting("dev", "runtime", "compiled")
    with pytest.raises(ConfigError, match=r"runtime='compiled' is not available.*sklearn"):
        load_config(context, artifacts_root=tmp_path)


def test_compiled_runtime_pins_its_own_artifact(tmp_path: Path) -> None:
    directory = tmp_path / "churn" / "v1"
    shutil.copytree(REPO / "model_artifacts/churn/v1", directory)
    manifest = json.loads((directory / "manifest.json").read_text())
    (directory / "model.json").write_text("{}")
    sha256 = hashlib.sha256(b"{}").hexdigest()
    manifest["artifacts"] = {
        "sklearn": manifest["artifacts"]["sklearn"],
        "compiled": {"file": "model.json", "sha256": sha256},
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))
    config = load_config(with_env_setting("dev", "runtime", "compiled"), artifacts_root=tmp_path)
    assert config.model.key == f"models/churn/v1/{config.model.content_id}/model.json"
    assert config.model.sha256 == sha256
    assert config.model.upload_files == ("model.json", "model.skops", "manifest.json")


# ------------------------------------------------- content-addressed artifact keys


def copy_v1(root: Path) -> Path:
    directory = root / "churn" / "v1"
    shutil.copytree(REPO / "model_artifacts/churn/v1", directory)
    return directory


def retrain(directory: Path, file: str) -> None:
    """What ``training.train --force`` does to a version: new bytes, manifest to match."""
    path = directory / file
    path.write_bytes(path.read_bytes() + b"retrained")
    manifest = json.loads((directory / "manifest.json").read_text())
    for artifact in manifest["artifacts"].values():
        if artifact["file"] == file:
            artifact["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
            artifact["size_bytes"] = path.stat().st_size
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def test_key_is_content_addressed_under_the_version_prefix() -> None:
    model = load().model
    assert re.fullmatch(r"[0-9a-f]{16}", model.content_id)
    assert model.prefix == f"models/churn/v1/{model.content_id}/"
    assert model.key == f"{model.prefix}{model.file}"
    assert model.key.startswith(model.model_prefix), "inside what the role may read"
    assert load(model_version="v2").model.content_id != model.content_id


@pytest.mark.parametrize("file", ["model.compiled.npz", "model.joblib"])
def test_retraining_a_version_changes_its_key(tmp_path: Path, file: str) -> None:
    """Any artifact, the pinned one or not: the new bytes never go under the old key."""
    before = load_config(cdk_context(), artifacts_root=REPO / "model_artifacts").model
    retrain(copy_v1(tmp_path), file)
    after = load_config(cdk_context(), artifacts_root=tmp_path).model
    assert after.model_version == before.model_version == "v1"
    assert after.content_id != before.content_id
    assert after.key != before.key
    assert after.key.startswith("models/churn/v1/")
    assert (after.sha256 != before.sha256) is (file == "model.compiled.npz")


def test_same_artifacts_give_the_same_key(tmp_path: Path) -> None:
    """Deterministic: a copy elsewhere, or the manifest reformatted, names the same bytes."""
    original = load().model
    directory = copy_v1(tmp_path)
    assert load_config(cdk_context(), artifacts_root=tmp_path).model.key == original.key
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_bytes(json.dumps(manifest, indent=4).replace("\n", "\r\n").encode())
    assert load_config(cdk_context(), artifacts_root=tmp_path).model.key == original.key


@pytest.mark.parametrize("file", ["model.compiled.npz", "model.joblib"])
def test_artifact_changed_without_its_manifest_stops(tmp_path: Path, file: str) -> None:
    """Its key comes from the manifest: unchecked, it would overwrite the pinned bytes."""
    path = copy_v1(tmp_path) / file
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(ConfigError, match=rf"{re.escape(file)}: SHA-256 [0-9a-f]{{64}} does not "):
        load_config(cdk_context(), artifacts_root=tmp_path)


@pytest.mark.parametrize(
    ("total", "stable", "weight", "expected"),
    [
        (0, 7, 0.1, (0, 0)),
        (4, None, 0.0, (4, 0)),
        (4, 7, 0.0, (0, 4)),
        (4, 7, 0.1, (1, 3)),  # the candidate gets at least one
        (4, 7, 0.5, (2, 2)),
        (4, 7, 0.99, (3, 1)),  # and so does the stable version
        (10, 7, 0.25, (2, 8)),
    ],
)
def test_provisioned_concurrency_follows_the_weights(
    total: int, stable: int | None, weight: float, expected: tuple[int, int]
) -> None:
    share = split_provisioned_concurrency(
        ProvisionedConcurrencySettings(total, None),
        Rollout(RolloutMode.MANUAL, "v2", stable, weight),
    )
    assert (share.candidate, share.stable) == expected
    assert share.candidate + share.stable == total


def test_app_py_reports_a_config_error_without_a_traceback() -> None:
    # The CLI passes context to the app through CDK_CONTEXT_JSON.
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps({**cdk_context(), "canary_weight": "2"}),
        "CDK_OUTDIR": "/nonexistent",
    }
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert re.search(r"configuration error: canary_weight='2'.*\[0, 1\)", result.stderr)


def test_each_environment_publishes_metrics_to_its_own_namespace() -> None:
    assert load().function.metrics_namespace == "SklearnLambdaServing/dev"
    assert load(env="prod").function.metrics_namespace == "SklearnLambdaServing/prod"
    context = cdk_context()
    del context["environments"]["dev"]["function"]["metrics_namespace"]
    assert load_config(context).function.metrics_namespace == "SklearnLambdaServing/dev"


def test_two_environments_sharing_a_metrics_namespace_stop_synth() -> None:
    # Metrics carry only ModelVersion: a shared namespace would let dev's errors trip
    # prod's alarms (and roll prod back in automated mode) in a shared account.
    context = cdk_context()
    for name in ("dev", "prod"):
        context["environments"][name]["function"]["metrics_namespace"] = "Shared"
    with pytest.raises(
        ConfigError,
        match=r"environments\.dev and environments\.prod both set "
        r"function\.metrics_namespace='Shared': each environment needs its own",
    ):
        load_config(context)


# ---------------------------------------------------------------------------- alarm e-mail


def test_a_protected_environment_without_an_alarm_subscriber_is_refused() -> None:
    # prod is termination-protected: someone depends on it, so its alarms must page someone.
    context = with_env_setting("prod", "alarms.email", None)
    with pytest.raises(ConfigError) as refused:
        load_config({**context, "env": "prod"})
    message = str(refused.value)
    assert message.startswith(
        "environments.prod.alarms.email=None is not allowed with "
        "environments.prod.termination_protection=true"
    )
    assert "-c alarm_email=" in message


def test_alarm_email_on_the_command_line_subscribes_every_model_of_the_environment(
    tmp_path: Path,
) -> None:
    context = with_env_setting("prod", "alarms.email", None)
    context["environments"]["prod"]["models"] = {"fraud": {"rollout": {"model_version": "v1"}}}
    config = load_config(
        {**context, "env": "prod", "alarm_email": "ml-oncall@company.io"},
        artifacts_root=artifacts_with(tmp_path, "fraud"),
    )
    assert [m.alarms.email for m in config.models] == ["ml-oncall@company.io"] * 2


def test_a_model_that_clears_the_address_of_a_protected_environment_is_refused(
    tmp_path: Path,
) -> None:
    context = cdk_context()
    context["environments"]["prod"]["models"] = {
        "fraud": {"alarms": {"email": None}, "rollout": {"model_version": "v1"}}
    }
    with pytest.raises(ConfigError, match=r"^environments.prod.models.fraud.alarms.email=None"):
        load_config({**context, "env": "prod"}, artifacts_root=artifacts_with(tmp_path, "fraud"))


def test_alarm_email_override_is_checked_and_can_clear_an_unprotected_address() -> None:
    with pytest.raises(ConfigError, match=r"^alarm_email='ops' is not allowed: expected an"):
        load(alarm_email="ops")
    dev = with_env_setting("dev", "alarms.email", "team@company.io")
    assert load_config({**dev, "alarm_email": "none"}).alarms.email is None
    with pytest.raises(ConfigError, match=r"termination_protection=true"):
        load(env="prod", alarm_email="none")


@pytest.mark.parametrize(
    ("email", "placeholder"),
    [
        ("replace-me@example.org", True),
        ("a@EXAMPLE.COM", True),
        ("a@mail.example.net", True),
        ("a@corp.example", True),
        ("a@host.test", True),
        ("a@nowhere.invalid", True),
        ("a@example.org.", True),
        ("a@example.co.uk", False),
        ("a@notexample.org", False),
        ("oncall@company.io", False),
    ],
)
def test_reserved_domains_are_placeholders(email: str, placeholder: bool) -> None:
    config = load(alarm_email=email)
    assert config.alarms.email_is_placeholder is placeholder


def test_the_committed_prod_synthesizes_with_a_placeholder_address() -> None:
    config = load(env="prod")
    assert config.alarms.email == "replace-me@example.org"
    assert config.alarms.email_is_placeholder


def test_customer_managed_keys_are_on_in_prod_and_off_in_dev() -> None:
    assert not load().encryption.customer_managed_key
    prod = load(env="prod")
    assert prod.encryption.customer_managed_key
    assert not load_config(
        with_env_setting("prod", "encryption.customer_managed_key", "false") | {"env": "prod"}
    ).encryption.customer_managed_key


def test_encryption_is_the_environments_not_a_models() -> None:
    """The capture bucket (and its key) is shared by every model of the environment."""
    context = cdk_context()
    prod = context["environments"]["prod"]
    prod["models"] = {"fraud": {"rollout": {"model_version": "v1"},
                                "encryption": {"customer_managed_key": False}}}  # fmt: skip
    refusal = (
        r"unknown key\(s\) environments.prod.models.fraud.encryption: allowed under "
        r"environments.prod.models.fraud are"
    )
    with pytest.raises(ConfigError, match=refusal):
        load_config({**context, "env": "prod"})
