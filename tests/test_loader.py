"""TensorLoader, the batched pad-4 crop + flip and Cutout: ranges, flips, determinism, normalisation, DDP shards."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from oicsr_lab.data import Split, TensorLoader, random_crop_flip
from oicsr_lab.data.loader import _draw_crop_flip, _draw_cutout, cutout

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def coordinate_images(n: int, h: int = 8, w: int = 8) -> torch.Tensor:
    """uint8 images whose pixels encode (image, row, column), never 0, so padding is recognisable."""
    img = torch.zeros(n, 3, h, w, dtype=torch.uint8)
    img[:, 0] = (torch.arange(h) + 1)[:, None]
    img[:, 1] = (torch.arange(w) + 1)[None, :]
    img[:, 2] = (torch.arange(n) + 1)[:, None, None]
    return img


def reference_crop_flip(x: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, flip: torch.Tensor, pad: int = 4):
    """Per-image slicing version of the crop + flip, to check the batched one against."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (pad, pad, pad, pad))
    out = []
    for i in range(len(x)):
        crop = padded[i, :, oy[i] : oy[i] + h, ox[i] : ox[i] + w]
        out.append(crop.flip(-1) if flip[i] else crop)
    return torch.stack(out)


def test_crop_offsets_and_flips() -> None:
    """Offsets lie in [0, 8], every offset and both flip states occur, and pixels match slicing."""
    x = coordinate_images(400)
    oy, ox, flip = _draw_crop_flip(len(x), torch.Generator().manual_seed(3), 4)  # what the call below draws
    out = random_crop_flip(x, torch.Generator().manual_seed(3))
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert int(oy.min()) == 0 and int(oy.max()) == 8 and int(ox.min()) == 0 and int(ox.max()) == 8
    assert len(set(oy.tolist())) == 9 and len(set(ox.tolist())) == 9
    assert 0.35 < flip.float().mean().item() < 0.65
    assert torch.equal(out, reference_crop_flip(x, oy, ox, flip))
    # offset 4 is the centred crop: the image itself, or its mirror when flipped
    same = (oy == 4) & (ox == 4) & ~flip
    assert same.any() and torch.equal(out[same], x[same])
    mirrored = (oy == 4) & (ox == 4) & flip
    assert mirrored.any() and torch.equal(out[mirrored], x[mirrored].flip(-1))


def test_crop_flip_on_float_input() -> None:
    """The same offsets apply to float batches."""
    x = coordinate_images(16).float()
    a = random_crop_flip(x, torch.Generator().manual_seed(0))
    b = random_crop_flip(x.to(torch.uint8), torch.Generator().manual_seed(0))
    assert a.dtype == torch.float32 and torch.equal(a, b.float())


def make_split(n: int = 40) -> Split:
    """A split of coordinate images with labels ``i % 10``."""
    return Split(coordinate_images(n, 6, 6), torch.arange(n) % 10)


def batches(loader: TensorLoader, epoch: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """All batches of one epoch."""
    loader.set_epoch(epoch)
    return list(loader)


def test_deterministic_for_seed_and_epoch() -> None:
    """Same seed and epoch: identical batches; another epoch or seed: different ones."""
    split = make_split()
    kw = dict(mean=MEAN, std=STD, shuffle=True, augment=True)
    a = batches(TensorLoader(split, 8, seed=1, **kw), 2)
    b = batches(TensorLoader(split, 8, seed=1, **kw), 2)
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))
    for other in (batches(TensorLoader(split, 8, seed=1, **kw), 3), batches(TensorLoader(split, 8, seed=2, **kw), 2)):
        assert not all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, other))


def test_epoch_covers_split_and_normalises() -> None:
    """Without augmentation a shuffled epoch is a permutation of the split, normalised by mean/std."""
    split = make_split(37)
    loader = TensorLoader(split, 8, MEAN, STD, shuffle=True)
    got = batches(loader)
    assert len(loader) == 5 and [len(y) for _, y in got] == [8, 8, 8, 8, 5]
    x = torch.cat([b[0] for b in got])
    restored = (x * torch.tensor(STD).view(1, 3, 1, 1) * 255 + torch.tensor(MEAN).view(1, 3, 1, 1) * 255).round()
    order = restored[:, 2, 0, 0].long() - 1  # channel 2 encodes the image index
    assert sorted(order.tolist()) == list(range(37))
    assert torch.equal(restored.to(torch.uint8), split.images[order])
    assert torch.equal(torch.cat([b[1] for b in got]), split.labels[order])
    assert len(TensorLoader(split, 8, MEAN, STD, drop_last=True)) == 4


def test_channels_last_flag() -> None:
    """channels_last=True yields NHWC-strided float batches with the same values."""
    split = make_split(16)
    (a, _), = batches(TensorLoader(split, 16, MEAN, STD, augment=True, channels_last=True))
    (b, _), = batches(TensorLoader(split, 16, MEAN, STD, augment=True))
    assert a.is_contiguous(memory_format=torch.channels_last) and torch.equal(a, b)


@pytest.mark.parametrize("world", [2, 4])
def test_ddp_shards_partition_the_global_batch(world: int) -> None:
    """Rank shards, concatenated in rank order, are exactly the single-process global batch."""
    split = make_split(64)
    kw = dict(mean=MEAN, std=STD, shuffle=True, augment=True, drop_last=True, seed=5)
    full = batches(TensorLoader(split, 16, **kw), 1)
    shards = [batches(TensorLoader(split, 16, rank=r, world_size=world, **kw), 1) for r in range(world)]
    for b, (x, y) in enumerate(full):
        parts = [shards[r][b] for r in range(world)]
        assert all(len(p[1]) == 16 // world for p in parts)
        assert torch.equal(torch.cat([p[0] for p in parts]), x) and torch.equal(torch.cat([p[1] for p in parts]), y)


def test_bad_batch_sizes() -> None:
    """Non-positive batch sizes and global batches not divisible by the world size are refused."""
    split = make_split(8)
    with pytest.raises(ValueError, match="positive"):
        TensorLoader(split, 0, MEAN, STD)
    with pytest.raises(ValueError, match="divisible"):
        TensorLoader(split, 6, MEAN, STD, world_size=4)


def reference_cutout(x: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, size: int) -> torch.Tensor:
    """Per-image version of Cutout (the paper's code: clip the square [c - s//2, c + s - s//2) at the border)."""
    out = x.clone()
    h, w = x.shape[-2:]
    for i in range(len(x)):
        y0, y1 = max(0, int(cy[i]) - size // 2), min(h, int(cy[i]) + size - size // 2)
        x0, x1 = max(0, int(cx[i]) - size // 2), min(w, int(cx[i]) + size - size // 2)
        out[i, :, y0:y1, x0:x1] = 0
    return out


@pytest.mark.parametrize("size", [1, 4, 5, 16])
def test_cutout_matches_per_image_slicing(size: int) -> None:
    """The batched mask zeroes exactly the clipped square around each centre, on every channel, and nothing else."""
    x = torch.rand(300, 3, 8, 8) + 0.5  # never 0
    cy, cx = _draw_cutout(len(x), torch.Generator().manual_seed(1), 8, 8)
    assert set(cy.tolist()) == set(range(8)) and set(cx.tolist()) == set(range(8))  # uniform over the image
    out = cutout(x, cy, cx, size)
    assert torch.equal(out, reference_cutout(x, cy, cx, size))
    zeros = (out == 0).all(1).sum((1, 2))
    assert zeros.max() == min(size, 8) ** 2 and zeros.min() >= ((size + 1) // 2) ** 2 * (size <= 8)


def test_loader_cutout_zeroes_a_square_after_normalising() -> None:
    """With cutout the batch equals the plain augmented batch except on the squares, which hold 0 (the mean
    colour); cutout=0 draws exactly what earlier versions drew; eval loaders (augment off) never cut."""
    split = make_split(32)
    kw = dict(mean=MEAN, std=STD, shuffle=True, augment=True, drop_last=True, seed=2)
    (plain, y0), = batches(TensorLoader(split, 32, **kw), 1)
    (cut, y1), = batches(TensorLoader(split, 32, cutout=4, **kw), 1)
    assert torch.equal(y0, y1)
    holes = (cut == 0).all(1)
    assert holes.sum((1, 2)).min() >= 4 and holes.sum((1, 2)).max() == 16
    assert torch.equal(cut[~holes[:, None].expand_as(cut)], plain[~holes[:, None].expand_as(plain)])
    (no_aug, _), = batches(TensorLoader(split, 32, mean=MEAN, std=STD, cutout=4), 1)
    assert not (no_aug == 0).all(1).any()
    with pytest.raises(ValueError, match="cutout"):
        TensorLoader(split, 8, MEAN, STD, cutout=-1)


def test_cutout_ddp_shards_partition_the_global_batch() -> None:
    """Cutout centres are drawn for the global batch, so two ranks' shards concatenate to the one-process batch."""
    split = make_split(64)
    kw = dict(mean=MEAN, std=STD, shuffle=True, augment=True, drop_last=True, seed=7, cutout=3)
    full = batches(TensorLoader(split, 16, **kw), 2)
    shards = [batches(TensorLoader(split, 16, rank=r, world_size=2, **kw), 2) for r in range(2)]
    for b, (x, _) in enumerate(full):
        assert torch.equal(torch.cat([shards[0][b][0], shards[1][b][0]]), x)


def test_cutout_setting_keeps_old_cache_keys_and_is_checked() -> None:
    """cutout=0 stays out of a run's cache key (runs cached before it existed keep theirs); a bad value is one line."""
    from oicsr_lab.errors import ConfigError
    from oicsr_lab.train import TrainConfig

    assert "cutout" not in TrainConfig().to_dict() and TrainConfig(cutout=16).to_dict()["cutout"] == 16
    for bad in (-1, 2.5, True):
        with pytest.raises(ConfigError, match="cutout"):
            TrainConfig(cutout=bad).validate()


def test_cli_cutout_reaches_the_training_loader(sample_data, tmp_path) -> None:
    """``train --cutout 8`` sets the config, the trainer's training loader cuts, its evaluation does not."""
    from oicsr_lab.cli import build_parser
    from oicsr_lab.cli.common import config_from_args
    from oicsr_lab.train.run import build_trainer

    cfg = config_from_args(build_parser().parse_args(["train", "--preset", "ci", "--cutout", "8"]))
    assert cfg.cutout == 8
    trainer = build_trainer(cfg, out_dir=tmp_path, data=sample_data, device="cpu", show_progress=False)
    assert trainer.loader.cutout == 8 and trainer.loader.augment
    x, _ = next(iter(trainer.loader))
    assert (x == 0).all(1).sum((1, 2)).max() == 64
