"""The translate plugin's parts on their own: the networks' shapes, the schedule, the image pool, the
digits datasets, the folder formats on folders the tests write (and their one-line refusals), the
recipes' pairing with models and metrics in ``dltk check``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dltoolkit import DataSpec, DltkError
from dltoolkit_translate.common import ImagePool, lr_factor
from dltoolkit_translate.data import digits_outline, digits_strokes, outline, paired_folder, unpaired_folder
from dltoolkit_translate.models import PatchDiscriminator, ResnetGenerator, UnetGenerator, cycle_gan, pix2pix_gan
from dltoolkit_translate.options import (
    CycleGanModelConfig,
    DigitsOutlineConfig,
    DigitsStrokesConfig,
    PairedFolderConfig,
    Pix2PixModelConfig,
    UnpairedFolderConfig,
)

RECIPES = Path(__file__).resolve().parents[3] / "recipes"


def pairs_spec(size: int, a: int = 1, b: int = 1) -> DataSpec:
    return DataSpec("image-pairs", (b, size, size), extra={"input_channels": a})


# --- networks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [16, 32, 64, 128, 256])
def test_unet_translates_every_power_of_two_size(size):
    net = UnetGenerator(3, 1, size, ngf=2, norm="instance").eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, size, size))
    assert out.shape == (1, 1, size, size) and out.abs().max() <= 1.0


def test_unet_256_has_the_papers_three_dropout_layers_and_16_none():
    assert sum(isinstance(m, torch.nn.Dropout) for m in UnetGenerator(3, 3, 256, ngf=2).modules()) == 3
    assert not any(isinstance(m, torch.nn.Dropout) for m in UnetGenerator(3, 3, 16, ngf=2).modules())
    assert not any(isinstance(m, torch.nn.Dropout) for m in UnetGenerator(3, 3, 256, ngf=2, dropout=False).modules())


@pytest.mark.parametrize("blocks", [6, 9])
def test_resnet_generator_keeps_the_size(blocks):
    net = ResnetGenerator(1, 3, ngf=4, blocks=blocks)
    assert sum(type(m).__name__ == "ResnetBlock" for m in net.modules()) == blocks
    assert net(torch.randn(2, 1, 16, 24)).shape == (2, 3, 16, 24)


def test_patchgan_of_three_layers_gives_the_70x70_patches_30x30_map():
    d = PatchDiscriminator(6, ndf=4, d_layers=3)
    assert d(torch.randn(1, 6, 256, 256)).shape == (1, 1, 30, 30)
    # receptive field of one output: 70 pixels (k4 s2 x3, k4 s1 x2)
    field, jump = 1, 1
    for kernel, stride in [(4, 2), (4, 2), (4, 2), (4, 1), (4, 1)]:
        field, jump = field + (kernel - 1) * jump, jump * stride
    assert field == 70


def test_instance_norm_models_are_built_with_biases_and_batch_norm_without():
    inst = pix2pix_gan(Pix2PixModelConfig(ngf=2, ndf=2, d_layers=1, norm="instance"), data=pairs_spec(16))
    batch = pix2pix_gan(Pix2PixModelConfig(ngf=2, ndf=2, d_layers=1), data=pairs_spec(16))
    assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in inst.generator.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in batch.generator.modules())
    conv = [m for m in batch.discriminator.modules() if isinstance(m, torch.nn.Conv2d)][1]
    assert conv.bias is None


def test_models_refuse_sizes_they_cannot_take_in_one_line_each():
    with pytest.raises(DltkError) as info:
        pix2pix_gan(Pix2PixModelConfig(d_layers=3), data=pairs_spec(12))
    assert str(info.value).splitlines() == [
        "model.generator: the 'unet' generator needs square images of 16, 32, 64, 128 or 256 pixels, the dataset "
        'gives 12x12; set the dataset\'s crop_size or use generator = "resnet"',
        "model.d_layers: 3 strided layers leave no patch of 12x12 images; use at most 2",
    ]
    with pytest.raises(DltkError, match=r"model.generator: the 'resnet' generator needs sides divisible by 4"):
        cycle_gan(CycleGanModelConfig(d_layers=1), data=DataSpec("image-domains", (1, 18, 18)))


def test_cycle_gan_generators_map_between_the_domains_channels():
    spec = DataSpec("image-domains", (3, 16, 16), extra={"input_channels": 1})
    model = cycle_gan(CycleGanModelConfig(ngf=2, ndf=2, blocks=1, d_layers=1), data=spec)
    assert model.generator_ab(torch.randn(1, 1, 16, 16)).shape == (1, 3, 16, 16)
    assert model.generator_ba(torch.randn(1, 3, 16, 16)).shape == (1, 1, 16, 16)
    assert model.discriminator_a(torch.randn(1, 1, 16, 16)).shape[1] == 1


# --- schedule and pool -----------------------------------------------------------------------------


def test_linear_decay_is_the_references_lambda_rule():
    factors = [lr_factor(epoch, 200, 100) for epoch in (1, 100, 101, 150, 200)]
    assert factors == pytest.approx([1.0, 1.0, 1 - 1 / 101, 1 - 50 / 101, 1 - 100 / 101])
    assert lr_factor(3, 3, 0) == 1.0
    assert lr_factor(1, 1, 10) == pytest.approx(1 - 1 / 2)  # more decay epochs than epochs: all of them decay


def test_image_pool_fills_then_swaps_half_of_the_time_and_round_trips_its_state():
    torch.manual_seed(0)
    pool = ImagePool(4)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: each new image comes back
    seen = torch.cat([pool.query(torch.full((1, 1, 1, 1), 10.0 + i)) for i in range(200)]).flatten()
    assert (seen < 10).sum().item() > 0  # the first images come back later
    fresh = (seen == torch.arange(10.0, 210.0)).float().mean().item()
    assert 0.35 < fresh < 0.65
    copy = ImagePool(4)
    copy.load_state_dict(pool.state_dict())
    assert [t.item() for t in copy.images] == [t.item() for t in pool.images]
    assert torch.equal(ImagePool(0).query(first), first)


# --- the digits ---------------------------------------------------------------------------------


def test_digits_outline_pairs_an_outline_with_its_digit_on_disjoint_splits():
    train, test = digits_outline(DigitsOutlineConfig(), "train"), digits_outline(DigitsOutlineConfig(), "test")
    assert (len(train), len(test)) == (1437, 360)
    a, b, labels = test.__getitems__([0, 1])
    assert a.shape == b.shape == (2, 1, 16, 16) and labels.tolist() == test.labels[:2].tolist()
    assert torch.equal(test.a, outline(test.b))
    stroke = test.b >= 128
    assert not (test.a.bool() & stroke).any()  # an outline lies outside the stroke
    assert test.spec.kind == "image-pairs" and test.spec.num_classes == 10
    flipped = digits_outline(DigitsOutlineConfig(direction="BtoA"), "test")
    assert torch.equal(flipped.a, test.b)
    trains = {bytes(x.numpy()) for x in train.b}
    assert not trains & {bytes(x.numpy()) for x in test.b[:50]}


def test_digits_strokes_domains_share_no_training_digit():
    train = digits_strokes(DigitsStrokesConfig(), "train")
    assert (len(train.a), len(train.b)) == (719, 718) and len(train) == 719
    a, b, _, lb = train.__getitems__([718])
    assert a.shape == b.shape == (1, 1, 16, 16) and lb.item() == train.labels_b[0].item()
    assert train.a.float().mean() < train.b.float().mean()  # thinner strokes: fewer lit pixels
    test = digits_strokes(DigitsStrokesConfig(), "test")
    assert len(test.a) == len(test.b) == 360 and test.spec.kind == "image-domains"


# --- folder formats ---------------------------------------------------------------------------------


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path


def gradient(width: int, height: int, shift: int = 0) -> np.ndarray:
    x = (np.arange(width)[None, :] * 7 + np.arange(height)[:, None] * 3 + shift) % 256
    return np.stack([x, 255 - x, x // 2], axis=-1)


def test_side_by_side_pairs_are_split_and_jittered_identically(tmp_path):
    for i in range(3):  # the left and right halves are the same picture: any jitter must keep them equal
        half = gradient(20, 20, shift=i * 40)
        write_png(tmp_path / "train" / f"{i}.png", np.concatenate([half, half], 1))
    write_png(tmp_path / "val" / "0.png", np.concatenate([gradient(20, 20), gradient(20, 20, 9)], 1))
    config = PairedFolderConfig(root=str(tmp_path), load_size=24, crop_size=16)
    train = paired_folder(config, "train")
    torch.manual_seed(0)
    for i in range(len(train)):
        for _ in range(4):
            a, b, label = train[i]
            assert a.shape == (3, 16, 16) and torch.equal(a, b) and label.item() == -1
    held_out = paired_folder(config, "test")  # no test/: val/ is read
    a, b, _ = held_out[0]
    assert a.shape == (3, 16, 16) and not torch.equal(a, b)
    swapped = paired_folder(PairedFolderConfig(root=str(tmp_path), crop_size=16, direction="BtoA"), "test")
    assert torch.equal(swapped[0][0], b)


def test_a_and_b_folders_pair_by_name(tmp_path):
    for name in ("x.png", "sub/y.png"):
        write_png(tmp_path / "train" / "A" / name, gradient(10, 12))
        write_png(tmp_path / "train" / "B" / name, gradient(10, 12, 50))
    config = PairedFolderConfig(root=str(tmp_path), load_size=8, crop_size=8, flip=False, channels=1)
    data = paired_folder(config, "train")
    assert len(data) == 2 and data[0][0].shape == (1, 8, 8) and data.spec.extra["input_channels"] == 1


def refusal(factory, config, split="train") -> list[str]:
    with pytest.raises(DltkError) as info:
        factory(config, split)
    return str(info.value).splitlines()


def test_bad_pairs_are_one_line_each_naming_the_file(tmp_path):
    write_png(tmp_path / "train" / "A" / "ok.png", gradient(8, 8))
    write_png(tmp_path / "train" / "B" / "ok.png", gradient(8, 8))
    write_png(tmp_path / "train" / "A" / "big.png", gradient(8, 8))
    write_png(tmp_path / "train" / "B" / "big.png", gradient(9, 8))
    write_png(tmp_path / "train" / "A" / "alone.png", gradient(8, 8))
    lines = refusal(paired_folder, PairedFolderConfig(root=str(tmp_path)))
    a, b = tmp_path / "train" / "A", tmp_path / "train" / "B"
    assert lines == [
        f"dataset.root: '{a / 'alone.png'}' has no counterpart '{b / 'alone.png'}'",
        f"dataset.root: '{a / 'big.png'}' is 8x8 but '{b / 'big.png'}' is 9x8; the sides of a pair must be the "
        "same size",
    ]


def test_an_odd_side_by_side_image_and_an_empty_split_are_refused(tmp_path):
    write_png(tmp_path / "train" / "odd.png", gradient(9, 4))
    (tmp_path / "test").mkdir()
    lines = refusal(paired_folder, PairedFolderConfig(root=str(tmp_path)))
    assert lines == [
        f"dataset.root: '{tmp_path / 'train' / 'odd.png'}' is 9x4: an A|B pair needs an even width (two sides of "
        "4 and 5 pixels differ)"
    ]
    assert refusal(paired_folder, PairedFolderConfig(root=str(tmp_path)), "test") == [
        f"dataset.root: '{tmp_path / 'test'}' holds no image pairs (A|B images, or A/ and B/ folders)"
    ]


def test_unpaired_folders_and_an_empty_domain(tmp_path):
    for side, count in (("A", 3), ("B", 5)):
        for i in range(count):
            write_png(tmp_path / f"train{side}" / f"{i}.png", gradient(12, 12, i))
    (tmp_path / "testA").mkdir()
    write_png(tmp_path / "testB" / "0.png", gradient(12, 12))
    config = UnpairedFolderConfig(root=str(tmp_path), load_size=10, crop_size=8)
    train = unpaired_folder(config, "train")
    assert len(train) == 5 and train[4][0].shape == train[4][1].shape == (3, 8, 8)
    assert refusal(unpaired_folder, config, "test") == [
        f"dataset.root: '{tmp_path / 'testA'}' holds no images (an empty domain)"
    ]
    swapped = unpaired_folder(UnpairedFolderConfig(root=str(tmp_path), direction="BtoA"), "train")
    assert (len(swapped.a), len(swapped.b)) == (5, 3)


def test_a_bad_folder_is_one_line_at_dltk_run_with_nothing_written(dltk, tmp_path):
    (tmp_path / "data" / "trainA").mkdir(parents=True)
    write_png(tmp_path / "data" / "trainB" / "0.png", gradient(16, 16))
    recipe = tmp_path / "bad.toml"
    text = (RECIPES / "cyclegan_horse2zebra.toml").read_text()
    recipe.write_text(text.replace('root = "data/horse2zebra"', f'root = "{(tmp_path / "data").as_posix()}"'))
    result = dltk("run", recipe, "run.device=cpu", "--run-dir", tmp_path / "run")
    assert result.exit_code == 2
    empty = tmp_path / "data" / "trainA"
    assert result.err_lines == [f"{recipe}: dataset.root: '{empty}' holds no images (an empty domain)"]
    assert not (tmp_path / "run").exists()


# --- dltk check -------------------------------------------------------------------------------------


def test_check_pairs_the_models_with_their_recipes_and_refuses_others(dltk):
    for name in ("pix2pix_digits", "cyclegan_digits", "pix2pix_facades", "cyclegan_horse2zebra"):
        result = dltk("check", RECIPES / f"{name}.toml")
        assert result.exit_code == 0, result.err
    recipe = RECIPES / "pix2pix_digits.toml"
    result = dltk("check", recipe, 'model={name="cycle-gan"}', "metrics=[]")
    assert result.exit_code == 2
    assert result.err_lines[0] == (
        f"{recipe}: model.name: model 'cycle-gan' provides 'cyclegan', but the recipe 'pix2pix' needs a model that "
        "provides 'pix2pix' (models that do: pix2pix-gan)"
    )
    result = dltk("check", recipe, 'model={name="dcgan"}', "metrics=[]")
    assert result.exit_code == 2 and "model 'dcgan' provides 'gan', but the recipe 'pix2pix'" in result.err_lines[0]
    result = dltk("check", recipe, 'metrics=[{name="label-preservation-ba", classifier="c"}]')
    assert result.err_lines == [
        f"{recipe}: metrics.0.name: recipe 'pix2pix' provides 'evaluate' + 'predict' + 'export' + 'translation' + "
        "'paired-translation', but the metric 'label-preservation-ba' needs a recipe that provides 'evaluate' + "
        "'two-way-translation' (recipes that do: cyclegan)"
    ]


@pytest.mark.slow
@pytest.mark.parametrize("args", [["check", "recipes/pix2pix_digits.toml"], ["predict", "--help"]])
def test_checking_and_the_predict_options_import_no_torch(args):
    from runs import heavy_imports

    root = RECIPES.parent
    last = heavy_imports([str(root / a) if a.startswith("recipes/") else a for a in args], root)
    assert last == "EXIT 0 HEAVY -", last
