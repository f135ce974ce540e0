r"""Random node-classification graphs of any size, for scale tests and benchmarks.

:func:`random_node_graph` draws a graph whose labels can be learnt from both the features
and the edges, so that training on it shows a falling loss:

- labels :math:`y_i` uniform over ``num_classes``;
- features :math:`\mathbf{x}_i = \boldsymbol{\mu}_{y_i} + \sigma\,\boldsymbol{\epsilon}_i`
  with class means :math:`\boldsymbol{\mu}_c \sim \mathcal{N}(0, I)` and
  :math:`\boldsymbol{\epsilon}_i \sim \mathcal{N}(0, I)`;
- ``num_edges`` directed edges :math:`j \to i`: the destination :math:`i` uniform, the
  source :math:`j` uniform among the nodes of class :math:`y_i` with probability
  ``homophily``, else uniform among all nodes (duplicates and self-loops removed, then topped
  up until exactly ``num_edges`` distinct edges remain);
- a random split into train / validation / test masks of the given fractions.

``random_node_graph(169_343, 1_166_243, 128, 40)`` has the size of ogbn-arxiv.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gatkit.data.graph import Graph

__all__ = ["ARXIV_SIZE", "random_node_graph"]

#: (num_nodes, num_edges, num_features, num_classes) of ogbn-arxiv (directed citation edges).
ARXIV_SIZE = (169_343, 1_166_243, 128, 40)


def _random_edges(
    y: Tensor, num_edges: int, num_classes: int, homophily: float, generator: torch.Generator
) -> Tensor:
    """``[2, num_edges]`` distinct non-loop edges, sorted by (destination, source)."""
    num_nodes = y.numel()
    by_class = torch.argsort(y, stable=True)  # [N] node ids grouped by class
    class_size = torch.bincount(y, minlength=num_classes)  # [C]
    class_start = torch.cumsum(class_size, 0) - class_size  # [C]
    keys = torch.empty(0, dtype=torch.long)
    while keys.numel() < num_edges:
        draw = int((num_edges - keys.numel()) * 1.05) + 16
        dst = torch.randint(num_nodes, (draw,), generator=generator)  # [draw]
        src = torch.randint(num_nodes, (draw,), generator=generator)  # [draw]
        same = torch.rand(draw, generator=generator) < homophily  # [draw]
        c = y[dst]
        pick = (torch.rand(draw, generator=generator) * class_size[c]).long()  # [draw]
        src = torch.where(same, by_class[class_start[c] + pick], src)
        fresh = (dst * num_nodes + src)[src != dst]
        keys = torch.unique(torch.cat([keys, fresh]))
    if keys.numel() > num_edges:  # drop a random surplus
        keep = torch.randperm(keys.numel(), generator=generator)[:num_edges]
        keys = keys[torch.sort(keep).values]
    return torch.stack([keys % num_nodes, keys // num_nodes])


def random_node_graph(
    num_nodes: int,
    num_edges: int,
    num_features: int = 128,
    num_classes: int = 40,
    *,
    homophily: float = 0.5,
    noise: float = 2.0,
    split: tuple[float, float] = (0.54, 0.18),
    seed: int = 0,
    name: str = "",
) -> Graph:
    """A random :class:`Graph` with labels, features, edges and masks (see module docstring).

    Args:
        num_nodes, num_edges: size ``N`` and ``E`` (``E <= N (N - 1)``).
        num_features, num_classes: feature width ``F`` and number of classes ``C``.
        homophily: probability that an edge's source shares its destination's class.
        noise: feature noise :math:`\\sigma` around the class mean.
        split: fractions of nodes in the train and validation masks (the rest is test);
            the default is ogbn-arxiv's (54% / 18% / 28%).
        seed: seed of the generator; the same arguments give the same graph.
        name: the graph's name (default ``"random-<N>-<E>"``).
    """
    for label, value, low in (
        ("num_nodes", num_nodes, 2),
        ("num_edges", num_edges, 0),
        ("num_features", num_features, 1),
        ("num_classes", num_classes, 1),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{label} must be an int >= {low}, got {value!r}")
    if num_edges > num_nodes * (num_nodes - 1):
        raise ValueError(
            f"num_edges must be at most N (N - 1) = {num_nodes * (num_nodes - 1)} for "
            f"num_nodes={num_nodes}, got {num_edges}"
        )
    if not 0.0 <= homophily <= 1.0:
        raise ValueError(f"homophily must lie in [0, 1], got {homophily!r}")
    train_fraction, val_fraction = split
    if not (train_fraction > 0 and val_fraction > 0 and train_fraction + val_fraction < 1):
        raise ValueError(f"split must be (train, val) fractions > 0 with sum < 1, got {split!r}")
    generator = torch.Generator().manual_seed(seed)
    y = torch.randint(num_classes, (num_nodes,), generator=generator)  # [N]
    means = torch.randn(num_classes, num_features, generator=generator)  # [C, F]
    x = means[y] + noise * torch.randn(num_nodes, num_features, generator=generator)  # [N, F]
    edge_index = _random_edges(y, num_edges, num_classes, homophily, generator)  # [2, E]
    order = torch.randperm(num_nodes, generator=generator)
    n_train = max(1, int(train_fraction * num_nodes))
    n_val = max(1, int(val_fraction * num_nodes))
    masks = []
    for part in (order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]):
        mask = torch.zeros(num_nodes, dtype=torch.bool)
        mask[part] = True
        masks.append(mask)
    return Graph(
        x=x,
        edge_index=edge_index,
        y=y,
        train_mask=masks[0],
        val_mask=masks[1],
        test_mask=masks[2],
        name=name or f"random-{num_nodes}-{num_edges}",
    )
