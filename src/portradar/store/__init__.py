"""The embedded DuckDB store and its ingest ledger."""

from portradar.store.duckdb_store import DEFAULT_DB, Store

__all__ = ["DEFAULT_DB", "Store"]
