"""Port spikes: a real rise on a port told from its background noise, and the baselines
it is scored against (DShield's trend score, GreyNoise's rule, an EWMA z-score).

Every detector reads an :class:`~portradar.spikes.activity_matrix.ActivityMatrix`
(series × buckets) and is listed in :data:`DETECTORS` under its module name.
"""

from portradar.spikes.activity_matrix import ActivityMatrix, from_store
from portradar.spikes.spike_detector import Spike, SpikeDetector, SpikeParams, detect_spikes

__all__ = ["ActivityMatrix", "Spike", "SpikeDetector", "SpikeParams", "detect_spikes",
           "from_store"]
