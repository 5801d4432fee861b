"""The ``portradar`` command."""
