"""``python -m tools.batch run``: a local file scored through the real handler."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

from tests.batch.tables import churn_frame, write_csv
from tools.batch.__main__ import main


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    status = main(["run", "--model", "churn", "--version", "v2", *map(str, args)])
    return status, capsys.readouterr().err


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_in_csv_out_one_row_per_input_row_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "rows.csv"
    write_csv(source, 1_234)
    lines = source.read_text().splitlines()
    lines[7] = lines[7].replace(lines[7].split(",")[0], "x", 1)  # a bad tenure_months
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "scored.csv"
    status, err = run(capsys, "--input", source, "--output", out, "--workers", "1",
                      "--rows-per-invocation", "100")  # fmt: skip
    assert status == 0, err
    rows = read_csv(out)
    assert len(rows) == 1_234
    assert [int(r["position"]) for r in rows] == list(range(1_234))
    assert list(rows[0]) == ["position", "prediction", "probability", "error"]
    bad = rows[6]  # data row 6 is file line 7
    assert bad["prediction"] == "" and "tenure_months" in bad["error"] and '"x"' in bad["error"]
    assert all(r["error"] == "" for i, r in enumerate(rows) if i != 6)
    assert "1,234/1,234 rows" in err and "(1 refused)" in err


def test_workers_give_the_same_file_as_one_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "rows.csv"
    write_csv(source, 3_000)
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    assert run(capsys, "--input", source, "--output", one, "--workers", "1")[0] == 0
    assert run(capsys, "--input", source, "--output", two, "--workers", "2")[0] == 0
    assert one.read_bytes() == two.read_bytes()


def test_jsonl_and_parquet_keep_types_and_use_a_key_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = churn_frame(50)
    frame["customer"] = [f"c{i}" for i in range(50)]
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")))
    parquet = tmp_path / "rows.parquet"
    frame.to_parquet(parquet)
    out_jsonl, out_parquet = tmp_path / "scored.jsonl", tmp_path / "scored.parquet"
    for source, out in ((jsonl, out_jsonl), (parquet, out_parquet)):
        status, err = run(capsys, "--input", source, "--output", out, "--workers", "1",
                          "--key-column", "customer")  # fmt: skip
        assert status == 0, err
    from_jsonl = [json.loads(line) for line in out_jsonl.read_text().splitlines()]
    from_parquet = pq.read_table(out_parquet).to_pylist()
    assert [r["key"] for r in from_jsonl] == [f"c{i}" for i in range(50)]
    assert [r["key"] for r in from_parquet] == [f"c{i}" for i in range(50)]
    assert [r["probability"] for r in from_jsonl] == [r["probability"] for r in from_parquet]
    # Parquet in, JSON Lines out is allowed too.
    assert run(capsys, "--input", parquet, "--output", tmp_path / "p.jsonl", "--workers", "1",
               "--key-column", "customer")[0] == 0  # fmt: skip


def test_a_header_that_does_not_match_the_schema_is_refused_naming_the_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "rows.csv"
    frame = churn_frame(5).rename(columns={"num_products": "products"})
    frame.to_csv(source, index=False)
    status, err = run(capsys, "--input", source, "--output", tmp_path / "o.csv")
    assert status == 2
    assert "missing column(s) 'num_products'" in err and "unknown column(s) 'products'" in err
    assert not (tmp_path / "o.csv").exists()


def test_an_unknown_version_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "rows.csv"
    write_csv(source, 5)
    status = main(["run", "--version", "v99", "--input", str(source), "--output",
                   str(tmp_path / "o.csv")])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2 and "unknown version 'v99' of 'churn'" in err and "v1, v2" in err


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("rows.csv", None, "unreadable"),  # does not exist
        ("rows.parquet", b"not parquet", "not readable Parquet"),
        ("rows.jsonl", b'{"a": 1}\n{oops\n', "line 2: not JSON"),
        ("rows.txt", b"", "unknown format '.txt'"),
        ("rows.csv", b"", "empty file"),
    ],
)
def test_an_unreadable_input_is_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes | None,
    expected: str,
) -> None:
    source = tmp_path / name
    if content is not None:
        source.write_bytes(content)
    output = tmp_path / ("o.csv" if name.endswith(".csv") else "o.jsonl")
    status, err = run(capsys, "--input", source, "--output", output)
    assert status == 2 and expected in err, err


def test_a_csv_input_is_not_written_as_parquet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "rows.csv"
    write_csv(source, 5)
    status, err = run(capsys, "--input", source, "--output", tmp_path / "o.parquet")
    assert status == 2 and "written as csv" in err


def test_a_quoted_csv_is_read_by_the_csv_module_with_the_same_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Lines split at commas only when the file has no quotes; a quoted file gives the same."""
    plain, quoted = tmp_path / "plain.csv", tmp_path / "quoted.csv"
    write_csv(plain, 700)
    with plain.open(newline="") as source, quoted.open("w", newline="") as target:
        csv.writer(target, quoting=csv.QUOTE_ALL).writerows(csv.reader(source))
    assert quoted.read_text().startswith('"tenure_months"')
    outputs = tmp_path / "a.csv", tmp_path / "b.csv"
    for source_path, out in zip((plain, quoted), outputs, strict=True):
        assert run(capsys, "--input", source_path, "--output", out, "--workers", "1")[0] == 0
    assert outputs[0].read_bytes() == outputs[1].read_bytes()


def test_the_command_forks_its_workers_and_writes_the_same_file(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tools.batch.local import _start_method

    # This test process has threads: it must not fork; the command, single-threaded, does.
    assert _start_method() == "spawn"
    root = Path(__file__).resolve().parents[2]
    probe = ("import tools.batch.__main__, tools.batch.local as local, tools.serve, numpy; "
             "print(local._start_method())")  # fmt: skip
    method = subprocess.run(
        [sys.executable, "-c", probe], check=True, cwd=root, capture_output=True, text=True
    ).stdout.strip()
    assert method == ("fork" if sys.platform == "linux" else "spawn")
    source = tmp_path / "rows.csv"
    write_csv(source, 2_345)
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    for out, workers in ((one, "1"), (two, "2")):
        subprocess.run(
            [sys.executable, "-m", "tools.batch", "run", "--model", "churn", "--version", "v2",
             "--input", str(source), "--output", str(out), "--workers", workers,
             "--rows-per-invocation", "100"],
            check=True, cwd=root, capture_output=True,
        )  # fmt: skip
    assert one.read_bytes() == two.read_bytes()
    assert len(one.read_text().splitlines()) == 2_346


def test_csv_spans_cut_at_whole_item_batches_whatever_the_line_lengths(tmp_path: Path) -> None:
    from tools.batch import local

    source = tmp_path / "rows.csv"
    lines = ["a,b", *(f"{i},{'9' * (i * 7919 % 53)}" for i in range(1_037))]
    for trailing in ("\n", ""):
        source.write_text("\n".join(lines) + trailing)
        spans = local._csv_spans(source, 10)
        assert spans is not None
        header, tasks, rows = spans
        assert header == ["a", "b"] and rows == 1_037
        data = source.read_bytes()
        read = []
        for first, _, start, end, per_batch in tasks:
            assert first == len(read) and first % (per_batch * local.BATCHES_PER_SPAN) == 0
            read.extend(data[start:end].decode().split("\n"))
        assert read == lines[1:]


def test_plain_answers_are_rendered_as_the_csv_writer_writes_them() -> None:
    import io

    from tools.batch.files import render

    names = ["position", "prediction", "probability", "error"]
    plain = [{"position": 3, "prediction": 1, "probability": 0.1 + 0.2},
             {"position": 4, "prediction": 0, "probability": 1e-20}]  # fmt: skip
    keyed = [{"key": 'a "b", c', "prediction": 1, "probability": 0.5}]
    flagged = [{"position": 5, "prediction": True, "probability": 0.5}]
    refused = [*plain, {"position": 6, "error": {"code": "x", "message": "bad, row"}}]
    for rows, columns in ((plain, names), (keyed, ["key", *names[1:]]), (flagged, names),
                          (refused, names)):  # fmt: skip
        text = io.StringIO()
        csv.writer(text).writerows(
            [
                [row.get(n) if n != "error" else (row.get(n) or {}).get("message") for n in columns]
                for row in rows
            ]
        )
        assert render("csv", columns, rows) == text.getvalue()
    assert render("csv", names, plain) == "3,1,0.30000000000000004,\r\n4,0,1e-20,\r\n"
