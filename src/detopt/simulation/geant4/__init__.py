"""Geant4 backend (optional extra ``detopt[geant4]``): `Geant4Simulator` and its data handling.

Importing this package never imports ``geant4_pybind`` (whose import checks the data sets):
Geant4 runs in a worker process per simulation (`worker`), started with the data variables set.
Without official data sets, `offline_data.generate` writes approximate substitute files.
"""

from detopt.simulation.geant4.data import Geant4Data, SubstituteDataWarning, locate_data
from detopt.simulation.geant4.simulator import Geant4Error, Geant4Simulator, geant4_available

__all__ = ["Geant4Data", "Geant4Error", "Geant4Simulator", "SubstituteDataWarning", "geant4_available", "locate_data"]
