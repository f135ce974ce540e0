"""Convert GAT layers between PyTorch Geometric and gatkit, weights included.

PyG is imported only inside these functions: ``import gatkit`` never imports it. The
parameter-name mapping lives here and nowhere else:

============================  ===================================  ========================
gatkit                        PyG ``GATConv``                      PyG ``GATv2Conv``
============================  ===================================  ========================
``project_source``            ``lin`` (int in) / ``lin_src``       ``lin_l``
``project_target``            — (int in) / ``lin_dst``             ``lin_r`` (unless shared)
``att_source`` ``[H, C]``     ``att_src`` ``[1, H, C]``            —
``att_target`` ``[H, C]``     ``att_dst`` ``[1, H, C]``            —
``att`` ``[H, C]``            —                                    ``att`` ``[1, H, C]``
``project_edge``              ``lin_edge``                         ``lin_edge``
``att_edge`` ``[H, C]``       ``att_edge`` ``[1, H, C]``           —
``residual_projection``       ``res``                              ``res``
``bias``                      ``bias``                             ``bias``
============================  ===================================  ========================
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from gatkit.nn import GATConv, GATv2Conv


def _import_pyg_conv() -> Any:
    try:
        from torch_geometric.nn import conv
    except ImportError as error:
        raise ImportError(
            "gatkit.interop.from_pyg/to_pyg need PyTorch Geometric, which is not installed: "
            "`pip install torch-geometric` (or `pip install gatkit[dev]`)"
        ) from error
    return conv


def _copy_linear(target: nn.Module, source: nn.Module) -> None:
    """Copy weight (and bias, if both have one) of one linear layer into another."""
    with torch.no_grad():
        target.weight.copy_(source.weight)
        if getattr(target, "bias", None) is not None:
            if getattr(source, "bias", None) is None:
                raise ValueError("bias mismatch between the layers being converted")
            target.bias.copy_(source.bias)


def _copy_param(target: nn.Parameter | None, source: torch.Tensor | None) -> None:
    if target is None and source is None:
        return
    if target is None or source is None:
        raise ValueError("parameter present in one layer and missing in the other")
    with torch.no_grad():
        target.copy_(source.reshape(target.shape))


def _common_kwargs(module: Any) -> dict[str, Any]:
    fill_value = module.fill_value
    if isinstance(fill_value, torch.Tensor):
        fill_value = fill_value.detach().clone()
    return {
        "in_channels": module.in_channels,
        "out_channels": module.out_channels,
        "heads": module.heads,
        "concat": module.concat,
        "negative_slope": module.negative_slope,
        "dropout": module.dropout,
        "add_self_loops": module.add_self_loops,
        "edge_dim": module.edge_dim,
        "fill_value": fill_value,
        "bias": module.bias is not None,
        "residual": module.residual,
    }


def _as_in_channels(value: Any) -> int | tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else int(value)


def _paired_weights(layer: GATConv | GATv2Conv, module: Any) -> list[tuple[str, Any, Any]]:
    """``(kind, gatkit part, PyG part)`` for every weight; kind ``"linear"`` or ``"param"``.

    The table of the module docstring, in code: the one place that knows both namings.
    """
    if isinstance(layer, GATv2Conv):
        pairs = [("linear", layer.project_source, module.lin_l)]
        if layer.project_target is not None:
            pairs.append(("linear", layer.project_target, module.lin_r))
        pairs.append(("param", layer.att, module.att))
    else:
        if module.lin is not None:
            pairs = [("linear", layer.project_source, module.lin)]
        else:
            pairs = [
                ("linear", layer.project_source, module.lin_src),
                ("linear", layer.project_target, module.lin_dst),
            ]
        pairs += [
            ("param", layer.att_source, module.att_src),
            ("param", layer.att_target, module.att_dst),
            ("param", layer.att_edge, module.att_edge),
        ]
    if layer.project_edge is not None or module.lin_edge is not None:
        pairs.append(("linear", layer.project_edge, module.lin_edge))
    if layer.residual_projection is not None or module.res is not None:
        pairs.append(("linear", layer.residual_projection, module.res))
    pairs.append(("param", layer.bias, module.bias))
    return pairs


def _copy_pairs(pairs: list[tuple[str, Any, Any]], into_gatkit: bool) -> None:
    for kind, ours, theirs in pairs:
        target, source = (ours, theirs) if into_gatkit else (theirs, ours)
        if kind == "linear":
            if target is None or source is None:
                raise ValueError("linear map present in one layer and missing in the other")
            _copy_linear(target, source)
        else:
            _copy_param(target, source)


def from_pyg(module: nn.Module) -> GATConv | GATv2Conv:
    """Return the gatkit layer equivalent to a PyG ``GATConv`` or ``GATv2Conv``.

    Same configuration, same weights (copied), same dtype and device: the outputs agree.
    """
    conv = _import_pyg_conv()
    if not isinstance(module, (conv.GATConv, conv.GATv2Conv)):
        raise TypeError(
            f"from_pyg expects a torch_geometric.nn.GATConv or GATv2Conv, "
            f"got {type(module).__module__}.{type(module).__name__}"
        )
    kwargs = _common_kwargs(module)
    kwargs["in_channels"] = _as_in_channels(kwargs["in_channels"])
    if isinstance(module, conv.GATv2Conv):
        layer: GATConv | GATv2Conv = GATv2Conv(**kwargs, share_weights=module.share_weights)
    else:
        layer = GATConv(**kwargs)
    reference = next(module.parameters())
    layer.to(reference.device, reference.dtype)
    _copy_pairs(_paired_weights(layer, module), into_gatkit=True)
    layer.train(module.training)
    return layer


def to_pyg(layer: GATConv | GATv2Conv) -> nn.Module:
    """Return the PyG ``GATConv`` / ``GATv2Conv`` equivalent to a gatkit layer (weights copied).

    PyG's layers have no per-head input dropout or message dropout: a layer with
    ``feature_dropout`` or ``message_dropout`` converts with a warning (evaluation-mode
    outputs agree; training-mode noise differs).
    """
    conv = _import_pyg_conv()
    if not isinstance(layer, (GATConv, GATv2Conv)):
        raise TypeError(
            f"to_pyg expects a gatkit.nn.GATConv or GATv2Conv, got {type(layer).__name__}"
        )
    if layer.feature_dropout or layer.message_dropout:
        warnings.warn(
            "PyG's GATConv/GATv2Conv have no feature_dropout or message_dropout; the "
            "converted layer drops neither (evaluation-mode outputs agree)",
            stacklevel=2,
        )
    kwargs = {
        "in_channels": layer.in_channels,
        "out_channels": layer.out_channels,
        "heads": layer.heads,
        "concat": layer.concat,
        "negative_slope": layer.negative_slope,
        "dropout": layer.dropout,
        "add_self_loops": layer.add_self_loops,
        "edge_dim": layer.edge_dim,
        "fill_value": layer.fill_value,
        "bias": layer.bias is not None,
        "residual": layer.residual,
    }
    if isinstance(layer, GATv2Conv):
        module = conv.GATv2Conv(**kwargs, share_weights=layer.share_weights)
    else:
        module = conv.GATConv(**kwargs)
    reference = next(layer.parameters())
    module.to(reference.device, reference.dtype)
    _copy_pairs(_paired_weights(layer, module), into_gatkit=False)
    module.train(layer.training)
    return module
