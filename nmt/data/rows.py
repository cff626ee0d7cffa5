"""Rows of a split's id columns, read from the memory map without copying it.

pyarrow's `take` on a table of many record batches first concatenates each
column's chunks: at millions of pairs every batch of training would copy
gigabytes. Here each chunk's offsets and values are numpy views of the mapped
file, and a row is a slice of them, so reading a batch touches only its rows.
"""

from __future__ import annotations

import numpy as np


class IdRows:
    """The `src_ids` and `tgt_ids` rows of a split (a datasets.Dataset)."""

    def __init__(self, split):
        table = split.data.table
        self._columns = {}
        for name in ("src_ids", "tgt_ids"):
            chunks = table.column(name).chunks
            starts = np.cumsum([0] + [len(c) for c in chunks])
            parts = [(c.offsets.to_numpy(), c.values.to_numpy()) for c in chunks]
            self._columns[name] = (starts, parts)

    def _slices(self, idx: np.ndarray, name: str):
        starts, parts = self._columns[name]
        chunk = np.searchsorted(starts, idx, side="right") - 1
        for c, j in zip(chunk.tolist(), (idx - starts[chunk]).tolist()):
            offsets, values = parts[c]
            yield values[offsets[j] : offsets[j + 1]]

    def lists(self, idx: np.ndarray, name: str) -> list[list[int]]:
        """Rows idx of one column as lists of ids."""
        return [row.tolist() for row in self._slices(np.asarray(idx), name)]

    def flat(self, idx: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Rows idx of one column as (all their ids as int64, each row's length)."""
        rows = list(self._slices(np.asarray(idx), name))
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        lengths = np.fromiter(map(len, rows), np.int64, len(rows))
        return np.concatenate(rows).astype(np.int64), lengths
