"""The DictionaryLookup sweep over k (Brody et al., 2022, figure 2): runs, CSV and plot.

For every k the problem is generated once (same split for every model) and GAT with 1 head,
GAT with 8 heads and GATv2 with 1 head are trained on it with the same budget. Each finished
run is appended to the CSV at once, so an interrupted sweep keeps what it finished.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from gatkit.data.dictionary_lookup import make_dictionary_lookup
from gatkit.models.lookup import LookupModelConfig
from gatkit.train.lookup import LookupResult, LookupTrainConfig, train_lookup
from gatkit.train.lookup_attention import lookup_attention_report

__all__ = [
    "CSV_COLUMNS",
    "SWEEP_MODELS",
    "plot_sweep",
    "read_sweep_csv",
    "run_sweep",
    "sweep_row",
]

#: (attention layer, heads) of the paper's figure 2.
SWEEP_MODELS: tuple[tuple[str, int], ...] = (("gat", 1), ("gat", 8), ("gatv2", 1))

CSV_COLUMNS = (
    "k",
    "model",
    "heads",
    "train_accuracy",
    "test_accuracy",
    "train_graph_accuracy",
    "test_graph_accuracy",
    "train_graphs",
    "test_graphs",
    "steps",
    "batch_size",
    "graphs_seen",
    "solved_at_step",
    "train_seconds",
    "eval_seconds",
    "correct_key",
    "same_key",
)

#: Graphs of the test split (training split when the test split is empty) used to measure
#: the argmax-key statistics of each run.
ATTENTION_GRAPHS = 512


def sweep_row(result: LookupResult, config: LookupTrainConfig, problem) -> dict:
    """One CSV row: the run's summary plus its argmax-key statistics (mean over heads)."""
    graphs = problem.test if problem.test.size(0) else problem.train
    report = lookup_attention_report(result.model, graphs[:ATTENTION_GRAPHS])
    heads = report.heads
    row = result.summary()
    row["batch_size"] = config.batch_size
    row["correct_key"] = sum(report.correct_key[:heads]) / heads
    row["same_key"] = sum(report.same_key[:heads]) / heads
    return {column: row[column] for column in CSV_COLUMNS}


def run_sweep(
    ks: Iterable[int],
    config: LookupTrainConfig,
    csv_path: str | os.PathLike[str],
    models: Sequence[tuple[str, int]] = SWEEP_MODELS,
    problem_seed: int = 0,
    on_run: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Train every model on every ``k``; write ``csv_path`` row by row; return the rows.

    ``on_run`` is called after each run with its row (a hook for a progress bar).
    """
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for k in ks:
            problem = make_dictionary_lookup(k, seed=problem_seed)
            for model, heads in models:
                result = train_lookup(problem, LookupModelConfig(k, model, heads), config)
                row = sweep_row(result, config, problem)
                writer.writerow(row)
                handle.flush()
                rows.append(row)
                if on_run is not None:
                    on_run(row)
    return rows


def read_sweep_csv(path: str | os.PathLike[str]) -> list[dict]:
    """Rows of a sweep CSV with numbers parsed (``solved_at_step`` may be ``None``)."""
    ints = {"k", "heads", "train_graphs", "test_graphs", "steps", "batch_size", "graphs_seen"}
    rows = []
    with Path(path).open(newline="") as handle:
        for raw in csv.DictReader(handle):
            row: dict = {}
            for key, value in raw.items():
                if key == "model":
                    row[key] = value
                elif key == "solved_at_step":
                    row[key] = int(value) if value else None
                else:
                    row[key] = int(value) if key in ints else float(value)
            rows.append(row)
    return rows


def plot_sweep(
    rows: Sequence[dict],
    path: str | os.PathLike[str],
    size_inches: tuple[float, float] = (7.0, 4.5),
    dpi: int = 100,
) -> Path:
    """Train accuracy (solid) and test accuracy (dashed) against k, one colour per model.

    A dotted line marks chance, :math:`1/k`.

    The figure is ``size_inches × dpi`` pixels (700 × 450 by default), drawn with the Agg
    backend, so it needs no display.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=size_inches, dpi=dpi)
    axes = figure.add_subplot()
    labels = {"gat": "GAT", "gatv2": "GATv2"}
    seen = []
    for row in rows:
        key = (row["model"], row["heads"])
        if key not in seen:
            seen.append(key)
    for index, (model, heads) in enumerate(seen):
        mine = sorted((r for r in rows if (r["model"], r["heads"]) == (model, heads)), key=_k)
        ks = [r["k"] for r in mine]
        colour = f"C{index}"
        name = f"{labels.get(model, model)} {heads}h"
        axes.plot(ks, [100 * r["train_accuracy"] for r in mine], "o-", color=colour, label=name)
        axes.plot(
            ks,
            [100 * r["test_accuracy"] for r in mine],
            "x--",
            color=colour,
            alpha=0.6,
            label=f"{name} (test)",
        )
    all_ks = sorted({r["k"] for r in rows})
    axes.plot(all_ks, [100 / k for k in all_ks], ":", color="grey", label="chance (1/k)")
    axes.set_xlabel("k (dictionary size)")
    axes.set_ylabel("accuracy over queries (%)")
    axes.set_ylim(0, 102)
    axes.set_title("DictionaryLookup: train (solid) and test (dashed) accuracy")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    figure.subplots_adjust(left=0.09, right=0.74, bottom=0.12, top=0.91)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # No bbox_inches="tight": the file keeps exactly the requested pixel size.
    figure.savefig(path, format="png", dpi=dpi)
    return path


def _k(row: dict) -> int:
    return row["k"]
