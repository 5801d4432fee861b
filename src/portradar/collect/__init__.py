"""Many sensors, one store: the sensor agent and the central collector.

``agent`` follows local logs, batches, signs and submits; ``collector`` verifies,
validates and stores each batch exactly once.  See ``docs/collect.md``.
"""
