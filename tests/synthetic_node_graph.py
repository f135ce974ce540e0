"""A small learnable node-classification graph for fast trainer tests (no files needed)."""

from __future__ import annotations

import torch

from gatkit.data.graph import Graph


def community_graph(
    num_nodes: int = 60, num_classes: int = 3, num_features: int = 12, seed: int = 0
) -> Graph:
    """Nodes in ``num_classes`` communities: dense links inside, few across; noisy features.

    Features are sparse-ish non-negative bag-of-words-like rows whose active words depend on
    the class, so a GAT learns the task in a few dozen epochs. Split: 5 train nodes per
    class, then a third of the rest for validation and the remainder for test.
    """
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(num_nodes) % num_classes
    same = y.unsqueeze(0) == y.unsqueeze(1)
    probability = torch.where(same, torch.tensor(0.25), torch.tensor(0.02))
    upper = torch.rand(num_nodes, num_nodes, generator=generator) < probability
    adjacency = torch.triu(upper, diagonal=1)
    adjacency = adjacency | adjacency.T
    edge_index = adjacency.nonzero().T.contiguous()  # [2, E], both directions
    words = torch.rand(num_nodes, num_features, generator=generator) < 0.15
    words[torch.arange(num_nodes), (y * (num_features // num_classes)) % num_features] = True
    x = words.float()
    x = x / x.sum(dim=1, keepdim=True)
    train_mask = torch.zeros(num_nodes, dtype=torch.bool)
    train_mask[: 5 * num_classes] = True
    rest = torch.arange(5 * num_classes, num_nodes)
    val_mask = torch.zeros(num_nodes, dtype=torch.bool)
    val_mask[rest[: len(rest) // 3]] = True
    test_mask = ~(train_mask | val_mask)
    return Graph(
        x=x,
        edge_index=edge_index,
        y=y,
        train_mask=train_mask,
        val_mask=val_mask,
        test_mask=test_mask,
        name="communities",
    )
