"""Stands in for a compiled Geant4 application: reads a design (JSON), simulates, writes a ROOT file.

A real application would be called the same way (see config.yaml beside this file):

    simulate_calorimeter.py --design design.json --output events.root --seed 7 --events 200

It builds a two-layer sampling calorimeter (an absorber of the chosen material and thickness in
front of a scintillator) and shoots photons and pi+ of 1-20 GeV at it with detopt's built-in fast
simulator, then writes one TTree ``events`` with one entry per particle: the energy deposited in
the scintillator and in a fixed backing layer (GeV), the true energy (GeV) and a photon flag.
It fails like a real program would: a non-zero exit code and a message on standard error.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import uproot

from detopt.detector import SamplingCalorimeter
from detopt.simulation import FastShowerSimulator


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--design", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--events", type=int, required=True)
    args = parser.parse_args()
    with open(args.design, encoding="utf-8") as f:
        design = json.load(f)
    try:
        detector = SamplingCalorimeter.from_layers([
            (design["absorber_material"], design["absorber_thickness"], False),
            ("polystyrene", design["scintillator_thickness"], True),
            ("Fe", 20.0, False),
            ("polystyrene", 5.0, True),
        ], transverse_size_cm=50.0)
    except (KeyError, ValueError) as exc:
        print(f"simulate_calorimeter: bad design file {args.design}: {exc}", file=sys.stderr)
        return 3
    batch = FastShowerSimulator().simulate(detector, args.events, ("gamma", "pi+"), (1.0, 20.0), args.seed)
    deposits = np.asarray(batch.active_deposits, dtype=np.float64)
    branches = {
        "edep_scintillator": deposits[:, 0],
        "edep_backing": deposits[:, 1],
        "true_energy": np.asarray(batch.energy, dtype=np.float64),
        "is_photon": np.asarray(batch.particle_onehot(("gamma", "pi+")))[:, 0].astype(np.float64),
    }
    with uproot.recreate(args.output) as out:  # a TTree, as a Geant4 application writes it
        tree = out.mktree("events", {name: np.float64 for name in branches})
        tree.extend(branches)
    return 0


if __name__ == "__main__":
    sys.exit(main())
