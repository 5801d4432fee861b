#!/usr/bin/env bash
# Set up, then run portradar's main job on bundled examples:
#  1. two weeks of one firewall's iptables log (examples/firewall.log.gz) with a rise of
#     probes on TCP 445 at the end and one loud vertical scanner;
#  2. thirty days of five simulated sensors with a worm-like campaign on TCP 445, so
#     that the spike detector has a baseline to measure the rise against.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== 1. a firewall log: ingest, top ports, port 445, top talkers, scanners"
DB=example.duckdb
rm -f "$DB" "$DB.wal"
portradar --db "$DB" ingest --tz UTC --year 2024 examples/firewall.log.gz
portradar --db "$DB" ports
portradar --db "$DB" port 445 --last 14
portradar --db "$DB" sources -n 5
portradar --db "$DB" scanners -n 5

echo "== 2. five sensors, thirty days, a campaign on 445: spikes, assessment, rules"
DB=demo.duckdb
rm -f "$DB" "$DB.wal"
portradar --db "$DB" simulate --days 30 --sensors 5 --seed 1 --campaign 445
portradar --db "$DB" spikes
portradar --db "$DB" port 445 --last 14
portradar --db "$DB" assess 445
portradar --db "$DB" rules 445 --for nftables
