"""DP tabular VAE synthesizer: model, DP-SGD training and the sklearn-style front end."""

from pulsesynth.synth.model import NegativeELBO, TabularVAE
from pulsesynth.synth.synthesizer import DPVAESynthesizer
from pulsesynth.synth.train import TrainConfig, TrainResult, expected_batch_size, train_vae

__all__ = [
    "DPVAESynthesizer",
    "NegativeELBO",
    "TabularVAE",
    "TrainConfig",
    "TrainResult",
    "expected_batch_size",
    "train_vae",
]
