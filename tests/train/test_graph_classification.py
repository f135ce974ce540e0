"""The honest CV protocol: stratified folds and hold-outs, one test evaluation per fold."""

from __future__ import annotations

import numpy as np
import pytest

from gatkit.data.tu import load_tu
from gatkit.models.graph_classifier import GraphClassifierConfig
from gatkit.train import graph_classification as gc
from gatkit.train.graph_classification import (
    CrossValidationConfig,
    cross_validate,
    stratified_folds,
    stratified_holdout,
)

LABELS = np.array([0] * 125 + [1] * 63)  # MUTAG's class sizes


def test_stratified_folds_partition_and_keep_class_proportions():
    folds = stratified_folds(LABELS, 10, seed=0)
    everything = np.concatenate(folds)
    assert sorted(everything.tolist()) == list(range(LABELS.size))  # disjoint, covering
    sizes = [f.size for f in folds]
    assert max(sizes) - min(sizes) <= 1
    for label in (0, 1):
        counts = [int((LABELS[f] == label).sum()) for f in folds]
        assert max(counts) - min(counts) <= 1


def test_stratified_folds_are_seeded():
    a, b = stratified_folds(LABELS, 10, seed=1), stratified_folds(LABELS, 10, seed=1)
    c = stratified_folds(LABELS, 10, seed=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_stratified_holdout_takes_ten_percent_of_each_class():
    rest = np.setdiff1d(np.arange(LABELS.size), stratified_folds(LABELS, 10, seed=0)[0])
    train, holdout = stratified_holdout(rest, LABELS, 0.1, seed=0)
    assert np.intersect1d(train, holdout).size == 0
    assert sorted(np.concatenate([train, holdout]).tolist()) == rest.tolist()
    for label in (0, 1):
        in_rest = int((LABELS[rest] == label).sum())
        assert int((LABELS[holdout] == label).sum()) == round(0.1 * in_rest)


def test_bad_fold_count_is_refused():
    with pytest.raises(ValueError, match="folds must be an int"):
        stratified_folds(LABELS, 1, seed=0)


@pytest.fixture(scope="module")
def mutag(shared_data_dir):
    return load_tu("MUTAG", root=shared_data_dir, download=False)


def tiny_model(dataset, **overrides) -> GraphClassifierConfig:
    return GraphClassifierConfig(
        in_channels=dataset.num_features,
        num_classes=dataset.num_classes,
        num_edge_labels=dataset.num_edge_labels,
        hidden_channels=8,
        heads=2,
        num_layers=2,
        **overrides,
    )


def test_short_cross_validation_on_mutag_runs_end_to_end(mutag, monkeypatch):
    test_evaluations: list[int] = []
    folds = stratified_folds(mutag.labels, 3, seed=0)
    test_names = [{mutag[i].name for i in fold} for fold in folds]
    evaluate = gc.evaluate

    def counting_evaluate(model, loader):
        names = {g.name for g in loader.graphs}
        current = len(test_evaluations)  # the fold being trained
        if names == test_names[current]:
            test_evaluations.append(current)
        else:  # hold-out evaluations never see a graph of the current test fold
            assert not names & test_names[current]
        return evaluate(model, loader)

    monkeypatch.setattr(gc, "evaluate", counting_evaluate)
    config = CrossValidationConfig(folds=3, max_epochs=2, patience=2, batch_size=64)
    result = cross_validate(mutag, tiny_model(mutag), config, dataset="MUTAG", progress=False)
    assert test_evaluations == [0, 1, 2]  # each test fold evaluated exactly once, in order
    summary = result.to_dict()
    assert len(summary["fold_accuracies"]) == 3
    assert all(0.0 <= a <= 1.0 for a in summary["fold_accuracies"])
    assert summary["test_accuracy_mean"] == pytest.approx(np.mean(summary["fold_accuracies"]))
    assert summary["test_accuracy_std"] == pytest.approx(np.std(summary["fold_accuracies"]))
    assert sum(f["test_size"] for f in summary["folds"]) == len(mutag)
    for fold in summary["folds"]:
        assert fold["train_size"] + fold["holdout_size"] + fold["test_size"] == len(mutag)
        assert 1 <= fold["best_epoch"] <= fold["epochs_run"] <= 2
    assert summary["config"]["model"]["hidden_channels"] == 8


def test_cross_validation_is_reproducible_for_a_seed(mutag):
    config = CrossValidationConfig(folds=10, max_epochs=1, patience=1, seed=5)
    model = tiny_model(mutag, pooling="mean", edge_features=False)
    runs = [
        cross_validate(mutag, model, config, progress=False, only_folds=[3]).accuracies
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
