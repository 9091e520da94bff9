"""Live explorers in the kernel (no browser): figure data and readouts follow the controls.

Small model (resnet20, width 0.25, random weights with randomised BN so energies and plans
differ per run), the cifar10-sample test split cut to 100 images for accuracy.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn as nn

from oicsr_lab.data import Split, load_dataset
from oicsr_lab.errors import ConfigError
from oicsr_lab.flops import count_flops
from oicsr_lab.groups import find_groups
from oicsr_lab.importance import NORMALIZATIONS, channel_energy
from oicsr_lab.models import build_model
from oicsr_lab.pruning import global_greedy_plan, prune
from oicsr_lab.train import evaluate
from oicsr_lab.widgets import ChannelViewer, EnergyExplorer, PruningExplorer
from oicsr_lab.widgets._runner import LatestOnly

from nets import randomize_bn

N_EVAL = 100


def _random_model(seed: int) -> nn.Module:
    """resnet20 at width 0.25 with random BN affine and running statistics."""
    torch.manual_seed(seed)
    return randomize_bn(build_model("resnet20", 10, width=0.25), seed)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def data():
    return load_dataset("cifar10-sample")


@pytest.fixture(scope="module")
def models():
    return {"l2": _random_model(0), "gl": _random_model(1), "oicsr_gl": _random_model(2)}


@pytest.fixture(scope="module")
def x():
    return torch.zeros(1, 3, 32, 32)


@pytest.fixture(scope="module")
def groups(models, x):
    return find_groups(models["l2"], x)


@pytest.fixture()
def explorer(models, data, x, groups):
    return PruningExplorer(models, data, x, eval_images=N_EVAL, groups=groups, async_mode="manual", batch_size=50,
                           precision="fp32")


def _direct_acc(model: nn.Module, plan, data, split: Split) -> float:
    """Accuracy of the physically pruned model, computed without the widget."""
    return evaluate(prune(model, plan), data, split=split)["acc"]


# ---------------------------------------------------------------------- pruning explorer
def test_pruning_bars_shrink_and_flops_match_the_plan(explorer, models, groups, x):
    names = [g.name for g in explorer.lib.group_list]
    sizes = [g.size for g in explorer.lib.group_list]
    assert list(explorer.fig.data[1].y) == sizes  # ratio 0: dense
    assert all(r["achieved_ratio"] == 0.0 and r["flops"] == r["flops_before"] for r in explorer.readout.values())
    report = count_flops(models["gl"], x)
    scores = channel_energy(models["gl"], groups, "out_in", "layer_max")
    totals = {reg: [sum(sizes)] for reg in explorer.regs}
    for ratio in (0.1, 0.25, explorer.max_ratio):
        explorer.set_ratio(ratio)
        for reg, trace in zip(explorer.regs, explorer.fig.data[1:]):
            plan = explorer.plans[reg]
            assert list(trace.y) == [len(plan.keep[n]) for n in names]
            r = explorer.readout[reg]
            assert r["achieved_ratio"] == plan.achieved_ratio >= ratio - 1e-9
            assert r["flops"] == plan.flops_after and r["params"] == plan.params_after
            assert r["flops"] == pytest.approx(r["flops_before"] * (1 - r["achieved_ratio"]), rel=1e-9)
            totals[reg].append(sum(trace.y))
        direct = global_greedy_plan(models["gl"], groups, scores, ratio, report=report)
        assert explorer.plans["gl"].keep == direct.keep and explorer.readout["gl"]["flops"] == direct.flops_after
        assert f"{explorer.readout['gl']['flops'] / 1e6:.2f}" in explorer.readout_html.value
    for seq in totals.values():  # kept channels shrink as the ratio grows
        assert all(a >= b for a, b in zip(seq, seq[1:])) and seq[-1] < seq[0]
    assert len({tuple(explorer.plans[r].keep["layer3.0.conv1"]) for r in explorer.regs}) > 1  # runs differ


def test_pruning_extremes_normalisations_and_toggles(explorer):
    explorer.set_ratio(0.0)
    assert all(r["achieved_ratio"] == 0.0 for r in explorer.readout.values())
    explorer.set_ratio(10.0)  # clamped to the maximum reachable ratio
    assert explorer.ratio == pytest.approx(explorer.max_ratio)
    assert 0.3 < explorer.max_ratio < 0.5
    assert all(r["achieved_ratio"] >= explorer.max_ratio - 1e-9 for r in explorer.readout.values())
    for norm in NORMALIZATIONS:
        explorer.set_normalize(norm)
        assert all(p.normalize == norm for p in explorer.plans.values())
        assert explorer.last_update_s < 1.0
    explorer.set_regularizers(["oicsr_gl"])
    assert list(explorer.readout) == ["oicsr_gl"]
    assert [t.visible for t in explorer.fig.data[1:]] == [False, False, True]
    on, off = explorer.toggles["oicsr_gl"], next(t for r, t in explorer.toggles.items() if r != "oicsr_gl")
    assert (on.icon, on.style.text_decoration, off.icon,
            off.style.text_decoration) == ("check", "none", "", "line-through")
    assert on.style.text_color != off.style.text_color  # a hidden run's button is grey, not its colour
    with pytest.raises(ConfigError):
        explorer.set_regularizers(["nope"])


def test_criterion_menu_lists_the_criteria_registry(explorer, models, data, x, groups):
    """The dropdown holds exactly the registry's names (#17): a criterion added but not listed fails here."""
    from oicsr_lab.criteria import calibration_data, names

    assert [v for _, v in explorer.criterion_dropdown.options] == list(names())  # data with a training split
    assert explorer.criterion == "out_in" and "4 batches of the train split" in explorer.criterion_dropdown.tooltip
    explorer.set_ratio(0.3)
    explorer.set_criterion("l1")
    want = global_greedy_plan(models["gl"], groups, channel_energy(models["gl"], groups, "l1"), 0.3,
                              max_layer_ratio=0.5)
    assert all(p.criterion == "l1" for p in explorer.plans.values())
    assert explorer.plans["gl"].keep == want.keep and "criterion=l1" in explorer.readout_html.value
    with pytest.raises(ConfigError, match="not in the menu"):
        explorer.set_criterion("magic")

    bare = PruningExplorer({"l2": models["l2"]}, data, x, eval_images=N_EVAL, groups=groups, async_mode="manual",
                           accuracy=False, calibration=None)
    assert [v for _, v in bare.criterion_dropdown.options] == list(names(needs_data=False))
    assert all(n in bare.criterion_dropdown.tooltip for n in names(needs_data=True))  # omitted, and says why
    with pytest.raises(ConfigError, match="not in the menu"):
        PruningExplorer({"l2": models["l2"]}, data, x, groups=groups, async_mode="manual", calibration=None,
                        criterion="taylor")
    calib = calibration_data(data, "train", batches=1, batch_size=16)
    given = PruningExplorer({"l2": models["l2"]}, data, x, eval_images=N_EVAL, groups=groups, async_mode="manual",
                            accuracy=False, calibration=calib)
    assert [v for _, v in given.criterion_dropdown.options] == list(names())
    given.set_ratio(0.3)
    shown = []
    given.status.observe(lambda c: shown.append(c["new"]), names="value")
    given.set_criterion("taylor")
    assert given.plans["l2"].criterion == "taylor" and given.plans["l2"].achieved_ratio > 0.25
    assert any("scoring channels by taylor" in v for v in shown) and given.status.value == ""  # said while it ran
    for ex in (bare, given):
        ex.close()


def test_accuracy_stale_requests_are_dropped(explorer, models, data):
    explorer.set_ratio(0.1)
    gen1, req1 = explorer.generation, explorer.accuracy_request()
    assert explorer.computing and "computing" in explorer.readout_html.value
    explorer.set_ratio(0.3)
    gen2, req2 = explorer.generation, explorer.accuracy_request()
    assert gen2 > gen1
    assert explorer._runner.run(gen1, req1) is False  # stale before it starts: never computed nor shown
    assert all(r["acc"] is None for r in explorer.readout.values())
    assert explorer._runner.run(gen2, req2) is True
    assert not explorer.computing
    for reg, r in explorer.readout.items():
        expected = _direct_acc(models[reg], explorer.plans[reg], data, explorer.eval_split)
        assert r["acc"] == pytest.approx(expected)
        assert r["acc_dense"] == pytest.approx(evaluate(models[reg], data, split=explorer.eval_split)["acc"])
    explorer.set_ratio(0.1)  # not cached (gen1 was dropped) -> a new request; 0.3 again -> cached
    assert explorer.accuracy_request()
    explorer.set_ratio(0.3)
    assert not explorer.accuracy_request() and not explorer.computing
    assert all(r["acc"] is not None for r in explorer.readout.values())


def test_accuracy_stops_midway_and_reports_partial(explorer):
    explorer.set_ratio(0.2)
    items = explorer.accuracy_request()
    before = dict(explorer.acc_cache)
    assert explorer.compute_accuracy(items, is_stale=lambda: True) is None
    calls = iter(range(1000))
    assert explorer.compute_accuracy(items, is_stale=lambda: next(calls) >= 2) is None  # stale after 2 chunks
    assert explorer.acc_cache == before
    partial = []
    done = explorer.compute_accuracy(items, on_partial=partial.append)
    assert done and set(done) == {k for _, k, _ in items}
    assert partial and all(n == 50 for d in partial for _, n, _ in d.values())  # 100 images in chunks of 50
    assert all(0 <= acc <= 100 and 0 < half < 50 for d in partial for acc, _, half in d.values())


def test_the_background_worker_never_traces(explorer, monkeypatch):
    """fx tracing (BN folding) patches nn.Module.__call__ process-wide: a worker thread tracing while the notebook
    runs a network breaks that network ("module is not installed as a submodule"), so the worker must not fold."""
    import oicsr_lab.inference as inference

    explorer.set_ratio(0.2)
    items = explorer.accuracy_request()
    explorer.acc_cache.clear()
    folded = []
    real = inference.fold_batchnorm
    monkeypatch.setattr(inference, "fold_batchnorm", lambda m: folded.append(m) or real(m))
    worker = explorer._compute_async(items, lambda: False)
    assert worker and folded == []
    explorer.acc_cache.clear()
    kernel = explorer.compute_accuracy(items)  # on the kernel thread folding is fine, and changes nothing
    assert folded and kernel == pytest.approx(worker, abs=1e-9)


def test_tracing_and_the_workers_forward_passes_share_one_lock(explorer, models, x, monkeypatch):
    """A notebook cell that traces (find_groups) while the worker evaluates must wait for the worker's batch, and the
    other way round: both hold oicsr_lab.locks.FX_LOCK (an RLock, so the kernel-thread path may nest them)."""
    from oicsr_lab import inference
    from oicsr_lab.groups import tracer
    from oicsr_lab.locks import FX_LOCK

    seen = []
    real_trace = tracer.GroupTracer.trace
    monkeypatch.setattr(tracer.GroupTracer, "trace", lambda self, *a, **k: seen.append(
        ("trace", FX_LOCK._is_owned())) or real_trace(self, *a, **k))
    real_correct = inference.EvalBatches.correct
    monkeypatch.setattr(inference.EvalBatches, "correct", lambda self, *a: seen.append(
        ("forward", FX_LOCK._is_owned())) or real_correct(self, *a))
    find_groups(models["l2"], x)
    explorer.set_ratio(0.2)
    explorer.acc_cache.clear()
    assert explorer._compute_async(explorer.accuracy_request(), lambda: False)
    assert {kind for kind, _ in seen} == {"trace", "forward"} and all(held for _, held in seen), seen


def test_partial_estimate_shows_its_band_until_the_readout_is_complete(explorer):
    """A running estimate is drawn with ~95 % error bars and labelled '±' in the table; the final value has none."""
    explorer.set_regularizers(["gl"])
    explorer.set_ratio(0.2)
    gen, items = explorer.generation, explorer.accuracy_request()
    explorer._on_start(gen, items)
    key = next(k for reg, k, plan in items if reg == "gl" and plan is not None)
    explorer._publish_partial({key: (61.0, 50, 9.5)})
    i = explorer.regs.index("gl")
    bars = explorer.acc_fig.data[1]
    assert bars.y[i] == 61.0 and bars.error_y.visible and bars.error_y.array[i] == 9.5
    assert "61.0 ± 9.5% on 50 of 100 images" in explorer.readout_html.value
    assert explorer._runner.run(gen, items)
    assert not bars.error_y.visible and bars.y[i] == explorer.readout["gl"]["acc"]
    assert "±" not in explorer.readout_html.value


def test_accuracy_background_thread_keeps_only_latest(models, data, x, groups):
    ex = PruningExplorer({"l2": models["l2"], "oicsr_gl": models["oicsr_gl"]}, data, x, eval_images=N_EVAL,
                         groups=groups, async_mode="thread", debounce_s=0.05, precision="fp32")
    for ratio in (0.05, 0.15, 0.25, 0.35):
        ex.set_ratio(ratio)
        assert ex.last_update_s < 1.0  # the kernel thread never waits for accuracy
    assert ex.wait(30)  # outside a kernel the results reach the widgets when the kernel thread polls (wait)
    assert ex._runner.delivered == ex.generation
    assert ex.ratio == 0.35 and not ex.computing
    for reg, r in ex.readout.items():
        assert r["acc"] == pytest.approx(_direct_acc(models[reg], ex.plans[reg], data, ex.eval_split))
    ex.set_accuracy(False)
    ex.set_ratio(0.2)
    assert not ex.computing and all(r["acc"] is None for r in ex.readout.values())
    ex.close()


def test_widget_values_are_set_on_the_kernel_thread_only(models, data, x, groups):
    """The worker computes; every widget value (readout, bars, progress, status) is set by the kernel thread."""
    import threading

    ex = PruningExplorer({"l2": models["l2"], "oicsr_gl": models["oicsr_gl"]}, data, x, eval_images=N_EVAL,
                         groups=groups, async_mode="thread", debounce_s=0.0, batch_size=20, first_batch=None,
                         precision="fp32")
    setters: list[tuple[str, int]] = []
    for name, w in (("readout", ex.readout_html), ("progress", ex.progress), ("status", ex.status)):
        w.observe(lambda change, name=name: setters.append((name, threading.get_ident())), names="value")
    ex.acc_fig.data[1].on_change(lambda *a: setters.append(("bars", threading.get_ident())), "y")
    ex.set_ratio(0.3)
    assert ex._runner.wait(30)  # the worker is done; nothing it produced is shown before the kernel thread applies it
    assert ex._runner.delivered != ex.generation and ex._ui.pending > 0 and ex.computing
    assert all(r["acc"] is None for r in ex.readout.values())
    assert ex.wait(30) and ex._runner.delivered == ex.generation and not ex.computing
    assert all(r["acc"] is not None for r in ex.readout.values())
    main = threading.get_ident()
    assert {"readout", "progress", "status"} <= {n for n, _ in setters}
    assert all(t == main for _, t in setters), [n for n, t in setters if t != main]
    ex.close()


def test_kernel_thread_runs_posts_in_order_on_its_owner():
    import threading

    from oicsr_lab.widgets._kernel_thread import KernelThread

    class Loop:  # stands in for the kernel's tornado IOLoop: records the scheduled drains
        def __init__(self):
            self.callbacks = []

        def add_callback(self, fn):
            self.callbacks.append(fn)

    for loop in (None, Loop()):
        ui, ran = KernelThread(io_loop=loop), []
        workers = [threading.Thread(target=ui.post, args=(lambda i=i: ran.append((i, threading.get_ident())),))
                   for i in range(3)]
        for w in workers:
            w.start(), w.join()
        assert ran == [] and ui.pending == 3  # nothing runs on the worker threads
        if loop is not None:
            assert len(loop.callbacks) == 1  # one drain scheduled on the kernel loop for the whole batch
            loop.callbacks[0]()
        else:
            assert ui.drain() == 3
        assert [i for i, _ in ran] == [0, 1, 2] and {t for _, t in ran} == {threading.get_ident()}
        ui.post(lambda: ran.append(("now", threading.get_ident())))  # on the owner: at once
        assert ran[-1][0] == "now" and ui.pending == 0
    ui = KernelThread(io_loop=None)
    err = []
    t = threading.Thread(target=lambda: err.append(pytest.raises(RuntimeError, ui.drain)))
    t.start(), t.join()
    assert err  # drain() off the owner thread refuses


def test_latest_only_runner_modes():
    seen, errors = [], []
    r = LatestOnly(lambda req, stale: req * 2, lambda g, res: seen.append((g, res)), mode="sync")
    assert r.submit(3) == 1 and seen == [(1, 6)]
    m = LatestOnly(lambda req, stale: 1 / req, lambda g, res: seen.append(res), mode="manual",
                   on_error=lambda g, e: errors.append(type(e)))
    g1 = m.submit(0)
    assert m.run(g1, 0) is False and errors == [ZeroDivisionError]
    m.submit(4)
    assert m.run_pending() is True and seen[-1] == 0.25
    t = LatestOnly(lambda req, stale: req, lambda g, res: seen.append(res), mode="thread", debounce_s=0.0)
    t.idle_exit_s = 0.05
    t.submit("a")
    assert t.wait(10) and seen[-1] == "a"
    time.sleep(0.3)
    assert t._thread is None  # idle worker exits, so a discarded explorer can be collected
    t.submit("b")
    assert t.wait(10) and seen[-1] == "b"
    with pytest.raises(ConfigError):
        LatestOnly(lambda r, s: r, lambda g, r: None, mode="later")


def test_models_must_share_an_architecture(data, x):
    other = build_model("resnet20", 10, width=0.5)
    with pytest.raises(ConfigError):
        PruningExplorer({"l2": _random_model(0), "gl": other}, data, x, async_mode="manual")


# ---------------------------------------------------------------------- energy explorer
def test_energy_explorer_threshold_ratio_and_click(models, x, groups):
    ex = EnergyExplorer(models, x, groups=groups)
    name = "layer2.1.conv1"
    ex.set_group(name)
    e = channel_energy(models["l2"], groups, "out_in", "layer_max")[name].numpy()
    trace = ex.fig.data[0]
    assert np.allclose(trace.y, np.sort(e)) and sorted(trace.customdata) == list(range(len(e)))
    t = float(np.median(e))
    ex.set_threshold(t)
    k = int((e < t).sum())
    assert ex.readout["k"] == k and ex.readout["n"] == len(e)
    assert f"{k} of {len(e)} channels below threshold" in ex.readout_html.value
    assert list(trace.marker.symbol).count("x") == k
    sizes = [g.size for g in ex.lib.group_list]
    ov = ex.overview.data
    assert [a + b for a, b in zip(ov[0].y, ov[1].y)] == sizes
    assert ov[1].y[ex.names.index(name)] == k
    ex.set_overlay(True)
    assert all(t.visible for t in ex.fig.data) and set(ex.readout["below"]) == set(models)
    ex.set_threshold(0.0)
    assert ex.readout["k"] == 0 and sum(ex.readout["below_per_group"].values()) == 0
    ex.set_ratio(0.5)
    total = sum(ex.readout["below_per_group"].values())
    assert total == sum(sizes) // 2
    ex.set_ratio(1.0)
    assert sum(ex.readout["below_per_group"].values()) == sum(sizes)

    class Points:
        point_inds = [2]

    ex._on_overview_click(ex.overview.data[0], Points())
    assert ex.group_dropdown.value == ex.names[2] == ex.readout["group"]
    for norm in NORMALIZATIONS:
        ex.set_normalize(norm)
        assert ex.readout["n"] == ex.lib.by_name[ex.names[2]].size
    ex.set_regularizer("oicsr_gl")
    assert ex.readout["reg"] == "oicsr_gl"


# ---------------------------------------------------------------------- channel viewer
def test_channel_viewer_heatmaps_match_weights(models, groups):
    model = models["gl"]
    cv = ChannelViewer(model, groups)
    g = groups["layer3.2.conv1"]
    cv.set_group(g.name)
    cv.set_channel(g.size - 1)
    i = g.size - 1
    w1 = model.get_submodule("layer3.2.conv1").weight.detach()
    w2 = model.get_submodule("layer3.2.conv2").weight.detach()
    z_out, z_in = np.asarray(cv.fig.data[0].z), np.asarray(cv.fig.data[1].z)
    assert z_out.shape == (w1.shape[1], w1.shape[2] * w1.shape[3]) == cv.readout["out_shape"]
    assert z_in.shape == (w2.shape[0], w2.shape[2] * w2.shape[3]) == cv.readout["in_shape"]
    assert np.allclose(z_out, w1[i].reshape(w1.shape[1], -1).numpy())
    assert np.allclose(z_in, w2[:, i].reshape(w2.shape[0], -1).numpy())
    r = cv.readout
    assert r["energy"] == pytest.approx(r["out_norm"] ** 2 + r["in_norm"] ** 2, rel=1e-5)
    marker = cv.fig.data[4]  # the current channel's marker sits on top of its stacked bar
    assert list(marker.x) == [i] and marker.y[0] > cv.fig.data[2].y[i] + cv.fig.data[3].y[i]
    texts = [t.name for t in cv.fig.data] + [a.text for a in cv.fig.layout.annotations]
    assert not any("^{" in t or "#" in t for t in texts if t), texts  # no raw TeX, no hex colour codes

    class Points:
        point_inds = [1]

    cv._on_bar_click(cv.fig.data[2], Points())
    assert cv.readout["channel"] == 1
    small = groups["layer1.0.conv1"]
    cv.set_channel(g.size - 1)
    cv.set_group(small.name)  # channel clamps to the smaller pair
    assert cv.readout["channel"] == small.size - 1 and cv.channel_slider.max == small.size - 1


def test_display_delegates_to_the_widget(explorer, models, x, groups):
    import ipywidgets as W
    from ipywidgets.embed import embed_data

    cv = ChannelViewer(models["l2"], groups)
    for obj in (explorer, cv):
        assert isinstance(obj.widget, W.Box)
        bundle = obj._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in bundle
        assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == obj.widget.model_id
    state = embed_data(views=[cv.widget])  # plain widget state, as Voila/embedding serialise it
    assert state["view_specs"] and state["manager_state"]["state"]


# ---------------------------------------------------------------------- shutdown and layout
def test_close_stops_the_worker_and_closes_the_widgets(models, data, x, groups):
    """close(): the running evaluation stops at its next chunk, the worker is joined, every widget is closed."""
    ex = PruningExplorer({"l2": models["l2"], "oicsr_gl": models["oicsr_gl"]}, data, x, eval_images=N_EVAL,
                         groups=groups, async_mode="thread", debounce_s=0.0, batch_size=10)
    ex.set_ratio(0.3)
    t0 = time.perf_counter()
    while ex._runner._thread is None and time.perf_counter() - t0 < 10:
        time.sleep(0.01)
    thread = ex._runner._thread
    assert thread is not None and thread.daemon
    ex.close()
    assert not thread.is_alive() and ex._runner._thread is None and not ex.computing
    assert ex.widget.comm is None and ex.fig.comm is None and ex.ratio_slider.comm is None
    gen = ex._runner.submit([("l2", ("l2", "dense"), None)])  # nothing starts after close
    assert ex._runner._thread is None and not ex._runner.run(gen, [])
    ex.close()  # idempotent


def test_closed_runner_starts_no_job():
    ran = []
    r = LatestOnly(lambda req, stale: ran.append(req), lambda g, res: None, mode="sync")
    assert r.close()
    r.submit(1)
    assert ran == [] and r.stopped and r.wait(1)


def test_interpreter_exit_waits_for_a_running_worker(tmp_path):
    """A worker inside torch ops at interpreter exit is stopped and joined (a daemon thread killed
    mid-op aborts the process: 'terminate called without an active exception')."""
    import os
    import subprocess
    import sys

    script = tmp_path / "exit.py"
    script.write_text(
        "import threading, torch\n"
        "from oicsr_lab.widgets._runner import LatestOnly\n"
        "torch.set_num_threads(1)\n"
        "started = threading.Event()\n"
        "def compute(req, stale):\n"
        "    a = torch.randn(400, 400)\n"
        "    started.set()\n"
        "    while not stale():\n"
        "        for _ in range(10):\n"
        "            a = torch.tanh(a @ a)\n"
        "    print('worker stopped', flush=True)\n"
        "r = LatestOnly(compute, lambda g, res: None, mode='thread', debounce_s=0.0)\n"
        "r.submit(1)\n"
        "assert started.wait(60)\n"
    )
    for _ in range(3):
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 0 and "terminate called" not in proc.stderr, proc.stderr[-2000:]
        assert "worker stopped" in proc.stdout


def test_pruning_explorer_figures_fit_a_narrow_notebook(explorer):
    """No fixed figure widths: both autosize in a wrapping flex row (fits JupyterLab with the file browser open)."""
    assert explorer.fig.layout.width is None and explorer.acc_fig.layout.width is None
    assert explorer.fig.layout.autosize and explorer.acc_fig.layout.autosize
    row = explorer.widget.children[-1]
    assert row.layout.flex_flow == "row wrap" and row.layout.width == "100%"
    cells = row.children
    assert [c.children[0] for c in cells] == [explorer.fig, explorer.acc_fig]


# ---------------------------------------------------------------------- figure state for late front ends
def test_figures_keep_their_synced_state_current(explorer, models, x, groups):
    """What a front end that connects later reads (Voila, a reloaded page) is what the figures draw now."""
    import copy

    ex = EnergyExplorer(models, x, groups=groups)
    cv = ChannelViewer(models["gl"], groups)
    explorer.set_ratio(0.2)
    ex.set_overlay(True)
    cv.set_channel(2)
    for fig in (explorer.fig, explorer.acc_fig, ex.overview, ex.fig, cv.fig):
        assert fig._widget_data == copy.deepcopy(fig._data) and len(fig._widget_data) == len(fig.data)
        assert fig._widget_layout == copy.deepcopy(fig._layout_obj._props)
    assert [t["y"] for t in explorer.fig._widget_data[1:]] == [list(t.y) for t in explorer.fig.data[1:]]
    # a view put on the page, and refit(), each send one relayout(autosize) to fit the figure to its box
    before = ex.overview._last_layout_edit_id
    ex.overview._view_count = 1
    assert ex.overview._last_layout_edit_id == before + 1
    edits = {id(f): f._last_layout_edit_id for f in (ex.overview, ex.fig)}
    ex.refit()
    assert all(f._last_layout_edit_id == edits[id(f)] + 1 for f in (ex.overview, ex.fig))
