"""Scanner detection: who is probing us, how, and with what.

One module per component (see ``docs/scanners.md``): :mod:`~portradar.scan.trw` (the
Threshold Random Walk), :mod:`~portradar.scan.fanout`, :mod:`~portradar.scan.slow_scan`,
:mod:`~portradar.scan.backscatter`, :mod:`~portradar.scan.campaigns`, the classifiers
:mod:`~portradar.scan.scan_shape`, :mod:`~portradar.scan.scan_type` and
:mod:`~portradar.scan.fingerprint`, the policies :mod:`~portradar.scan.benign` and
:mod:`~portradar.scan.loopback`, and :mod:`~portradar.scan.detect`, which runs them all
over the store.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from portradar.scan.backscatter import Backscatter
    from portradar.scan.fanout import FanOut
    from portradar.scan.probes import Probes
    from portradar.scan.slow_scan import SlowScan
    from portradar.scan.trw import ThresholdRandomWalk

__all__ = ["Backscatter", "FanOut", "Probes", "SlowScan", "ThresholdRandomWalk"]

#: Where each public name lives.  Imported on first use (PEP 562), so that commands
#: which only read the ``scanners`` table (or never touch it, like ``ingest``) do not
#: pay for loading the detectors' compiled kernels at start-up.
_HOMES = {"Backscatter": "backscatter", "FanOut": "fanout", "Probes": "probes",
          "SlowScan": "slow_scan", "ThresholdRandomWalk": "trw"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"portradar.scan.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'portradar.scan' has no attribute {name!r}")
