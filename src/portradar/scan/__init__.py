"""Scanner detection: who is probing us, how, and with what.

One module per component (see ``docs/scanners.md``): :mod:`~portradar.scan.trw` (the
Threshold Random Walk), :mod:`~portradar.scan.fanout`, :mod:`~portradar.scan.slow_scan`,
:mod:`~portradar.scan.backscatter`, :mod:`~portradar.scan.campaigns`, the classifiers
:mod:`~portradar.scan.scan_shape`, :mod:`~portradar.scan.scan_type` and
:mod:`~portradar.scan.fingerprint`, the policies :mod:`~portradar.scan.benign` and
:mod:`~portradar.scan.loopback`, and :mod:`~portradar.scan.detect`, which runs them all
over the store.
"""

from portradar.scan.backscatter import Backscatter
from portradar.scan.fanout import FanOut
from portradar.scan.probes import Probes
from portradar.scan.slow_scan import SlowScan
from portradar.scan.trw import ThresholdRandomWalk

__all__ = ["Backscatter", "FanOut", "Probes", "SlowScan", "ThresholdRandomWalk"]
