"""numpy <-> Arrow for the detection's columns, through Arrow's buffers.

``pa.array(ndarray)``, ``pa.array(list)`` and ``Array.to_numpy()`` ask pyarrow's pandas
shim whether their argument is a pandas object, and the first such question imports
pandas (0.3 s, holding the GIL, measured on this machine).  Detection needs none of
pandas: its columns are plain fixed-width numbers, booleans, timestamps and a few
strings, which these helpers move as buffers (no copy for numbers; booleans and null
masks are packed to bits as Arrow stores them).  The arrays are the ones ``pa.array``
gives, so the verdict tables are unchanged.

>>> to_arrow(np.array([3, 4], np.int64), mask=np.array([False, True])).to_pylist()
[3, None]
>>> strings(["a", None, "bc"]).to_pylist()
['a', None, 'bc']
>>> to_numpy(to_arrow(np.array([1.5, 2.0]))).tolist()
[1.5, 2.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

_TYPES = {np.dtype(t): a for t, a in (
    (np.int8, pa.int8()), (np.int16, pa.int16()), (np.int32, pa.int32()),
    (np.int64, pa.int64()), (np.uint8, pa.uint8()), (np.uint16, pa.uint16()),
    (np.uint32, pa.uint32()), (np.uint64, pa.uint64()), (np.float32, pa.float32()),
    (np.float64, pa.float64()), (np.bool_, pa.bool_()))}
_DTYPES = {a: t for t, a in _TYPES.items()}


def to_arrow(values: Any, mask: Any = None, type: pa.DataType | None = None) -> pa.Array:
    """The numpy array ``values`` as an Arrow array (null where ``mask`` is True), of
    ``type`` when given (a type of the same width, e.g. a timestamp for int64)."""
    arr = np.ascontiguousarray(values)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    kind = type if type is not None else _TYPES[arr.dtype]
    n = int(arr.shape[0])
    validity = None
    nulls = 0
    if mask is not None:
        m = np.asarray(mask, np.bool_).reshape(-1)
        nulls = int(np.count_nonzero(m))
        if nulls:
            validity = pa.py_buffer(np.packbits(~m, bitorder="little"))
    if arr.dtype == np.bool_:
        data = pa.py_buffer(np.packbits(arr, bitorder="little"))
    else:
        data = pa.py_buffer(arr)
    return pa.Array.from_buffers(kind, n, [validity, data], null_count=nulls)


def strings(texts: Sequence[str | None]) -> pa.Array:
    """A list of texts (``None`` for null) as an Arrow string array."""
    raw = [b"" if t is None else t.encode() for t in texts]
    offsets = np.zeros(len(raw) + 1, np.int32)
    np.cumsum([len(b) for b in raw], out=offsets[1:])
    nulls = [t is None for t in texts]
    validity = pa.py_buffer(np.packbits(~np.array(nulls, np.bool_), bitorder="little")) \
        if any(nulls) else None
    return pa.Array.from_buffers(pa.string(), len(raw),
                                 [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(raw))],
                                 null_count=sum(nulls))


def to_numpy(arr: pa.Array) -> np.ndarray:
    """A fixed-width Arrow array without nulls as numpy (a view of its buffer, read-only;
    a timestamp as its int64)."""
    if arr.null_count:
        raise ValueError("to_numpy: the array has nulls")
    kind = arr.type
    if pa.types.is_timestamp(kind):
        kind = pa.int64()
    dtype = _DTYPES[kind]
    if dtype == np.bool_:
        bits = np.frombuffer(arr.buffers()[1], np.uint8)
        return np.unpackbits(bits, bitorder="little")[arr.offset:arr.offset + len(arr)] \
            .astype(np.bool_)
    return np.frombuffer(arr.buffers()[1], dtype, count=len(arr),
                         offset=arr.offset * dtype.itemsize)

