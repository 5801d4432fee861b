#!/usr/bin/env bash
# Set up, then run portradar's main job on the bundled example: two weeks of one
# firewall's log with a rise of probes on TCP 445 at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
DB=${PORTRADAR_DB:-example.duckdb}
rm -f "$DB" "$DB.wal"
portradar --db "$DB" ingest --tz UTC --year 2024 examples/firewall.log.gz
portradar --db "$DB" ports
portradar --db "$DB" ports --by sources
portradar --db "$DB" port 445 --last 14
portradar --db "$DB" sources -n 5
