"""Simulation: the `Simulator` protocol, `EventBatch`, and the built-in `FastShowerSimulator`."""

from detopt.simulation.events import EventBatch
from detopt.simulation.fastsim import FastShowerSimulator
from detopt.simulation.particles import PARTICLES, parse_particles, particle_code
from detopt.simulation.protocol import Simulator
from detopt.simulation.shower_dataset import (
    GEOMETRIES, GEOMETRY_A, GEOMETRY_B, SHOWER_CONDITIONS, ShowerCondition, ShowerDataset, ShowerGeometry,
    generate_shower_dataset,
)
from detopt.simulation.voxels import VoxelGrid

__all__ = [
    "GEOMETRIES", "GEOMETRY_A", "GEOMETRY_B", "SHOWER_CONDITIONS", "ShowerCondition", "ShowerDataset", "ShowerGeometry",
    "generate_shower_dataset",
    "PARTICLES", "EventBatch", "FastShowerSimulator", "Simulator", "VoxelGrid", "parse_particles", "particle_code"]
