"""Training: early stopping, checkpoints, seeding, the full-batch node trainer, experiments."""

from gatkit.train.checkpoint import load_checkpoint, save_checkpoint
from gatkit.train.early_stopping import GATEarlyStopping, StopDecision
from gatkit.train.experiment import run_node_experiment
from gatkit.train.node_trainer import NodeTrainer, NodeTrainResult, model_from_checkpoint
from gatkit.train.seeding import (
    capture_rng_state,
    restore_rng_state,
    seed_everything,
    set_deterministic,
)

__all__ = [
    "GATEarlyStopping",
    "NodeTrainResult",
    "NodeTrainer",
    "StopDecision",
    "capture_rng_state",
    "load_checkpoint",
    "model_from_checkpoint",
    "restore_rng_state",
    "run_node_experiment",
    "save_checkpoint",
    "seed_everything",
    "set_deterministic",
]
