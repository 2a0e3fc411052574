"""Chunked simulation for the command line: a progress bar that does not change the events.

``detopt simulate`` splits the run into chunks of :data:`CHUNK_EVENTS` events. Chunk k is
simulated with the integer seed ``SeedSequence(seed).spawn(n)[k].generate_state(1, uint64)[0]``;
the k-th spawned child does not depend on n, so the events depend only on ``seed``, the
chunk size and the number of events -- never on whether or how progress is shown. The
user's ``seed`` and this scheme are written into the file metadata.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from detopt.detector import SamplingCalorimeter
from detopt.simulation import EventBatch, Simulator

__all__ = ["CHUNK_EVENTS", "SEEDING", "chunk_seeds", "simulate_in_chunks"]

CHUNK_EVENTS = 10_000
"""Events per chunk (one progress-bar step)."""

SEEDING = "chunk k of chunk_events uses seed numpy SeedSequence(seed).spawn(n_chunks)[k].generate_state(1, uint64)[0]"
"""How chunk seeds derive from the run seed (stored in the file metadata)."""


def chunk_seeds(seed: int, n_chunks: int) -> list[int]:
    """The integer seed of each chunk, independent streams derived from ``seed`` (see the module docstring)."""
    children = np.random.SeedSequence(seed).spawn(n_chunks)
    return [int(child.generate_state(1, dtype=np.uint64)[0]) for child in children]


def simulate_in_chunks(
    simulator: Simulator,
    detector: SamplingCalorimeter,
    n_events: int,
    particles: Sequence[str],
    energy_range: tuple[float, float],
    seed: int,
    *,
    chunk_events: int = CHUNK_EVENTS,
    on_chunk: Callable[[int], None] | None = None,
) -> EventBatch:
    """Simulate ``n_events`` in chunks; ``on_chunk(m)`` is called after each chunk of ``m`` events.

    The metadata of the result is the simulator's, with ``seed`` set to the run seed and
    ``chunk_events`` and ``seeding`` added, so that the file says how to redo it.
    """
    n_chunks = max(1, math.ceil(n_events / chunk_events))
    batches = []
    for k, chunk_seed in enumerate(chunk_seeds(seed, n_chunks)):
        m = min(chunk_events, n_events - k * chunk_events)
        batches.append(simulator.simulate(detector, m, particles, energy_range, chunk_seed))
        if on_chunk is not None:
            on_chunk(m)
    batch = batches[0] if len(batches) == 1 else EventBatch.concatenate(batches)
    metadata = {**batch.metadata, "seed": seed, "chunk_events": chunk_events, "seeding": SEEDING}
    return replace(batch, metadata=metadata)
