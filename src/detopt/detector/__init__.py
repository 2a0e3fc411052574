"""Materials and calorimeter geometry."""

from detopt.detector.calorimeter import CalorimeterLayout, Layer, LayerSpec, SamplingCalorimeter
from detopt.detector.materials import Material, get_material, material_table

__all__ = ["CalorimeterLayout", "Layer", "LayerSpec", "Material", "SamplingCalorimeter", "get_material", "material_table"]
