"""The simulator: Internet background radiation seen by N sensors over M days, with
injected campaigns whose truth is known (for demos, tests and detector evaluation)."""

from portradar.sim.campaigns import Campaign, parse_campaign
from portradar.sim.scenario import Scenario, Simulation, benchmark, demo, ms05, simulate

__all__ = ["Campaign", "Scenario", "Simulation", "benchmark", "demo", "ms05",
           "parse_campaign", "simulate"]
