"""Investigation only: GAT (per-head dropout) with the TF code's learned scalar bias per head
inside the LeakyReLU of the score: e_ij = LeakyReLU(a_t.Wh_i + a_s.Wh_j + b)."""
import sys, json, time
import torch
from torch import nn
from gatkit import ops
from gatkit.data.planetoid import load_planetoid
from gatkit.models import GAT, GATConfig
from gatkit.nn import GATConv
from gatkit.train import NodeTrainer, seed_everything
torch.set_num_threads(1)

class BiasedGATConv(GATConv):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.score_bias = nn.Parameter(torch.zeros(self.heads))
    def forward(self, x, edge_index, edge_attr=None, return_attention_weights=False):
        H, C = self.heads, self.out_channels
        x_src, x_dst, bipartite = self.split_inputs(x)
        N = x_src.size(0)
        kernels = ops.kernels_for(x_src.device, x_src.dtype)
        edge_index, _, csr = self.prepare_graph(edge_index, None, N, N, fused=True)
        (wh,) = self.project(x_src, [self.project_source])
        dropped = self.drop_messages(wh)
        messages = wh if dropped is None else dropped
        ss = (wh * self.att_source).sum(-1)
        sd = (wh * self.att_target).sum(-1) + self.score_bias
        scale = self.dropout_scale(edge_index.size(1), ss)
        out, alpha = ops.gat_attention(kernels, csr, ss, sd, None, messages, self.negative_slope, scale)
        return self.combine_heads(out, x_dst)

class BiasedGAT(GAT):
    def _make_layer(self, in_channels, out_channels, heads, concat):
        c = self.config
        p = c.dropout
        return BiasedGATConv(in_channels, out_channels, heads=heads, concat=concat,
                             negative_slope=c.negative_slope, dropout=c.attention_dropout,
                             add_self_loops=True, feature_dropout=p, message_dropout=p)

name, seed = sys.argv[1], int(sys.argv[2])
g = load_planetoid(name, root="/work/shared/data")
seed_everything(seed)
m = BiasedGAT(g.num_features, g.num_classes, GATConfig.for_dataset(name, "gat"))
t = time.perf_counter()
r = NodeTrainer(m, g, seed=seed).fit()
print(json.dumps({"seed": seed, "test": r.test_accuracy, "epochs": r.epochs, "wall": time.perf_counter() - t}), flush=True)
