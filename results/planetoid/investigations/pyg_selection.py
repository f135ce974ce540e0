"""Investigation only: GAT on a Planetoid set under PyG's citation-benchmark selection rule
instead of the GAT authors' early stopping. Rule (PyG benchmark/citation, re-stated): at most
1000 epochs; the reported test accuracy is the one of the epoch with the lowest validation
loss; after epoch 500 training stops at the first epoch whose validation loss exceeds the mean
of the previous 100. Usage: pyg_selection.py DATASET SEED PLACEMENT(shared|per_head)."""
import json
import sys
import time

import torch

from gatkit.data.planetoid import load_planetoid
from gatkit.models import GAT, GATConfig
from gatkit.train import NodeTrainer, seed_everything

torch.set_num_threads(1)
name, seed, placement = sys.argv[1], int(sys.argv[2]), sys.argv[3]
g = load_planetoid(name, root="/work/shared/data")
seed_everything(seed)
model = GAT(g.num_features, g.num_classes,
            GATConfig.for_dataset(name, "gat", dropout_placement=placement))
trainer = NodeTrainer(model, g, seed=seed)
best_val_loss, test_acc, best_epoch, history = float("inf"), 0.0, 0, []
t = time.perf_counter()
for epoch in range(1, 1001):
    trainer.train_step()
    ev = trainer.evaluate()
    val_loss = ev["val"][0]
    if val_loss < best_val_loss:
        best_val_loss, test_acc, best_epoch = val_loss, ev["test"][1], epoch
    history.append(val_loss)
    if epoch > 500 and val_loss > sum(history[-101:-1]) / 100:
        break
print(json.dumps({"dataset": name, "seed": seed, "placement": placement, "test": test_acc,
                  "best_epoch": best_epoch, "epochs": epoch,
                  "wall": round(time.perf_counter() - t, 1)}), flush=True)
