"""Figure library: every static/interactive figure on synthetic data in the reproduce schema, saving, report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from PIL import Image

from oicsr_lab import plots as P
from oicsr_lab.errors import ConfigError
from oicsr_lab.plots.style import REG_LOOKS, order_regs, reg_style

import synthetic as S

REGS4 = ["l2", "gl", "l1bn", "oicsr_gl"]
LABELS4 = ["L2", "GL", "L1-BN", "OICSR-GL"]


@pytest.fixture(scope="module")
def energies():
    """ResNet-20 sized energies (9 groups), JSON round-tripped with sorted keys like atomic_write_json."""
    return json.loads(json.dumps(S.synthetic_energies(depth=20), sort_keys=True))


@pytest.fixture(scope="module")
def sweep():
    return S.synthetic_sweep()


@pytest.fixture(scope="module")
def plans():
    return json.loads(json.dumps(S.synthetic_plans(depth=20), sort_keys=True))


def _data_lines(ax):
    """Lines of an axes that carry data (not reference lines without a label)."""
    return [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]


# ---------------------------------------------------------------- style
def test_every_regulariser_has_a_distinct_colour_and_marker():
    colours = [s.color for s in REG_LOOKS.values()]
    markers = [s.marker for s in REG_LOOKS.values()]
    assert len(set(colours)) == len(colours) == 6 and len(set(markers)) == 6
    assert reg_style("mystery") == reg_style("mystery")  # stable fallback
    assert order_regs(["oicsr_gl", "zz", "l2", "gl"]) == ["l2", "gl", "oicsr_gl", "zz"]


# ---------------------------------------------------------------- Figure 3
def test_default_layer_is_the_last_conv1_in_network_order(energies):
    assert P.default_layer(energies) == "layer3.2.conv1"
    odd = {"runs": {"l2": {"layer3.9.conv1": [1.0], "layer3.10.conv1": [1.0], "layer3.10.conv2": [1.0]}}}
    assert P.default_layer(odd) == "layer3.10.conv1"
    assert P.default_layer({"l2": {"features.3": [1.0], "features.10": [2.0]}}) == "features.10"


def test_static_energy_distribution(energies):
    fig = P.static_energy_distribution(energies)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    lines = _data_lines(ax)
    assert [ln.get_label() for ln in lines] == LABELS4
    assert [t.get_text() for t in ax.get_legend().get_texts()] == LABELS4
    for ln in lines:  # sorted descending, normalised to the layer max
        y = ln.get_ydata()
        assert len(y) == 64 and y[0] == pytest.approx(1.0) and np.all(np.diff(y) <= 1e-12)
    assert "layer3.2.conv1" in ax.get_title(loc="left") and ax.get_xlabel() and ax.get_ylabel()
    log = P.static_energy_distribution(energies, layer="layer2.0.conv1", regs=["l2", "oicsr_gl"], log=True,
                                       normalize="none", source="out_energies")
    assert log.axes[0].get_yscale() == "log" and len(_data_lines(log.axes[0])) == 2


def test_energy_errors_are_clear(energies):
    with pytest.raises(ConfigError, match="no layer pair named"):
        P.static_energy_distribution(energies, layer="nope")
    with pytest.raises(ConfigError, match="not in the data"):
        P.static_energy_distribution(energies, regs=["growl"])
    with pytest.raises(ConfigError, match="normalize"):
        P.interactive_energy_distribution(energies, normalize="bogus")
    for empty in ({}, {"runs": {}}, {"runs": {"l2": {}}}, None):
        with pytest.raises(ConfigError):
            P.static_energy_distribution(empty)


def test_interactive_energy_distribution(energies):
    fig = P.interactive_energy_distribution(energies, log=True)
    assert [t.name for t in fig.data] == LABELS4
    assert all("channel #" in t.hovertemplate for t in fig.data)
    assert fig.layout.yaxis.type == "log" and len(fig.data[0].x) == 64


def test_energy_grid_small_multiples(energies):
    n = len(P.layer_names(energies))
    fig = P.static_energy_grid(energies, regs=["l2", "oicsr_gl"])
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == n == 9 and all(len(_data_lines(ax)) == 2 for ax in visible)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["L2", "OICSR-GL"]
    ifig = P.interactive_energy_grid(energies)
    assert len(ifig.data) == n * 4
    assert [t.name for t in ifig.data if t.showlegend] == LABELS4


# ---------------------------------------------------------------- Figure 4
def test_static_accuracy_vs_flops(sweep):
    fig = P.static_accuracy_vs_flops(sweep)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title(loc="left") for ax in axes] == ["resnet56", "vgg16_bn"]
    for ax in axes:
        lines = _data_lines(ax)
        assert [ln.get_label() for ln in lines] == LABELS4
        assert max(lines[0].get_xdata()) == pytest.approx(50)  # x in percent
        assert 10 < max(lines[0].get_ydata()) <= 100  # accuracy in percent
        assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 4  # 2 seeds -> bands
    assert "FLOPs pruned (%)" in axes[0].get_xlabel()


def test_accuracy_own_criteria_dashed_and_single_seed(sweep):
    one = sweep[sweep["seed"] == 0]
    fig = P.static_accuracy_vs_flops(one, models=["resnet56"], show_own_criteria=True, dense_acc=0.93)
    ax = fig.axes[0]
    labels = [ln.get_label() for ln in _data_lines(ax)]
    assert "GL (out energy)" in labels and "L1-BN (BN |γ|)" in labels and len(labels) == 7
    dashed = [ln for ln in _data_lines(ax) if "(" in ln.get_label()]
    assert all(ln.get_linestyle() != "-" for ln in dashed)
    assert not any(isinstance(c, PolyCollection) for c in ax.collections)  # one seed: no band
    curves = P.accuracy_curves(one, criterion="out")
    assert set(curves["reg"]) == {"l2", "gl"}


def test_interactive_accuracy_vs_flops(sweep):
    fig = P.interactive_accuracy_vs_flops(sweep, regs=["gl", "oicsr_gl"])
    lines = [t for t in fig.data if t.fill is None]
    bands = [t for t in fig.data if t.fill == "toself"]
    assert [t.name for t in lines] == ["GL", "OICSR-GL"] * 2 and len(bands) == 4
    assert "top-1" in lines[0].hovertemplate and "n=" in lines[0].hovertemplate


def test_accuracy_errors_and_csv_path(sweep, tmp_path):
    with pytest.raises(ConfigError, match="empty"):
        P.static_accuracy_vs_flops(sweep.iloc[0:0])
    with pytest.raises(ConfigError, match="missing column"):
        P.static_accuracy_vs_flops(sweep.drop(columns="acc_before_retrain"))
    with pytest.raises(ConfigError, match="criterion"):
        P.static_accuracy_vs_flops(sweep, criterion="random")
    with pytest.raises(ConfigError, match="model"):
        P.interactive_accuracy_vs_flops(sweep, models=["alexnet"])
    with pytest.raises(ConfigError, match="does not exist"):
        P.static_accuracy_vs_flops(tmp_path / "missing.csv")
    sweep.to_csv(tmp_path / "sweep.csv", index=False)
    assert len(P.interactive_accuracy_vs_flops(tmp_path / "sweep.csv").data) > 0


# ---------------------------------------------------------------- Algorithm 1 outcome
def test_layer_ratios_frame_and_static(plans):
    df = P.layer_ratios_frame(plans)
    assert set(df.columns) >= {"reg", "criterion", "normalize", "ratio", "layer", "pruned"}
    assert len(df) == 4 * 2 * 3 * 9
    fig = P.static_layer_ratios(plans, 0.3, cap=0.5)
    axes = fig.axes
    assert len(axes) == 2  # layer_max and layer_sum panels
    assert [ax.get_title(loc="left") for ax in axes] == ["normalize = layer_max", "normalize = layer_sum"]
    assert all([ln.get_label() for ln in _data_lines(ax)] == LABELS4 for ax in axes)
    ticks = [t.get_text() for t in axes[-1].get_xticklabels()]
    assert ticks[0] == "layer1.0.conv1" and ticks[-1] == "layer3.2.conv1" and len(ticks) == 9
    y = _data_lines(axes[0])[0].get_ydata()
    assert 0 <= min(y) and max(y) <= 50  # percent of channels, under the 50% cap
    one = P.static_layer_ratios(plans, 30, normalize="layer_sum", regs=["oicsr_gl"])  # percent accepted
    assert len(one.axes) == 1 and len(_data_lines(one.axes[0])) == 1


def test_layer_ratios_interactive_and_errors(plans):
    fig = P.interactive_layer_ratios(plans, 0.5)
    assert len(fig.data) == 8 and [t.name for t in fig.data if t.showlegend] == LABELS4
    assert "channels removed" in fig.data[0].hovertemplate
    with pytest.raises(ConfigError, match="available"):
        P.static_layer_ratios(plans, 0.42)
    with pytest.raises(ConfigError, match="normalize"):
        P.static_layer_ratios(plans, 0.3, normalize="per_element")
    with pytest.raises(ConfigError):
        P.static_layer_ratios({}, 0.3)
    broken = json.loads(json.dumps(plans))
    broken["gl"]["out_in/layer_max"]["0.5"] = {"error": "unreachable under the cap"}  # as sweep writes it
    regs_at_half = {t.name for t in P.interactive_layer_ratios(broken, 0.5, normalize="layer_max").data}
    assert regs_at_half == {"L2", "L1-BN", "OICSR-GL"}
    long = pd.DataFrame({"reg": ["gl", "gl"], "ratio": [0.3, 0.3], "group": ["a.1", "a.2"], "layer_ratio": [0.1, 0.4]})
    assert len(_data_lines(P.static_layer_ratios(long, 0.3).axes[0])) == 1


# ---------------------------------------------------------------- Figure 2 pipeline
def test_pipeline_static_and_interactive():
    pipe = S.synthetic_pipeline()
    fig = P.static_pipeline(pipe)
    ax_acc, ax_fl = fig.axes[:2]
    assert len(ax_acc.get_lines()) == 6 and len(ax_fl.get_lines()) == 3
    assert ax_fl.get_xticklabels()[1].get_text() == "1\n10%"
    assert "%" in ax_acc.get_ylabel() and "M" in ax_fl.get_ylabel()
    ifig = P.interactive_pipeline(pipe, regs=["oicsr_gl"])
    assert [t.name for t in ifig.data] == ["OICSR-GL, before retraining", "OICSR-GL, after retraining",
                                          "OICSR-GL, FLOPs"]
    with pytest.raises(ConfigError, match="missing column"):
        P.static_pipeline(pipe.drop(columns="acc_after_retrain"))


# ---------------------------------------------------------------- Table 1
def test_table1_html_and_figure():
    t1 = S.synthetic_table1()
    html = P.table1_html(t1)
    assert html.count('class="published"') == 4 and html.count('class="computed"') == 2
    assert "76.53" in html and "37.3%" in html and "4,089" in html
    fig = P.static_table1(t1)
    texts = [c.get_text().get_text() for c in fig.axes[0].tables[0].get_celld().values()]
    assert "published" in texts and "computed" in texts and "76.53" in texts
    split = {"published": [r for r in t1["rows"] if r["source"] == "published"],
             "computed": [r for r in t1["rows"] if r["source"] == "computed"]}
    assert len(P.table1_frame(split)) == 6 and len(P.table1_frame(pd.DataFrame(t1["rows"]))) == 6
    with pytest.raises(ConfigError, match="published"):
        P.table1_html([{"model": "x", "top1": 1.0}])
    # the reproduce shape: provenance under "label", nested per-layer data, an unreachable target
    rows = [{"label": "published", "method": "OICSR-GL", "top1": 76.53, "flops_m": 2563, "flops_pruned": 0.373},
            {"label": "computed", "method": "Algorithm 1", "flops_m": 2560.2, "flops_pruned": 0.3731,
             "widths": {"layer1.0.conv1": 30}, "layer_ratios": {"layer1.0.conv1": 0.5}, "top1": None},
            {"label": "computed", "method": "Algorithm 1", "error": "unreachable under the 50% cap"}]
    frame = P.table1_frame({"rows": rows, "flops_convention": "MACs of Conv and Linear"})
    assert "widths" not in frame.columns and "layer_ratios" not in frame.columns
    html = P.table1_html({"rows": rows, "flops_convention": "MACs of Conv and Linear"})
    assert "2,560" in html and "unreachable" in html and "MACs of Conv and Linear" in html
    texts = [c.get_text().get_text() for c in P.static_table1(rows).axes[0].tables[0].get_celld().values()]
    assert "Note" in texts and any("unreachable" in t for t in texts)
    with pytest.raises(ConfigError):
        P.static_table1({"rows": []})


# ---------------------------------------------------------------- saving and the report
def test_save_figure_formats(energies, tmp_path):
    written = P.save_figure(P.static_energy_distribution(energies), tmp_path / "out" / "fig3")
    assert [p.name for p in written] == ["fig3.png", "fig3.pdf", "fig3.svg"]
    assert written[2].read_text().lstrip().startswith("<?xml")
    with Image.open(written[0]) as im:
        im.verify()
        assert im.size[0] > 400
    assert written[1].read_bytes()[:4] == b"%PDF"
    ifig = P.interactive_energy_distribution(energies)
    (html_path,) = P.save_figure(ifig, tmp_path / "out" / "fig3.html")
    text = html_path.read_text(encoding="utf-8")
    assert html_path.name == "fig3.html" and "OICSR-GL" in text and "channel #" in text
    assert 'src="plotly.min.js"' in text and "cdn.plot.ly" not in text
    js = tmp_path / "out" / "plotly.min.js"
    assert js.stat().st_size > 1_000_000
    (inline,) = P.save_figure(ifig, tmp_path / "inline" / "fig3", plotlyjs="inline")
    assert not (tmp_path / "inline" / "plotly.min.js").exists() and inline.stat().st_size > 1_000_000
    assert not list(tmp_path.rglob("*.tmp"))
    with pytest.raises(ConfigError, match="expected a matplotlib Figure"):
        P.save_figure("not a figure", tmp_path / "x")
    with pytest.raises(ConfigError, match="offline"):
        P.save_figure(ifig, tmp_path / "x", plotlyjs="cdn")


def test_write_report(energies, sweep, tmp_path):
    P.save_figure(P.static_energy_distribution(energies), tmp_path / "fig3")
    P.save_figure(P.interactive_energy_distribution(energies), tmp_path / "fig3")
    P.save_figure(P.interactive_accuracy_vs_flops(sweep), tmp_path / "fig4")
    figures = [("Figure 3: channel energy", "fig3"), ("Figure 4: accuracy", "fig4", "Interactive only.")]
    out = P.write_report(tmp_path, S.synthetic_summary(), figures,
                         tables=[("Table 1", P.table1_html(S.synthetic_table1()))])
    page = out.read_text(encoding="utf-8")
    assert out.name == "index.html"
    for needle in ("Figure 3: channel energy", "Figure 4: accuracy", '<img src="fig3.png"', 'href="fig3.pdf"',
                   'href="fig3.html"', '<iframe src="fig4.html"', "1 h 02 min 05 s", "cifar10-sample",
                   "plotly", "lambda", 'class="computed"'):
        assert needle in page, needle
    assert "http://" not in page.replace('http://www.w3.org', '') and "https://" not in page and "<script" not in page
    # the first figure comes before any block of configuration JSON, which is collapsed after the figures
    first_figure, details = page.index("<figure"), page.index('<details id="run-details">')
    assert "<pre>" not in page[:first_figure] and "lambda" not in page[:first_figure]
    assert details > page.rindex("</figure>") and "lambda" in page[details:]
    assert "1 h 02 min 05 s" in page[:first_figure]
    inline = P.write_report(tmp_path, {}, figures[:1], inline_images=True).read_text(encoding="utf-8")
    assert "data:image/png;base64," in inline and "not recorded" in inline
    with pytest.raises(ConfigError, match="no figures"):
        P.write_report(tmp_path, {}, [])
    with pytest.raises(ConfigError, match="save_figure"):
        P.write_report(tmp_path, {}, [("Missing", "nope")])


def test_no_pyplot_figures_are_left_open(energies):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    P.static_energy_distribution(energies)
    assert plt.get_fignums() == before


def test_pipeline_over_seeds_draws_means_and_intervals():
    """pipeline.csv with a seed column (--pipeline-seeds all): one line per method at the seed mean, 95 %
    t-interval bars (static and plotly), the interval matches scipy's, and one seed draws no bars."""
    from scipy import stats

    from oicsr_lab.plots import pipeline_summary

    rng = np.random.default_rng(0)
    pipe = pd.concat([S.synthetic_pipeline(seed=s).assign(seed=s) for s in range(3)], ignore_index=True)
    for col in ("acc_before_retrain", "acc_after_retrain"):  # seeds differ
        pipe[col] += rng.normal(0, 0.01, len(pipe))
    summ = pipeline_summary(pipe)
    assert len(summ) == len(S.synthetic_pipeline()) and set(summ["n"]) == {3}
    g = pipe[(pipe["reg"] == "gl") & (pipe["step"] == 3)]["acc_after_retrain"] * 100
    lo, hi = stats.t.interval(0.95, len(g) - 1, loc=g.mean(), scale=stats.sem(g))
    row = summ[(summ["reg"] == "gl") & (summ["step"] == 3)].iloc[0]
    assert row["after"] == pytest.approx(g.mean()) and (row["after_lo"], row["after_hi"]) == pytest.approx((lo, hi))
    fig = P.static_pipeline(pipe)
    ax_acc, ax_fl = fig.axes[:2]
    assert len(ax_acc.get_lines()) == 6 and len(ax_fl.get_lines()) == 3  # means only, not one line per seed
    assert len(ax_acc.containers) == 6 and "3 seeds" in ax_acc.get_title(loc="left")
    ifig = P.interactive_pipeline(pipe)
    acc = [t for t in ifig.data if "retraining" in t.name]
    assert len(acc) == 6 and all(t.error_y.array is not None for t in acc)
    assert all(np.all(np.isfinite(t.error_y.array)) and max(t.error_y.array) > 0 for t in acc)
    one = P.static_pipeline(pipe[pipe["seed"] == 0])
    assert not one.axes[0].containers and "seeds" not in one.axes[0].get_title(loc="left")
    assert all(t.error_y.array is None for t in P.interactive_pipeline(pipe[pipe["seed"] == 0]).data)


def test_pipeline_finetune_step_has_no_before_point():
    """The fine-tune stage prunes nothing, so the figure draws no 'before retraining' point for it."""
    from oicsr_lab.plots import pipeline_frame

    rows = [{"reg": "gl", "step": 0, "stage": "dense", "acc_before_retrain": 70, "acc_after_retrain": 70,
             "flops": 40e6},
            {"reg": "gl", "step": 1, "stage": "prune", "acc_before_retrain": 50, "acc_after_retrain": 65,
             "flops": 30e6},
            {"reg": "gl", "step": 2, "stage": "finetune", "acc_before_retrain": 65, "acc_after_retrain": 68,
             "flops": 30e6}]
    df = pipeline_frame(rows)
    assert df["before"].isna().tolist() == [False, False, True] and df["after"].tolist() == [70, 65, 68]


def test_vector_figures_embed_truetype_and_carry_the_stamp(tmp_path):
    """PDF with TrueType (FontFile2, no Type 3), SVG with text as text, both stamped; column sizes written."""
    from oicsr_lab.plots import save_figure
    from oicsr_lab.plots.protocol import static_protocol_fig4

    before = {"seeds": [0, 1], "ratios": [0.0, 0.3],
              "cells": {"oicsr_gl": {"best (val)": {0.0: {"mean": 80, "lo": 78, "hi": 82, "n": 2},
                                                    0.3: {"mean": 60, "lo": 55, "hi": 65, "n": 2}}},
                        "l2": {"random": {0.0: {"mean": 80, "lo": None, "hi": None, "n": 1},
                                          0.3: {"mean": 20, "lo": None, "hi": None, "n": 1}}}}}
    fig = static_protocol_fig4(before, classes=10)
    paths = save_figure(fig, tmp_path / "f4", stamp={"oicsr-lab": "9.9", "config": "abc123"}, columns=True)
    names = sorted(p.name for p in paths)
    assert names == sorted(["f4.png", "f4.pdf", "f4.svg", "f4_1col.pdf", "f4_1col.svg", "f4_2col.pdf", "f4_2col.svg"])
    pdf = (tmp_path / "f4.pdf").read_bytes()
    assert b"FontFile2" in pdf and b"/Type3" not in pdf and b"config=abc123" in pdf
    svg = (tmp_path / "f4.svg").read_text()
    assert "config=abc123" in svg and "<text" in svg
    import re

    from matplotlib.figure import Figure  # noqa: F401  (widths of the column versions)
    w1 = float(re.search(r'width="([0-9.]+)pt"', (tmp_path / "f4_1col.svg").read_text()).group(1))
    w2 = float(re.search(r'width="([0-9.]+)pt"', (tmp_path / "f4_2col.svg").read_text()).group(1))
    assert w2 > 1.6 * w1


def test_criteria_panel_draws_one_line_per_criterion_per_network():
    """The criteria panel: a panel per regulariser, every criterion a line, floors grey and no criterion grey."""
    import pandas as pd
    from matplotlib.colors import to_rgb

    from oicsr_lab.plots import static_criteria_panel

    crits = ["out_in", "out", "l1", "fpgm", "taylor", "hrank", "apoz", "mean_activation", "in", "bn_gamma",
             "random", "uniform"]
    rows = [{"reg": reg, "criterion": c, "seed": s, "ratio": r, "acc_before_retrain": 90 - 100 * r * (1 + i / 10) + s}
            for reg in ("l2", "oicsr_gl") for i, c in enumerate(crits) for s in (0, 1) for r in (0.0, 0.3, 0.5)]
    fig = static_criteria_panel(pd.DataFrame(rows))
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title(loc="left") for ax in axes] == ["L2 network (2 seeds)", "OICSR-GL network (2 seeds)"]
    for ax in axes:
        lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 3]
        assert len(lines) == len(crits)
        greys = [ln for ln in lines if len(set(to_rgb(ln.get_color()))) == 1]
        assert len(greys) == 2  # random and uniform only
        assert ax.collections  # the interval bands of two seeds
    # the band is the 95 % Student-t interval of the two seeds (values m and m + 1: half-width t(0.975, 1) * 0.5)
    from scipy import stats

    half = stats.t.ppf(0.975, 1) * 0.5
    ys = axes[0].collections[0].get_paths()[0].vertices[:, 1]  # out_in on the L2 network: 90.5, 60.5, 40.5
    assert max(ys) == pytest.approx(90.5 + half) and min(ys) == pytest.approx(40.5 - half)


def test_finetuned_with_one_ratio_draws_dodged_error_bars_and_names_the_reference():
    """The demo fine-tunes at one ratio: one error bar per method (interval drawn, methods side by side near that
    ratio), an x range around it, and the dashed line labelled as the caller says."""
    import matplotlib.pyplot as plt
    import numpy as np

    from oicsr_lab.plots.protocol import static_finetuned

    cell = {"l2": (78.0, 76.0, 80.0), "oicsr_gl": (80.0, 79.0, 81.0)}
    after = {"rows": [{"reg": r, "ratio": 0.5, "after": {"mean": m, "lo": lo, "hi": hi, "n": 3}}
                      for r, (m, lo, hi) in cell.items()],
             "dense": {"mean": 86.5, "lo": 86.0, "hi": 87.0, "n": 3}, "ratios": [0.5]}
    fig = static_finetuned(after, dense_label="dense (shipped L2)")
    ax = fig.axes[0]
    bars = [c for c in ax.collections if c.__class__.__name__ == "LineCollection"]
    assert len(bars) == 2  # one vertical interval per method
    spans = sorted((float(seg[0][1]), float(seg[1][1])) for b in bars for seg in b.get_segments())
    assert spans == [(76.0, 80.0), (79.0, 81.0)]
    centres = sorted(float(b.get_segments()[0][0][0]) for b in bars)
    assert centres[0] < 50 < centres[1] and np.ptp(centres) < 3
    assert ax.get_xlim() == (40.0, 60.0)
    assert "dense (shipped L2)" in [t.get_text() for t in fig.legends[0].get_texts()]
    plt.close(fig)


def test_pipeline_step_ticks_name_the_shared_flops_target():
    """Each step's tick carries its FLOPs target when every regulariser shares it (read without .agg: an array-valued
    aggregation raised "Must produce aggregated value" on pandas 3.0.6 and lost the GPU run its pipeline figure)."""
    from oicsr_lab.plots.pipeline import _step_ticks, pipeline_frame

    rows = [{"reg": reg, "step": k, "target_ratio": t, "achieved_ratio": t, "acc_before_retrain": 80.0,
             "acc_after_retrain": 85.0, "flops": 4e7 * (1 - t), "stage": st, "seed": seed}
            for reg in ("gl", "oicsr_gl") for seed in (0, 1)
            for k, t, st in ((0, 0.0, "dense"), (1, 0.1, "prune"), (2, 0.1, "finetune"))]
    steps, labels = _step_ticks(pipeline_frame(rows, None))
    assert list(steps) == [0, 1, 2] and labels == ["0\n0%", "1\n10%", "2\n10%"]
    rows[1] = dict(rows[1], target_ratio=0.2)  # one regulariser's step 1 aims elsewhere: plain step numbers
    assert _step_ticks(pipeline_frame(rows, None))[1] == ["0", "1", "2"]
