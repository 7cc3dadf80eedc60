"""The explanations benchmark's report and its image check (benchmarks/explain.py,
benchmarks/explain_handler.py)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from benchmarks import explain, explain_handler

MACHINE = {
    "machine": "x86_64",
    "cores": 2,
    "pinned_cpu": 0,
    "load_average_before": 1.0,
    "load_average_after": 1.5,
}


def _ms(wall: float) -> dict[str, float]:
    return {"wall_ms": wall, "cpu_ms": wall}


FIGURES: dict[str, Any] = {
    "one_row": _ms(0.25),
    "hundred_rows": _ms(8.0),
    "shap_hundred_rows": _ms(16.0),
    "ratio": 0.5,
    "build": _ms(6.0),
    "import_ms": 0.7,
    "load_with_cover": _ms(8.0),
    "load_without_cover": _ms(7.5),
    "archive_bytes": 87_000,
    "archive_bytes_without_cover": 76_000,
    "parity_max_abs_diff": 4e-15,
    "handler": {
        "plain_status": 200,
        "explainer_lazy": True,
        "one_row": _ms(0.15),
        "explain_one_row": _ms(0.4),
        "parity_max_abs_diff": 0.0,
    },
    "cold": {"runs": 4, "with_cover_ms": 500.0, "without_cover_ms": 490.0, "ratio": 1.02},
    "dependencies": {
        "requirements_file": "lambda_src/images/inference/requirements-compiled.txt",
        "packages": ["numpy", "orjson"],
        "explain_imports": ["numpy"],
    },
}


def test_the_compiled_image_installs_numpy_and_orjson_and_explain_needs_only_numpy() -> None:
    deps = explain_handler.image_dependencies()
    assert deps["packages"] == ["numpy", "orjson"]
    assert deps["explain_imports"] == ["numpy"]


def test_requirement_names_follow_includes_and_drop_pins_and_comments(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("# shared\nnumpy==2.4.6\nOrjson>=3 ; python_version>'3'\n")
    (tmp_path / "top.txt").write_text("-r base.txt\nshap[plots]==0.4  # test only\n\n")
    assert explain_handler._requirement_names(tmp_path / "top.txt") == ["numpy", "orjson", "shap"]


def test_the_report_shows_the_handler_figure_and_every_target_met() -> None:
    text = explain.report(FIGURES, MACHINE)
    assert "1 row explained, handler:       0.400 ms" in text
    assert "max |handler - engine| 0.0e+00" in text
    assert "1 row <= 5 ms: yes" in text
    assert "cold start ratio with / without: 1.020" in text
    assert "cold start within 10 %: yes" in text
    assert "image packages numpy, orjson: yes" in text


def test_a_handler_that_explains_is_measured_and_held_to_five_ms() -> None:
    figures = copy.deepcopy(FIGURES)
    figures["handler"].update(explain_one_row=_ms(5.5), parity_max_abs_diff=1e-15)
    figures["cold"]["ratio"] = 1.2
    text = explain.report(figures, MACHINE)
    assert "1 row explained, handler:       5.500 ms" in text
    assert "max |handler - engine| 1.0e-15" in text
    assert "1 row <= 5 ms: NO" in text and "cold start within 10 %: NO" in text
