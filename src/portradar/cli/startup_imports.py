"""Keep optional libraries that a command never uses from being imported behind its back.

Two libraries are imported at start-up by others although ``portradar ingest`` uses
neither:

* **pandas**: pyarrow imports it the first time any conversion happens, to tell
  whether the object handed to ``pa.array`` is a pandas object (``_PandasAPIShim``
  in ``pyarrow/pandas-shim.pxi``), and again from C++ on ``Array.to_numpy()``
  (``InitPandasStaticData``), even for plain numpy data;
* **scipy.linalg**: numba imports ``scipy.linalg.cython_blas`` when it first loads its
  array functions (``numba/np/arraymath.py`` checks whether BLAS is there for
  ``np.dot`` and friends; portradar's kernels use no linear algebra).

Measured on the project's 2-core machine: numpy + pyarrow + duckdb + numba import
in 0.66 s; pandas adds 0.5 s and scipy 0.12 s, a sixteenth of the 5-million-line
benchmark's whole budget, for every ingest of one line too.

:func:`modules_hidden` makes ``import pandas`` / ``import scipy`` fail with
``ModuleNotFoundError`` (what an environment without them gives) for the duration of
a block, so those optional probes find nothing.  After the block both import
normally: pyarrow's explicit pandas operations (``to_pandas``, ``from_pandas``)
retry the import with errors raised (the ``raise_`` path of ``_check_import``), and
its C++ side retries on every conversion until it succeeds.  The one lasting effect:
numba in this process then compiles no ``np.dot``/``np.linalg`` (portradar's kernels
have none).  Modules already imported are left alone.

>>> import sys
>>> with modules_hidden("pandas"):
...     blocked = "pandas" not in sys.modules
>>> blocked or "pandas" in sys.modules
True
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

#: What ``portradar ingest`` hides (see the module doc for why each); ``scipy.linalg``
#: is hidden for every command by :func:`portradar.cli.app.main` (numba itself imports
#: the light top-level ``scipy`` package only to check its version).
INGEST_HIDDEN = ("pandas", "scipy.linalg")


class _Hidden:
    """A meta path finder under which the named packages (and their submodules) are
    not found."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if any(name == n or name.startswith(n + ".") for n in self.names):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by portradar)",
                                      name=name)


@contextlib.contextmanager
def modules_hidden(*names: str) -> Iterator[None]:
    """Run a block in which the named packages (not yet imported) cannot be imported."""
    absent = tuple(n for n in names if n not in sys.modules)
    if not absent:
        yield
        return
    finder = _Hidden(absent)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)
