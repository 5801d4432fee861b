"""Live watch: follow files, listen for syslog and NetFlow, store, detect, alert.

See ``docs/watch.md`` and :mod:`portradar.watch.service`.
"""
