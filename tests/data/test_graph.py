"""Graph: sizes, device moves, validation errors, and PyG / networkx / scipy round trips."""

from __future__ import annotations

import sys

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from gatkit.data import Graph
from gatkit.errors import GraphInputError

# Importing torch_geometric (first PyG test) triggers torch's own torch.jit.script warning.
pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated:DeprecationWarning"
)


def small_graph(edge_attr: bool = False) -> Graph:
    """5 nodes, 6 directed edges (a cycle plus a chord, sorted by source), a -1 label."""
    edge_index = torch.tensor([[0, 0, 1, 2, 3, 4], [1, 2, 2, 3, 4, 0]])
    return Graph(
        x=torch.arange(15, dtype=torch.float32).reshape(5, 3),
        edge_index=edge_index,
        y=torch.tensor([0, 2, 1, -1, 2]),
        edge_attr=torch.linspace(0.5, 3.0, 6).reshape(6, 1) if edge_attr else None,
        train_mask=torch.tensor([True, True, False, False, False]),
        val_mask=torch.tensor([False, False, True, False, False]),
        test_mask=torch.tensor([False, False, False, False, True]),
        name="toy",
    )


def edge_set(graph: Graph) -> set[tuple[int, int]]:
    return {tuple(pair) for pair in graph.edge_index.t().tolist()}


def assert_same_graph(a: Graph, b: Graph) -> None:
    for field in ("x", "edge_index", "y", "edge_attr", "train_mask", "val_mask", "test_mask"):
        left, right = getattr(a, field), getattr(b, field)
        if left is None or right is None:
            assert left is None and right is None, field
        else:
            assert torch.equal(left, right), field


# ------------------------------------------------------------------------------- sizes
def test_sizes_count_nodes_edges_features_and_labelled_classes():
    graph = small_graph(edge_attr=True)
    assert graph.num_nodes == 5
    assert graph.num_edges == 6
    assert graph.num_features == 3
    assert graph.num_edge_features == 1
    assert graph.num_classes == 3  # labels 0..2; -1 is not a class


def test_num_classes_is_zero_without_labels_or_with_only_unlabelled_nodes():
    graph = small_graph()
    graph.y = None
    assert graph.num_classes == 0
    graph.y = torch.full((5,), -1)
    assert graph.num_classes == 0


def test_repr_is_one_short_line_with_the_sizes():
    text = repr(small_graph())
    assert text.startswith("Graph(name='toy', num_nodes=5, num_edges=6, num_features=3")
    assert "train_mask=2" in text and "\n" not in text


def test_to_returns_a_new_graph_with_every_tensor_moved():
    graph = small_graph(edge_attr=True)
    moved = graph.to("meta")
    assert moved is not graph
    assert all(t.device.type == "meta" for t in moved.tensors().values())
    assert len(moved.tensors()) == 7
    assert graph.x.device.type == "cpu"
    assert moved.name == "toy"


def test_validate_accepts_a_well_formed_graph_and_returns_it():
    graph = small_graph(edge_attr=True)
    assert graph.validate() is graph


# -------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("x", torch.ones(5), r"Graph\.x must have shape \[num_nodes, channels\]"),
        ("x", torch.ones(5, 3, dtype=torch.long), r"Graph\.x must have a floating dtype"),
        ("x", torch.full((5, 3), float("nan")), r"Graph\.x contains NaN"),
        ("edge_index", torch.tensor([[0, 1], [1, 5]]), r"index 5 but there are only 5"),
        ("edge_index", torch.tensor([[0, -1], [1, 2]]), r"negative index -1"),
        ("edge_index", torch.zeros(3, 4, dtype=torch.long), r"shape \[2, E\].*\(3, 4\)"),
        ("edge_index", torch.zeros(2, 4, dtype=torch.int32), r"torch\.int64, got torch\.int32"),
        ("edge_index", [[0], [1]], r"must be a torch\.Tensor"),
        ("edge_attr", torch.ones(5, 2), r"5 rows but edge_index has 6 edges"),
        ("edge_attr", torch.ones(6), r"edge_attr must have shape \[E, D\]"),
        ("y", torch.tensor([0, 1, -2, 0, 0]), r"label -2; expected class indices >= 0, or -1"),
        ("y", torch.tensor([0, 1, 2]), r"Graph\.y has 3 entries .* 5 nodes"),
        ("y", torch.zeros(5, 2, dtype=torch.long), r"Graph\.y must have shape \[N\]"),
        ("train_mask", torch.ones(5, dtype=torch.long), r"train_mask must be a bool tensor"),
        ("val_mask", torch.ones(4, dtype=torch.bool), r"val_mask must have shape .*\(4,\)"),
    ],
)
def test_validate_names_the_field_expected_and_actual(field, value, message):
    graph = small_graph(edge_attr=True)
    setattr(graph, field, value)
    with pytest.raises(GraphInputError, match=message):
        graph.validate()


def test_validate_rejects_tensors_on_different_devices():
    graph = small_graph()
    graph.y = graph.y.to("meta")
    with pytest.raises(GraphInputError, match=r"Graph\.y is on meta but Graph\.x is on cpu"):
        graph.validate()


def test_graph_level_labels_are_valid_without_node_masks():
    graph = Graph(
        x=torch.ones(3, 2), edge_index=torch.tensor([[0, 1], [1, 2]]), y=torch.tensor([1])
    )
    assert graph.validate().num_classes == 2


# ------------------------------------------------------------------------------- PyG
def test_pyg_round_trip_keeps_every_tensor():
    from torch_geometric.data import Data

    graph = small_graph(edge_attr=True)
    data = graph.to_pyg()
    assert isinstance(data, Data)
    assert data.num_nodes == 5 and data.num_edges == 6
    back = Graph.from_pyg(data, name="toy")
    assert_same_graph(graph, back)
    assert back.name == "toy"


def test_from_pyg_leaves_absent_fields_none():
    from torch_geometric.data import Data

    data = Data(x=torch.ones(3, 4), edge_index=torch.tensor([[0, 1], [1, 2]], dtype=torch.int32))
    graph = Graph.from_pyg(data)
    assert graph.y is None and graph.edge_attr is None and graph.train_mask is None
    assert graph.edge_index.dtype == torch.long
    graph.validate()


def test_from_pyg_without_features_raises_naming_x():
    from torch_geometric.data import Data

    with pytest.raises(GraphInputError, match=r"data\.x is None"):
        Graph.from_pyg(Data(edge_index=torch.tensor([[0], [1]]), num_nodes=2))


def test_pyg_conversion_without_pyg_installed_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_geometric", None)
    monkeypatch.setitem(sys.modules, "torch_geometric.data", None)
    with pytest.raises(ImportError, match=r"Graph\.to_pyg needs .*pip install torch-geometric"):
        small_graph().to_pyg()
    with pytest.raises(ImportError, match=r"Graph\.from_pyg needs"):
        Graph.from_pyg(object())


# -------------------------------------------------------------------------- networkx
def test_networkx_directed_round_trip_keeps_every_tensor_of_a_source_sorted_graph():
    graph = small_graph(edge_attr=True)
    g = graph.to_networkx()
    assert isinstance(g, nx.DiGraph)
    assert g.number_of_nodes() == 5 and g.number_of_edges() == 6
    back = Graph.from_networkx(g, edge_key="edge_attr", name="toy")
    assert_same_graph(graph, back)


def test_undirected_networkx_graph_gives_both_directions_and_self_loops_once():
    g = nx.Graph()
    g.add_edges_from([("a", "b"), ("b", "c"), ("c", "c")])
    graph = Graph.from_networkx(g)
    assert edge_set(graph) == {(0, 1), (1, 0), (1, 2), (2, 1), (2, 2)}
    assert graph.num_edges == 5
    assert torch.equal(graph.x, torch.ones(3, 1))  # no features: one constant feature
    graph.validate()


def test_to_networkx_undirected_merges_reverse_edges():
    graph = Graph(x=torch.ones(3, 1), edge_index=torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]]))
    g = graph.to_networkx(to_undirected=True)
    assert not g.is_directed()
    assert sorted(g.edges()) == [(0, 1), (1, 2)]


def test_from_networkx_reports_an_edge_missing_the_edge_attribute():
    g = nx.DiGraph()
    g.add_edge(0, 1, w=1.0)
    g.add_edge(1, 2)
    with pytest.raises(GraphInputError, match=r"edge \(1, 2\) has no attribute edge_key='w'"):
        Graph.from_networkx(g, edge_key="w")


# ----------------------------------------------------------------------------- scipy
def test_scipy_coo_round_trip_keeps_edge_order_and_values():
    graph = small_graph(edge_attr=True)
    matrix = graph.to_scipy("coo", edge_values=True)
    assert sp.issparse(matrix) and matrix.shape == (5, 5)
    back = Graph.from_scipy(matrix, x=graph.x, y=graph.y, edge_values=True)
    assert torch.equal(back.edge_index, graph.edge_index)
    assert torch.equal(back.edge_attr, graph.edge_attr)
    assert torch.equal(back.x, graph.x) and torch.equal(back.y, graph.y)


def test_adjacency_row_is_source_and_column_is_target():
    graph = small_graph()
    dense = graph.to_scipy("csr").toarray()
    expected = np.zeros((5, 5), dtype=np.float32)
    expected[graph.edge_index[0].numpy(), graph.edge_index[1].numpy()] = 1
    np.testing.assert_array_equal(dense, expected)


def test_scipy_csr_round_trip_keeps_the_edge_set():
    adjacency = sp.random(30, 30, density=0.1, format="csr", random_state=np.random.default_rng(0))
    graph = Graph.from_scipy(adjacency)
    assert graph.num_edges == adjacency.nnz
    assert torch.equal(graph.x, torch.ones(30, 1))
    back = graph.to_scipy("csr")
    assert (back != (adjacency != 0).astype(np.float32)).nnz == 0


def test_from_scipy_rejects_non_square_and_dense_input_and_wrong_feature_rows():
    with pytest.raises(GraphInputError, match=r"square \[N, N\], got \(3, 4\)"):
        Graph.from_scipy(sp.coo_matrix((3, 4)))
    with pytest.raises(GraphInputError, match="must be a scipy.sparse matrix, got ndarray"):
        Graph.from_scipy(np.eye(3))
    with pytest.raises(GraphInputError, match="x has 2 rows but the adjacency matrix has 3"):
        Graph.from_scipy(sp.eye(3), x=torch.ones(2, 1))


def test_to_scipy_with_edge_values_needs_one_edge_feature():
    with pytest.raises(GraphInputError, match=r"edge_attr of shape \[E, 1\], got None"):
        small_graph().to_scipy(edge_values=True)
    with pytest.raises(GraphInputError, match="format must be 'coo' or 'csr'"):
        small_graph().to_scipy("dense")
