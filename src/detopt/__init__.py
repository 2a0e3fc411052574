"""detopt: end-to-end optimization of particle-detector designs with diffusion-model surrogates.

Sub-packages follow the data flow: ``design`` -> ``detector`` -> ``simulation`` ->
``reconstruction`` -> ``surrogate`` -> ``optimize``; ``execution`` decides where
simulations run and ``evaluation`` measures fidelity. Nothing heavy is imported here.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
