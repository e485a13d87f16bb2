"""Release mechanism 1: a classifier of the dataset's target trained with DP-SGD."""

from pulsesynth.classifier.model import DPClassifier, same_recipe

__all__ = ["DPClassifier", "same_recipe"]
