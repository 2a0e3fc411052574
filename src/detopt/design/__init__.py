"""Design space: the continuous and discrete parameters of a detector, their encoding and sampling.

>>> from detopt.design import ContinuousParameter, DiscreteParameter, DesignSpace
>>> space = DesignSpace(parameters=[
...     ContinuousParameter(name="absorber_thickness", value=10.0, bounds=(0.01, 200.0), sigma=2.5, unit="cm"),
...     DiscreteParameter(name="absorber_material", categories=["Pb", "Fe"]),
... ])
>>> space.encoding_names
('absorber_thickness', 'absorber_material=Pb', 'absorber_material=Fe')
"""

from detopt.design.parameters import ContinuousParameter, DiscreteParameter
from detopt.design.sampling import sample_truncated_normal, validate_covariance
from detopt.design.space import DESIGN_FORMAT_VERSION, Design, DesignSpace, Parameter

__all__ = [
    "DESIGN_FORMAT_VERSION",
    "ContinuousParameter",
    "Design",
    "DesignSpace",
    "DiscreteParameter",
    "Parameter",
    "sample_truncated_normal",
    "validate_covariance",
]
