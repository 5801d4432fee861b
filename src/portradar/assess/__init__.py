"""Assessment: a spike joined with the knowledge base and the user's exposure into a level
(green / yellow / orange / red) with its reasons, and the actions written out (block rules,
IPS rules, the patch list)."""

from portradar.assess.spike_evidence import SpikeEvidence, from_spike, port_spikes
from portradar.assess.threat_level import (
    LEVELS,
    Assessment,
    AssessParams,
    assess_port,
    decide,
)

__all__ = ["LEVELS", "AssessParams", "Assessment", "SpikeEvidence", "assess_port", "decide",
           "from_spike", "port_spikes"]
