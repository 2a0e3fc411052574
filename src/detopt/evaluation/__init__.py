"""Evaluation of shower surrogates (DESIGN.md section 4): observables of voxelized showers
(`observables`), per-condition errors and separation power (`metrics`), the classifier AUC
(`classifier`), figures with ratio panels (`plots`) and the finite-difference side of the
gradient check (`gradients`). Importing the package loads neither torch nor matplotlib."""

from detopt.evaluation.classifier import ClassifierResult, classifier_auc, roc_auc
from detopt.evaluation.gradients import (
    FiniteDifferenceGradient, GradientComparison, compare_gradients, finite_difference_utility_gradient,
    make_utility,
)
from detopt.evaluation.metrics import (
    ConditionErrors, compare_observables, relative_errors_per_condition, separation_power, summary_numbers,
)
from detopt.evaluation.observables import OBSERVABLES, dataset_observables, high_level_observables

__all__ = [
    "OBSERVABLES", "ClassifierResult", "ConditionErrors", "FiniteDifferenceGradient", "GradientComparison",
    "classifier_auc", "compare_gradients", "compare_observables", "dataset_observables",
    "finite_difference_utility_gradient", "high_level_observables", "make_utility", "relative_errors_per_condition",
    "roc_auc", "separation_power", "summary_numbers",
]
