"""Training: early stopping, checkpoints, seeding, the full-batch node trainer, experiments."""

from gatkit.train.allocator import (
    freed_memory_is_kept,
    huge_page_stats,
    huge_pages,
    huge_pages_in_use,
    keep_freed_memory,
    stop_huge_pages,
    use_huge_pages,
)
from gatkit.train.attention_stats import attention_entropy, layer_entropies
from gatkit.train.checkpoint import load_checkpoint, save_checkpoint
from gatkit.train.early_stopping import GATEarlyStopping, MinValidationLossSelection, StopDecision
from gatkit.train.experiment import run_node_experiment
from gatkit.train.graph_classification import CrossValidationConfig, cross_validate
from gatkit.train.layerwise import layerwise_inference
from gatkit.train.lookup import LookupTrainConfig, train_lookup
from gatkit.train.minibatch import MiniBatchNodeTrainer
from gatkit.train.node_trainer import NodeTrainer, NodeTrainResult, model_from_checkpoint
from gatkit.train.seeding import (
    capture_rng_state,
    restore_rng_state,
    seed_everything,
    set_deterministic,
)

__all__ = [
    "CrossValidationConfig",
    "GATEarlyStopping",
    "MinValidationLossSelection",
    "LookupTrainConfig",
    "MiniBatchNodeTrainer",
    "NodeTrainResult",
    "NodeTrainer",
    "StopDecision",
    "attention_entropy",
    "capture_rng_state",
    "cross_validate",
    "freed_memory_is_kept",
    "huge_page_stats",
    "huge_pages",
    "huge_pages_in_use",
    "keep_freed_memory",
    "layer_entropies",
    "layerwise_inference",
    "load_checkpoint",
    "model_from_checkpoint",
    "restore_rng_state",
    "run_node_experiment",
    "save_checkpoint",
    "seed_everything",
    "set_deterministic",
    "stop_huge_pages",
    "train_lookup",
    "use_huge_pages",
]
