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


def from_pyg(module: nn.Module) -> GATConv | GATv2Conv:
    """Return the gatkit layer equivalent to a PyG ``GATConv`` or ``GATv2Conv``.

    Same configuration, same weights (copied), same dtype and device: the outputs agree.
    """
    conv = _import_pyg_conv()
    reference = next(module.parameters())
    if isinstance(module, conv.GATv2Conv):
        kwargs = _common_kwargs(module)
        kwargs["in_channels"] = _as_in_channels(kwargs["in_channels"])
        layer: GATConv | GATv2Conv = GATv2Conv(**kwargs, share_weights=module.share_weights)
        layer.to(reference.device, reference.dtype)
        _copy_linear(layer.project_source, module.lin_l)
        if layer.project_target is not None:
            _copy_linear(layer.project_target, module.lin_r)
        _copy_param(layer.att, module.att)
    elif isinstance(module, conv.GATConv):
        kwargs = _common_kwargs(module)
        kwargs["in_channels"] = _as_in_channels(kwargs["in_channels"])
        layer = GATConv(**kwargs)
        layer.to(reference.device, reference.dtype)
        if module.lin is not None:
            _copy_linear(layer.project_source, module.lin)
        else:
            _copy_linear(layer.project_source, module.lin_src)
            _copy_linear(layer.project_target, module.lin_dst)
        _copy_param(layer.att_source, module.att_src)
        _copy_param(layer.att_target, module.att_dst)
        _copy_param(layer.att_edge, module.att_edge)
    else:
        raise TypeError(
            f"from_pyg expects a torch_geometric.nn.GATConv or GATv2Conv, "
            f"got {type(module).__module__}.{type(module).__name__}"
        )
    if module.lin_edge is not None:
        _copy_linear(layer.project_edge, module.lin_edge)
    if module.res is not None:
        _copy_linear(layer.residual_projection, module.res)
    _copy_param(layer.bias, module.bias)
    layer.train(module.training)
    return layer


def to_pyg(layer: GATConv | GATv2Conv) -> nn.Module:
    """Return the PyG ``GATConv`` / ``GATv2Conv`` equivalent to a gatkit layer (weights copied)."""
    conv = _import_pyg_conv()
    if not isinstance(layer, (GATConv, GATv2Conv)):
        raise TypeError(
            f"to_pyg expects a gatkit.nn.GATConv or GATv2Conv, got {type(layer).__name__}"
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
    reference = next(layer.parameters())
    if isinstance(layer, GATv2Conv):
        module = conv.GATv2Conv(**kwargs, share_weights=layer.share_weights)
        module.to(reference.device, reference.dtype)
        _copy_linear(module.lin_l, layer.project_source)
        if not layer.share_weights:
            _copy_linear(module.lin_r, layer.project_target)
        _copy_param(module.att, layer.att)
    else:
        module = conv.GATConv(**kwargs)
        module.to(reference.device, reference.dtype)
        if module.lin is not None:
            _copy_linear(module.lin, layer.project_source)
        else:
            _copy_linear(module.lin_src, layer.project_source)
            _copy_linear(module.lin_dst, layer.project_target)
        _copy_param(module.att_src, layer.att_source)
        _copy_param(module.att_dst, layer.att_target)
        _copy_param(module.att_edge, layer.att_edge)
    if layer.project_edge is not None:
        _copy_linear(module.lin_edge, layer.project_edge)
    if layer.residual_projection is not None:
        _copy_linear(module.res, layer.residual_projection)
    _copy_param(module.bias, layer.bias)
    module.train(layer.training)
    return module
