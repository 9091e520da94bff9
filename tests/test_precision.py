"""Training precision: autocast only where it pays off, fp32 master weights and penalties, a note on fallback."""

from __future__ import annotations

import warnings

import pytest
import torch

import oicsr_lab.precision as prec
from oicsr_lab.errors import ConfigError
from oicsr_lab.train import TrainConfig, build_trainer, load_checkpoint, preset


def tiny(**kw) -> TrainConfig:
    return preset("ci", **{**dict(epochs=1, train_subset=128, test_subset=64, batch_size=64), **kw})


@pytest.mark.parametrize("native,asked,expect,noted", [
    (True, "auto", "bf16", False), (False, "auto", "fp32", True), (True, "fp32", "fp32", False),
    (False, "fp32", "fp32", False), (True, "bf16", "bf16", False), (False, "bf16", "bf16", True),
])
def test_resolve_train_precision_cpu(monkeypatch, native, asked, expect, noted) -> None:
    monkeypatch.setattr(prec, "native_bf16", lambda: native)
    got, note = prec.resolve_train_precision(asked, "cpu")
    assert got == expect and bool(note) == noted
    if not native and asked == "auto":
        assert "no native bf16" in note


def test_resolve_rejects_unknown() -> None:
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        prec.resolve_train_precision("fp8")
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="half").validate()


def _conv_output_dtypes(trainer) -> list[torch.dtype]:
    """Record the dtype of every conv output during training steps (evaluation is fp32 on purpose)."""
    seen: list[torch.dtype] = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o.dtype) if m.training else None)
             for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d)]
    trainer.fit()
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize("native", [True, False])
def test_trainer_autocasts_only_on_native_bf16(monkeypatch, sample_data, tmp_path, native) -> None:
    """auto: convs run in bf16 where the CPU has native units, else fp32 with a warning; weights stay fp32."""
    monkeypatch.setattr(prec, "native_bf16", lambda: native)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = build_trainer(tiny(reg="oicsr_gl", strength=0.1, reg_options={"mode": "proximal"}),
                                out_dir=tmp_path, data=sample_data, device="cpu", show_progress=False)
    assert trainer.precision == ("bf16" if native else "fp32")
    assert any("no native bf16" in str(w.message) for w in caught) != native
    dtypes = _conv_output_dtypes(trainer)
    assert dtypes and set(dtypes) == {torch.bfloat16 if native else torch.float32}
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert all(t.dtype == torch.float32 for s in trainer.optimizer.state.values() for t in s.values()
               if torch.is_tensor(t) and t.is_floating_point())
    blob = load_checkpoint(tmp_path / "checkpoint.pt")
    assert blob["precision"] == trainer.precision and blob["config"]["precision"] == "auto"
    assert trainer.history[-1]["precision"] == trainer.precision


def test_penalty_is_fp32_under_autocast(monkeypatch, sample_data) -> None:
    """The regulariser's penalty is computed outside autocast, in fp32."""
    monkeypatch.setattr(prec, "native_bf16", lambda: True)
    config = tiny(reg="oicsr_gl", strength=1e-3, reg_options={"mode": "subgradient", "grad": "autograd"})
    trainer = build_trainer(config, data=sample_data, device="cpu", show_progress=False)
    seen = []
    orig = trainer.regularizer.penalty

    def spy(model):
        out = orig(model)
        seen.append((out.dtype, torch.is_autocast_enabled("cpu")))
        return out

    trainer.regularizer.penalty = spy
    trainer.fit()
    assert seen and all(d == torch.float32 and not on for d, on in seen)


def test_fp32_and_bf16_train_to_similar_loss(sample_data) -> None:
    """Same seed, one epoch: bf16 and fp32 training losses agree to a few percent (same data order)."""
    losses = {}
    for p in ("fp32", "bf16"):
        t = build_trainer(tiny(epochs=2, precision=p, train_subset=256), data=sample_data, device="cpu",
                          show_progress=False)
        losses[p] = [r["train_loss"] for r in t.fit()]
    for a, b in zip(losses["fp32"], losses["bf16"]):
        assert a == pytest.approx(b, rel=0.05)


def test_new_fields_keep_old_cache_keys() -> None:
    """precision/val_images at their pre-existing values are left out of the key; other values enter it."""
    d = TrainConfig().to_dict()
    assert "precision" not in d and "val_images" not in d
    assert TrainConfig.from_dict(d) == TrainConfig()
    d2 = TrainConfig(precision="auto", val_images=500).to_dict()
    assert d2["precision"] == "auto" and d2["val_images"] == 500
    assert TrainConfig.from_dict(d2).precision == "auto"
