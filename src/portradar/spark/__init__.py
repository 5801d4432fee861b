"""The same computations on Apache Spark, over the Parquet archive (docs/scale.md).

Nothing here is imported by the embedded pipeline; PySpark is imported only when a job
runs, so portradar works without it.
"""
