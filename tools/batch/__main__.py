"""python -m tools.batch run --model churn --version v2 --input rows.csv --output scored.csv
python -m tools.batch start --env dev --input s3://BUCKET/rows.csv --output s3://BUCKET/scored/
python -m tools.batch status|wait --env dev --execution ARN
python -m tools.batch fetch --env dev --execution ARN --to scored.csv

``run`` scores a local CSV (header row), JSON Lines or Parquet file through the real
handler, in the item batches the state machine sends, in worker processes (default: every
core), and writes one row per input row (its position or key, and the answer or the
error) in the input's format. ``start`` runs the deployed batch-scoring state machine on
an S3 object or prefix with one pinned function version; ``status`` and ``wait`` follow its
map run; ``fetch`` assembles the results it wrote to S3 into one file.

Exit status: 0 done, 2 refused (the message names the bad value: an unreadable input, a
header that does not match the schema, an unknown version), 3 the run failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Before numpy is imported: one worker process per core scores, with no BLAS threads of
# its own; and the command's process stays single-threaded, so that its workers fork
# (tools.batch.local._start_method) rather than start fresh interpreters.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from tools.batch import DEFAULT_ROWS_PER_INVOCATION, EXIT_REFUSED, RefusedError


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m tools.batch",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = top.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="score a local file through the real handler")
    run.add_argument("--model", default="churn")
    run.add_argument("--version", required=True, help="model version, e.g. v2")
    run.add_argument("--input", required=True, type=Path, help=".csv, .jsonl or .parquet")
    run.add_argument("--output", required=True, type=Path, help="same format (parquet: or .jsonl)")
    run.add_argument(
        "--workers", type=_positive, default=os.cpu_count() or 1, help="default: every core"
    )
    run.add_argument(
        "--rows-per-invocation",
        type=_positive,
        default=DEFAULT_ROWS_PER_INVOCATION,
        help=f"rows per handler invocation, as the state machine batches (default "
        f"{DEFAULT_ROWS_PER_INVOCATION})",
    )
    run.add_argument("--key-column", help="a column that identifies each row (not a feature)")
    for name in ("start", "status", "wait", "fetch"):
        sub = commands.add_parser(name, help=f"{name} a batch-scoring run on AWS")
        sub.add_argument("--env", required=True)
        sub.add_argument("--model", help="default: the environment's model_name")
        sub.add_argument("--region", help="default: the AWS configuration's")
        if name == "start":
            sub.add_argument(
                "--input", required=True, help="s3://BUCKET/KEY or s3://BUCKET/PREFIX/"
            )
            sub.add_argument("--output", required=True, help="s3://BUCKET/PREFIX/ for the results")
            sub.add_argument(
                "--version", help="function version number (default: production's stable side)"
            )
            sub.add_argument("--format", choices=("csv", "jsonl", "parquet"))
            sub.add_argument("--key-column")
        else:
            sub.add_argument("--execution", required=True, help="the execution ARN start printed")
        if name == "wait":
            sub.add_argument("--poll-seconds", type=_positive, default=10)
        if name == "fetch":
            sub.add_argument("--to", required=True, type=Path, help=".csv, .jsonl or .parquet")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "run":
            from tools.batch.local import run

            done = run(
                args.model,
                args.version,
                args.input,
                args.output,
                workers=args.workers,
                rows_per_invocation=args.rows_per_invocation,
                key_column=args.key_column,
            )
            rate = done["rows"] / done["seconds"] if done["seconds"] else 0.0
            print(
                f"scored {done['rows']:,} rows ({done['refused']:,} refused) with {args.model} "
                f"{args.version} in {done['seconds']:.2f} s ({rate:,.0f} rows/s, "
                f"{args.workers} workers): {args.output}",
                file=sys.stderr,
            )
            return 0
        from tools.batch import cloud

        return cloud.main(args)
    except RefusedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
