from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest

from benchmarks import pricing
from benchmarks.pricing import (
    PRICES,
    SECONDS_PER_MONTH,
    Measured,
    PricingError,
    billed_ms,
    environment,
    measured_from,
    monthly_cost,
    traces_per_month,
)
from stacks.config import load_config
from stacks.settings import Architecture
from tests.infra.conftest import artifacts_with, cdk_context

MEASURED = Measured(runtime="compiled", warm_p50_ms=0.2, log_bytes_per_request=700, source="test")


def test_billed_duration_stretches_below_one_vcpu_and_rounds_up() -> None:
    assert billed_ms(0.2, 2048) == 1  # above 1,769 MB a single thread gets no faster
    assert billed_ms(1.0, 1024) == 2  # 1 ms x 1769/1024 = 1.73 ms, billed 2
    assert billed_ms(3.0, 1769) == 3


def test_prod_holds_its_configured_provisioned_concurrency_at_arm_rates() -> None:
    prod = environment("prod")
    assert prod.function.architecture is Architecture.ARM64
    held = monthly_cost(prod, MEASURED, predictions=0)["provisioned concurrency held"]
    assert held == pytest.approx(4 * 2 * SECONDS_PER_MONTH * 0.0000033334)  # ~ $70.08
    at_max = monthly_cost(prod, MEASURED, predictions=0, provisioned=20)
    assert at_max["provisioned concurrency held"] == pytest.approx(5 * held)
    # The same configuration on x86 costs what issue 12 quotes (~$86 a month).
    x86 = dataclasses.replace(
        prod, function=dataclasses.replace(prod.function, architecture=Architecture.X86_64)
    )
    assert monthly_cost(x86, MEASURED, predictions=0)[
        "provisioned concurrency held"
    ] == pytest.approx(87.6, abs=0.1)


def test_requests_on_provisioned_concurrency_pay_its_duration_rate() -> None:
    prod, dev = environment("prod"), environment("dev")
    million = 1_000_000
    # prod: 1 ms billed at 2 GB on the PC duration rate; dev: 1 ms at 1 GB on demand,
    # plus the warmer's pings.
    assert monthly_cost(prod, MEASURED, predictions=million)["Lambda duration"] == pytest.approx(
        million * 0.001 * 2 * PRICES["pc_duration_gb_s_arm64"].usd
    )
    warm_ups = SECONDS_PER_MONTH / 60 / dev.warmer.rate_minutes
    assert monthly_cost(dev, MEASURED, predictions=million)["Lambda duration"] == pytest.approx(
        (million + warm_ups) * 0.001 * 1 * PRICES["lambda_gb_s_arm64"].usd
    )


def test_only_the_environment_without_provisioned_concurrency_pays_for_warm_up_pings() -> None:
    dev, prod = environment("dev"), environment("prod")
    assert dev.warmer.enabled and not prod.warmer.enabled
    assert monthly_cost(dev, MEASURED, predictions=0)["Lambda requests"] == pytest.approx(
        8760 * 0.20 / 1e6
    )
    assert monthly_cost(prod, MEASURED, predictions=0)["Lambda requests"] == 0


def test_log_ingestion_counts_the_handlers_bytes_and_lambdas_own_lines() -> None:
    prod = environment("prod")
    million = 1_000_000
    quiet = dataclasses.replace(MEASURED, log_bytes_per_request=0)
    platform_only = monthly_cost(prod, quiet, predictions=million)["CloudWatch Logs ingestion"]
    with_handler = monthly_cost(prod, MEASURED, predictions=million)["CloudWatch Logs ingestion"]
    # 700 bytes x 1M requests = 0.7 GB at $0.50
    assert with_handler - platform_only == pytest.approx(0.35)
    assert 0.1 < platform_only < 0.2  # START, END, REPORT + XRAY: ~300 bytes a request


def test_xray_records_one_trace_a_second_then_five_percent() -> None:
    assert traces_per_month(1000) == 1000
    assert traces_per_month(SECONDS_PER_MONTH + 100) == pytest.approx(SECONDS_PER_MONTH + 5)


def test_every_price_names_an_aws_pricing_page() -> None:
    for key, price in PRICES.items():
        assert price.source.startswith("https://aws.amazon.com/") and "pricing" in price.source, key
        assert price.usd > 0


def test_missing_figures_name_the_run_and_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(PricingError, match=r"has no ours \(compiled\) warm p50.*make bench"):
        measured_from({"results": {}}, "compiled", "old.json")
    bench = tmp_path / "latest.json"
    bench.write_text(json.dumps({"machine": {"date": "2026-11-25"}, "results": {}}))
    assert pricing.main(["--bench", str(bench)]) == 2


def test_report_prices_every_environment_at_each_volume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = {"warm": {"1": {"p50_ms": 0.2}}, "log_bytes_per_request": {"1": 700}}
    bench = tmp_path / "latest.json"
    bench.write_text(
        json.dumps(
            {
                "machine": {"date": "2026-11-25"},
                "results": {"ours (compiled)": result, "ours (sklearn)": result},
            }
        )
    )
    assert pricing.main(["--bench", str(bench)]) == 0
    out = capsys.readouterr().out
    assert "| dev, no PC | 1M / month | 10M / month | 100M / month |" in out
    assert "| prod, PC 4 (configured total) |" in out and "| prod, PC 20 (autoscaling max) |" in out
    assert out.count("| cost per 1M predictions |") == 3
    assert "| lambda_gb_s_arm64 | $0.0000133334 | per GB-second, Arm, on demand |" in out


def test_capture_and_drift_are_priced_at_the_configured_rate() -> None:
    dev, prod = environment("dev"), environment("prod")
    million = 1_000_000
    line = pricing.capture_line_bytes()
    assert 300 < line < 1_000, "one churn record as the handler writes it"
    dev_costs = monthly_cost(dev, MEASURED, predictions=million)
    assert dev_costs["capture: log ingestion"] == pytest.approx(million * 1.0 * line / 1e9 * 0.50)
    prod_costs = monthly_cost(prod, MEASURED, predictions=million)
    assert prod_costs["capture: log ingestion"] == pytest.approx(million * 0.1 * line / 1e9 * 0.50)
    assert prod_costs["drift monitor: metrics and alarms"] == pytest.approx(
        (3 + 7) * 0.30 + 2 * 0.10
    )


def test_capture_off_costs_nothing_and_runs_no_monitor() -> None:
    import dataclasses

    dev = environment("dev")
    off = dataclasses.replace(
        dev, capture=dataclasses.replace(dev.capture, enabled=False), drift=None
    )
    costs = monthly_cost(off, MEASURED, predictions=1_000_000)
    assert costs["capture: log ingestion"] == 0
    assert not [item for item in costs if item.startswith("drift monitor")]


def test_each_model_of_an_environment_is_priced_as_its_own_function(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifacts_with(tmp_path, "fraud", versions=("v1",))
    context = copy.deepcopy(cdk_context())
    context["environments"]["prod"]["models"] = {
        "fraud": {"provisioned_concurrency": {"total": 1, "autoscaling": None},
                  "rollout": {"model_version": "v1"}}
    }  # fmt: skip
    config = load_config({**context, "env": "prod"}, artifacts_root=tmp_path)
    monkeypatch.setattr(pricing, "environment", lambda name: config)
    text = pricing.report(["prod"], {"compiled": MEASURED, "sklearn": MEASURED})
    assert "### prod / churn: arm64, 2048 MB" in text
    assert "### prod / fraud: arm64, 2048 MB" in text
    assert "| prod / fraud, PC 1 |" in text
    assert "the built-in model's figures, not fraud's" in text
