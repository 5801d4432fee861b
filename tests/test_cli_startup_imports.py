"""``portradar ingest`` does not pay for pandas or scipy.linalg, and hiding them is undone."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from portradar.cli.startup_imports import modules_hidden

LINE = ("2026-11-26T10:00:00Z fw kernel: DROP IN=eth0 OUT= SRC=198.51.100.7 DST=192.0.2.1 "
        "LEN=40 TTL=50 ID=1 PROTO=TCP SPT=1 DPT=445 WINDOW=1 RES=0x00 SYN URGP=0\n")


def test_ingest_command_imports_neither_pandas_nor_scipy_linalg(tmp_path: Path) -> None:
    log = tmp_path / "fw.log"
    log.write_text(LINE * 3)
    script = textwrap.dedent(f"""
        import sys
        sys.argv = ["portradar", "--db", {str(tmp_path / "t.duckdb")!r}, "ingest", "--quiet",
                    "--json", {str(log)!r}]
        from portradar.cli.app import main
        try:
            main()
        except SystemExit as exc:
            assert not exc.code, exc.code
        print(sorted(m for m in ("pandas", "scipy.linalg") if m in sys.modules),
              file=sys.stderr)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert '"events": 3' in done.stdout
    assert done.stderr.strip().splitlines()[-1] == "[]"


def test_hidden_modules_import_again_after_the_block() -> None:
    script = textwrap.dedent("""
        import sys
        from portradar.cli.startup_imports import modules_hidden
        import pyarrow as pa, numpy as np
        with modules_hidden("pandas"):
            try:
                import pandas
            except ModuleNotFoundError:
                hidden = True
            pa.array(np.arange(3))  # pyarrow's own probe finds no pandas here
            assert "pandas" not in sys.modules
        import pandas as pd
        table = pa.Table.from_pandas(pd.DataFrame({"x": [1, 2]}))
        assert table.to_pandas()["x"].tolist() == [1, 2]
        print(hidden)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def test_already_imported_modules_are_left_alone() -> None:
    import json

    with modules_hidden("json"):
        import json as again
    assert again is json
    assert not any(type(f).__name__ == "_Hidden" for f in sys.meta_path)
