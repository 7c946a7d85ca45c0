"""An Anthropic-compatible HTTP SIMULATOR for tests, benchmarks and local runs (not a model)."""

from devtools.sim.faults import Fault, SimConfig
from devtools.sim.server import BANNER, FAULT_HEADER, LATENCY_HEADER, SimulatorServer

__all__ = ["BANNER", "FAULT_HEADER", "LATENCY_HEADER", "Fault", "SimConfig", "SimulatorServer"]
