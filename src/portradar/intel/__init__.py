"""Intel: the port → service registry, the vulnerability knowledge base (bundled history,
CISA KEV, NVD, Microsoft patch data, FIRST EPSS, CVE → port maps), assets and exposure.

Knowledge lives in the store's ``intel_*`` tables with provenance on every row
(:mod:`portradar.intel.vulnerabilities`); importers register in :mod:`.feeds`.
"""

from portradar.intel.exposure import PortExposure, port_exposure
from portradar.intel.port_registry import PortRegistry
from portradar.intel.vulnerabilities import KnowledgeBase

__all__ = ["KnowledgeBase", "PortExposure", "PortRegistry", "port_exposure"]
