"""Simulation: the `Simulator` protocol, `EventBatch`, and the built-in `FastShowerSimulator`."""

from detopt.simulation.events import EventBatch
from detopt.simulation.fastsim import FastShowerSimulator
from detopt.simulation.particles import PARTICLES, parse_particles, particle_code
from detopt.simulation.protocol import Simulator
from detopt.simulation.voxels import VoxelGrid

__all__ = ["PARTICLES", "EventBatch", "FastShowerSimulator", "Simulator", "VoxelGrid", "parse_particles", "particle_code"]
