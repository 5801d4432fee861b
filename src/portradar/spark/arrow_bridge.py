"""Arrow tables across the Spark boundary: unsigned integers have no Spark type.

Spark's Arrow types are signed, so a table leaving a detector inside an executor is
made "Spark-safe" (:func:`spark_safe`): ``uint64`` columns become ``int64`` with the
same bits (addresses and hashes keep every bit, a zero-copy view), narrower unsigned
integers widen to the next signed type, dictionaries become strings.  On the way back
into the DuckDB store, :func:`restore` views the ``int64`` columns the target table
declares ``UBIGINT`` as ``uint64`` again.

>>> import pyarrow as pa
>>> t = pa.table({"a": pa.array([2**64 - 1], pa.uint64()), "b": pa.array([7], pa.uint8())})
>>> safe = spark_safe(t)
>>> safe.schema.types, safe.column("a").to_pylist()
([DataType(int64), DataType(int16)], [-1])
>>> restore(safe, {"a": pa.uint64()}).column("a").to_pylist()
[18446744073709551615]
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_WIDER = {pa.uint8(): pa.int16(), pa.uint16(): pa.int32(), pa.uint32(): pa.int64()}


def safe_type(t: pa.DataType) -> pa.DataType:
    """The Spark-safe Arrow type for ``t``."""
    if t == pa.uint64():
        return pa.int64()
    if t in _WIDER:
        return _WIDER[t]
    if pa.types.is_dictionary(t):
        return safe_type(t.value_type)
    if pa.types.is_list(t):
        return pa.list_(safe_type(t.value_type))
    return t


def safe_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, safe_type(f.type)) for f in schema])


def as_signed(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``uint64`` to ``int64`` with the same bits."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.view(pa.int64())


def as_unsigned(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``int64`` to ``uint64`` with the same bits."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.view(pa.uint64())


def unsigned_numpy(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A signed-bits ``int64`` column as the ``uint64`` numpy array detectors expect."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return np.asarray(arr.to_numpy(zero_copy_only=False)).view(np.uint64)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` in ``schema``'s column order and Spark-safe types; missing columns null."""
    arrays = []
    n = table.num_rows
    for f in schema:
        if f.name not in table.column_names:
            arrays.append(pa.nulls(n, f.type))
            continue
        col = table.column(f.name)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if col.type == pa.uint64() and f.type == pa.int64():
            col = as_signed(col)
        elif col.type != f.type:
            col = col.cast(f.type)
        arrays.append(col)
    return pa.Table.from_arrays(arrays, schema=schema)


def spark_safe(table: pa.Table) -> pa.Table:
    """``table`` with every column in its Spark-safe type."""
    return conform(table, safe_schema(table.schema))


def restore(table: pa.Table, unsigned: dict[str, pa.DataType]) -> pa.Table:
    """View the named ``int64`` columns as ``uint64`` again (others unchanged)."""
    arrays = []
    for name in table.column_names:
        col = table.column(name)
        if unsigned.get(name) == pa.uint64() and col.type == pa.int64():
            col = as_unsigned(col)
        arrays.append(col)
    return pa.Table.from_arrays(arrays, names=table.column_names)
