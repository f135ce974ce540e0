"""The GAT early-stopping rule (PROTOCOLS.md §1) on scripted validation curves."""

from __future__ import annotations

import math

import pytest

from gatkit.train.early_stopping import GATEarlyStopping, MinValidationLossSelection, make_stopper


def run_script(losses, accuracies, patience):
    stopper = GATEarlyStopping(patience)
    decisions = []
    for epoch, (loss, acc) in enumerate(zip(losses, accuracies, strict=True), start=1):
        decisions.append(stopper.step(epoch, loss, acc))
        if decisions[-1].stop:
            break
    return stopper, decisions


def test_improvement_is_loss_or_accuracy_and_kept_model_needs_both():
    #        epoch:   1    2    3    4    5    6    7    8    9
    losses = [1.0, 0.9, 0.95, 0.8, 0.85, 0.85, 0.9, 0.95, 0.99]
    accs = [0.5, 0.6, 0.70, 0.6, 0.70, 0.65, 0.6, 0.60, 0.60]
    stopper, decisions = run_script(losses, accs, patience=3)
    improved = [d.improved for d in decisions]
    kept = [d.keep for d in decisions]
    # 3: accuracy only; 4: loss only; 5: accuracy ties the maximum (>=) -> improves.
    assert improved == [True, True, True, True, True, False, False, False]
    assert kept == [True, True, False, False, False, False, False, False]
    assert [d.stop for d in decisions] == [False] * 7 + [True]
    assert stopper.best_epoch == 2
    assert (stopper.best_val_loss, stopper.best_val_acc) == (0.9, 0.6)


def test_ties_count_as_improvement_on_both_and_last_such_epoch_is_kept():
    losses = [1.0, 1.0, 1.0]
    accs = [0.5, 0.5, 0.5]
    stopper, decisions = run_script(losses, accs, patience=1)
    assert all(d.keep for d in decisions)
    assert stopper.best_epoch == 3


def test_patience_counts_consecutive_epochs_without_improvement_and_resets():
    # Bad, bad, then accuracy improves, then patience (3) bad epochs end the run.
    losses = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2]
    accs = [0.5, 0.4, 0.4, 0.55, 0.5, 0.5, 0.5, 0.5]
    stopper, decisions = run_script(losses, accs, patience=3)
    assert len(decisions) == 7
    assert decisions[-1].stop
    assert stopper.best_epoch == 1  # epoch 4 improved accuracy but not loss


def test_first_epoch_always_improves_both():
    stopper = GATEarlyStopping(100)
    assert stopper.min_val_loss == math.inf
    decision = stopper.step(1, 123.0, 0.0)
    assert decision.improved and decision.keep


def test_state_dict_round_trip_continues_identically():
    losses = [1.0, 0.9, 0.95, 0.97, 0.8, 0.99]
    accs = [0.5, 0.6, 0.55, 0.5, 0.7, 0.1]
    reference, ref_decisions = run_script(losses, accs, patience=10)
    first = GATEarlyStopping(10)
    for epoch in range(1, 4):
        first.step(epoch, losses[epoch - 1], accs[epoch - 1])
    second = GATEarlyStopping(10)
    second.load_state_dict(first.state_dict())
    rest = [second.step(e, losses[e - 1], accs[e - 1]) for e in range(4, 7)]
    assert rest == ref_decisions[3:]
    assert second.state_dict() == reference.state_dict()


@pytest.mark.parametrize("patience", [0, -1, 1.5, True])
def test_invalid_patience_is_refused_with_its_value(patience):
    with pytest.raises(ValueError, match="patience"):
        GATEarlyStopping(patience)


# --------------------------------------------------------------- PyG's benchmark rule
def test_min_val_loss_keeps_each_strictly_lower_loss_and_never_stops_in_the_first_half():
    stopper = MinValidationLossSelection(patience=3, max_epochs=10)
    losses = [1.0, 0.8, 0.8, 0.9, 2.0, 0.7]  # epochs 1..6; 5 would stop if past half
    decisions = [stopper.step(t, loss, 0.5) for t, loss in enumerate(losses, start=1)]
    assert [d.keep for d in decisions] == [True, True, False, False, False, True]
    assert not any(d.stop for d in decisions[:5])  # epochs 1-5 are within max_epochs // 2
    assert stopper.best_epoch == 6 and stopper.best_val_loss == 0.7


def test_min_val_loss_stops_once_the_loss_exceeds_the_mean_of_the_previous_patience():
    stopper = MinValidationLossSelection(patience=3, max_epochs=6)
    for t, loss in enumerate([0.5, 0.4, 0.6], start=1):
        assert not stopper.step(t, loss, 0.5).stop  # epochs 1-3: not past 6 // 2
    # epoch 4 > 6 // 2; the previous three losses average 0.5
    assert not MinValidationLossSelection(3, 4).step(3, 9.0, 0.5).stop  # no history yet
    assert stopper.step(4, 0.5, 0.5).stop is False  # 0.5 is not above 0.5
    assert stopper.step(5, 0.51, 0.5).stop is True  # mean of 0.4, 0.6, 0.5 is 0.5


def test_min_val_loss_state_dict_round_trip_continues_identically():
    losses = [1.0, 0.9, 0.95, 0.85, 0.99, 0.97, 0.98, 1.2]
    whole = MinValidationLossSelection(patience=2, max_epochs=6)
    expected = [whole.step(t, loss, 0.1) for t, loss in enumerate(losses, start=1)]
    first = MinValidationLossSelection(patience=2, max_epochs=6)
    got = [first.step(t, loss, 0.1) for t, loss in enumerate(losses[:4], start=1)]
    second = MinValidationLossSelection(patience=2, max_epochs=6)
    second.load_state_dict(first.state_dict())
    got += [second.step(t, loss, 0.1) for t, loss in enumerate(losses[4:], start=5)]
    assert got == expected


def test_make_stopper_names_its_rules():
    assert isinstance(make_stopper("gat", 5, 100), GATEarlyStopping)
    assert isinstance(make_stopper("min-val-loss", 5, 100), MinValidationLossSelection)
    with pytest.raises(ValueError, match="min-val-loss"):
        make_stopper("best-test", 5, 100)


def test_a_state_of_the_other_rule_is_refused_with_the_missing_keys():
    with pytest.raises(ValueError, match="history"):
        MinValidationLossSelection(5, 100).load_state_dict(GATEarlyStopping(5).state_dict())
    with pytest.raises(ValueError, match="bad_epochs"):
        GATEarlyStopping(5).load_state_dict(MinValidationLossSelection(5, 100).state_dict())
