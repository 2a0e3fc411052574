"""Dump tables built into Geant4 itself (no data sets needed) as JSON: run as a separate process.

    python -m detopt.simulation.geant4._g4_tables OUT.json

For Z = 1..98: the mean atomic mass (amu) of the NIST element and its Sandia photo-absorption
fit per atom, a list of intervals ``[E_low (MeV), a1, a2, a3, a4]`` with
sigma(E) = a1/E + a2/E^2 + a3/E^3 + a4/E^4 in barn (E in MeV). The parent process sets the
``G4*DATA`` variables first (importing geant4_pybind checks them), which is why this is not a function.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

#: Highest Z with a NIST elemental material in Geant4 (G4_Cf).
MAX_Z = 98


def main(out: Path) -> None:
    import geant4_pybind as g4

    nist = g4.G4NistManager.Instance()
    nist.SetVerbose(0)
    tables: dict[str, object] = {}
    for z in range(1, MAX_Z + 1):
        material = nist.FindOrBuildSimpleMaterial(z)
        sandia = material.GetSandiaTable()
        n_atoms = material.GetTotNbOfAtomsPerVolume()
        rows = []
        for i in range(sandia.GetMatNbOfIntervals()):
            e_low = sandia.GetSandiaCofForMaterial(i, 0) / g4.MeV
            coeffs = [
                sandia.GetSandiaCofForMaterial(i, k) / n_atoms / g4.barn * (1.0 / g4.MeV) ** k for k in range(1, 5)
            ]
            rows.append([e_low, *coeffs])
        tables[str(z)] = {"a_amu": nist.GetAtomicMassAmu(z), "sandia": rows}
    out.write_text(json.dumps(tables), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
