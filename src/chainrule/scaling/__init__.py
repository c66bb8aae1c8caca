"""Scaling laws: sweeps over model size, data and compute, power-law fits, predictions.

``sweep`` trains a grid of models with the one training loop (:mod:`.sweep`, :mod:`.grid`,
planned from a time budget by :mod:`.plan`); ``fit`` fits Kaplan's and Chinchilla's laws and
the compute-optimal frontier (:mod:`.fit`, :mod:`.frontier`, :mod:`.analysis`); ``plots``
draws them. N is non-embedding parameters and C = 6 N D (:mod:`.flops` also counts the exact
FLOPs from the model's shapes).
"""

from chainrule.scaling.flops import ModelSize, config_size, model_size
from chainrule.scaling.grid import SweepPoint, grid_points, learning_rate_for, read_grid_toml
from chainrule.scaling.sweep import bits_per_byte, load_results, prepare_corpus, run_sweep

__all__ = ["ModelSize", "SweepPoint", "bits_per_byte", "config_size", "grid_points",
           "learning_rate_for", "load_results", "model_size", "prepare_corpus",
           "read_grid_toml", "run_sweep"]
