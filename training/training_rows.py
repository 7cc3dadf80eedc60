"""Which rows a version trained on: a Bloom filter of its training rows, in its manifest.

A version's quality gate compares it with the model's previous version on its holdout. A
retrain on more data (the old rows plus new ones) has a holdout that is partly the
previous version's training set, on which that version looks better than it is. The
manifest's ``training_rows`` lets the next version drop those rows: only rows neither
version trained on are compared.

Each row is hashed (SHA-256 of a canonical encoding of its float64 features and its
label) and set in a Bloom filter sized for ``FALSE_POSITIVE_RATE``. A false positive
drops a fresh row from the comparison, never keeps a trained one: the error is on the
safe side, and costs 1 % of the fresh rows. A Bloom filter at 1 % holds 9.59 bits a row:
100,000 rows take 117 KiB, 156 KiB in the manifest's base64; 20,000 rows 31 KiB.
Row hashes truncated to 64 bits would take 8 bytes a row (1.07 MB of base64 per 100,000).
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

MANIFEST_KEY = "training_rows"
FORMAT = "bloom-sha256/1"
FALSE_POSITIVE_RATE = 0.01
NO_FINGERPRINT = "no fingerprint: cannot tell which rows the previous version trained on"


def row_digests(X: NDArray[np.float64], y: Any) -> list[bytes]:
    """SHA-256 of each row: its features as big-endian float64 (``-0.0`` as ``0.0``), then
    its label: ``s`` and UTF-8 for a string, ``n`` and float64 for a number (1 and 1.0
    are one label, as everywhere else; ``"1"`` another)."""
    features = np.ascontiguousarray((np.asarray(X, dtype=np.float64) + 0.0).astype(">f8"))
    labels = np.asarray(y).tolist()
    if features.ndim != 2 or len(labels) != features.shape[0]:
        raise ValueError(f"rows {features.shape} and {len(labels)} labels do not match")
    return [
        hashlib.sha256(row.tobytes() + _label_bytes(label)).digest()
        for row, label in zip(features, labels, strict=True)
    ]


def _label_bytes(label: Any) -> bytes:
    if isinstance(label, str):
        return b"s" + label.encode()
    return b"n" + struct.pack(">d", float(label) + 0.0)


@dataclass(frozen=True)
class RowFilter:
    """A Bloom filter of rows: ``bits`` bits, ``hashes`` positions per row."""

    rows: int
    bits: int
    hashes: int
    filter: bytes

    @classmethod
    def of(cls, X: NDArray[np.float64], y: Any) -> RowFilter:
        digests = row_digests(X, y)
        rows = max(len(digests), 1)
        bits = math.ceil(-rows * math.log(FALSE_POSITIVE_RATE) / math.log(2) ** 2)
        hashes = max(1, round(bits / rows * math.log(2)))
        array = np.zeros((bits + 7) // 8, dtype=np.uint8)
        positions = _positions(digests, bits, hashes).reshape(-1)
        np.bitwise_or.at(array, positions // 8, (1 << (positions % 8)).astype(np.uint8))
        return cls(len(digests), bits, hashes, array.tobytes())

    def contains(self, X: NDArray[np.float64], y: Any) -> NDArray[np.bool_]:
        """Per row: whether it may be one of the filter's (a false positive at the rate
        the filter was sized for), or is certainly not."""
        digests = row_digests(X, y)
        if not digests:
            return np.zeros(0, dtype=bool)
        array = np.frombuffer(self.filter, dtype=np.uint8)
        positions = _positions(digests, self.bits, self.hashes)
        set_bits = (array[positions // 8] >> (positions % 8).astype(np.uint8)) & 1
        return np.asarray(set_bits.all(axis=1), dtype=bool)

    def record(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "rows": self.rows,
            "bits": self.bits,
            "hashes": self.hashes,
            "false_positive_rate": FALSE_POSITIVE_RATE,
            "filter": base64.b64encode(self.filter).decode(),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any], where: str) -> RowFilter:
        """The manifest's ``training_rows``; ``ValueError`` naming ``where`` and the field."""
        if not isinstance(record, Mapping) or record.get("format") != FORMAT:
            found = record.get("format") if isinstance(record, Mapping) else record
            raise ValueError(f"{where}: {MANIFEST_KEY}.format is {found!r}, expected {FORMAT!r}")
        try:
            bits, hashes, rows = int(record["bits"]), int(record["hashes"]), int(record["rows"])
            data = base64.b64decode(record["filter"], validate=True)
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"{where}: {MANIFEST_KEY} needs rows, bits, hashes and a base64 filter"
            ) from None
        if bits < 1 or hashes < 1 or len(data) != (bits + 7) // 8:
            raise ValueError(
                f"{where}: {MANIFEST_KEY} has {len(data)} bytes for {bits} bits and {hashes} hashes"
            )
        return cls(rows, bits, hashes, data)


def _positions(digests: list[bytes], bits: int, hashes: int) -> NDArray[np.int64]:
    """(rows, hashes) bit positions by double hashing: h1 + i * h2 mod bits, h1 and h2
    the first two 64-bit words of the row's SHA-256."""
    words = np.frombuffer(b"".join(d[:16] for d in digests), dtype=">u8").reshape(-1, 2)
    h1 = (words[:, 0] % np.uint64(bits)).astype(np.int64)
    h2 = (words[:, 1] % np.uint64(bits)).astype(np.int64)
    steps = np.arange(hashes, dtype=np.int64)
    return (h1[:, None] + steps[None, :] * h2[:, None]) % bits
