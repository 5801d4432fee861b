"""Event archives outside the store: partitioned Parquet for data lakes and scale-out."""

from portradar.archive.parquet_archive import (
    ARCHIVE_VERSION,
    FILE_SCHEMA,
    export_store,
    import_archive,
    write_events,
)

__all__ = ["ARCHIVE_VERSION", "FILE_SCHEMA", "export_store", "import_archive", "write_events"]
