"""Ready-made examples: the AIDO paper's sampling calorimeter and design files (layout + design space).

>>> from detopt.examples import aido_calorimeter
>>> [layer.material.name for layer in aido_calorimeter().layers]
['Pb', 'PbWO4', 'Pb', 'PbWO4', 'Pb', 'PbWO4']
"""

from detopt.examples.aido import aido_calorimeter, aido_design_space, aido_layout
from detopt.examples.design_file import (
    design_file_dict,
    load_design_file,
    parse_design_mapping,
    save_design_file,
)

__all__ = [
    "aido_calorimeter",
    "aido_design_space",
    "aido_layout",
    "design_file_dict",
    "load_design_file",
    "parse_design_mapping",
    "save_design_file",
]
