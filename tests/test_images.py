"""Reading uploads safely: every kind of odd image gives an RGB picture or a clear ImageError."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from seqmodels.images import MAX_PIXELS, ImageError, load_for_model, open_image


def _photo(size=(64, 48)) -> Image.Image:
    """A smooth colourful picture (JPEG-friendly, unlike noise)."""
    y, x = np.mgrid[0:size[1], 0:size[0]]
    arr = np.stack([x * 255 // size[0], y * 255 // size[1], (x + y) * 255 // (size[0] + size[1])], -1)
    return Image.fromarray(arr.astype(np.uint8), "RGB")


def _bytes(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def test_the_same_picture_in_png_and_jpeg_gives_the_same_tensor_up_to_compression():
    im = _photo((96, 80))
    png, _, _ = load_for_model(_bytes(im, "PNG"), 32)
    jpg, _, _ = load_for_model(_bytes(im, "JPEG", quality=95), 32)
    assert png.shape == jpg.shape == (3, 32, 32) and png.dtype == torch.uint8
    assert (png.float() - jpg.float()).abs().mean() < 3.0


@pytest.mark.parametrize("image, says", [
    (Image.new("RGB", (1, 1), (200, 30, 30)), "only 1 x 1 pixels"),
    (Image.new("RGB", (300, 200), (128, 128, 128)), "almost one flat colour"),
    (Image.new("RGB", (3000, 40), (30, 60, 220)), "almost one flat colour"),  # a colour, not only a grey
    (Image.new("RGBA", (300, 200), (0, 0, 0, 0)), "almost one flat colour"),  # all transparent: all white
    (_photo((300, 200)), None),
])
def test_an_image_with_little_to_describe_says_so_and_a_photo_does_not(image, says):
    _, _, notes = load_for_model(_bytes(image, "PNG"), 224)
    guesses = [n for n in notes if "the caption is the model's guess" in n]
    assert [says in n for n in guesses] == ([True] if says else [])


@pytest.mark.parametrize("size, says", [((6000, 400), "15 times as wide as it is tall"),
                                         ((400, 1600), "4 times as tall as it is wide"), ((500, 375), None)])
def test_a_squashed_panorama_says_how_far_out_of_shape_it_is_and_a_photo_does_not(size, says):
    _, _, notes = load_for_model(_bytes(_photo(size), "PNG"), 224, fit="squash")
    squashed = [n for n in notes if "squashed into a square" in n]
    assert [says in n for n in squashed] == ([True] if says else [])
    _, _, notes = load_for_model(_bytes(_photo(size), "PNG"), 224, fit="crop")
    assert not any("squashed" in n for n in notes)  # a cropping model's note is the tab's "centre square"


@pytest.mark.parametrize("mode", ["L", "LA", "P", "PA", "1", "CMYK", "RGBA", "I;16", "I", "F"])
def test_every_common_mode_becomes_rgb(mode):
    im = _photo()
    if mode == "I;16":
        im = Image.fromarray((np.asarray(im.convert("L"), dtype=np.uint16) * 257).astype("<u2"))
        assert im.mode == "I;16"
    elif mode in ("I", "F"):
        im = im.convert("L").convert(mode)
    else:
        im = im.convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "I;16", "I", "F") else "PNG"
    rgb, notes = open_image(im if mode == "PA" else _bytes(im, fmt))  # no file format writes PA
    assert rgb.mode == "RGB" and rgb.size == im.size
    if mode in ("I;16", "I", "F"):  # scaled to 0-255 by its range, not clipped to white
        assert np.asarray(rgb).std() > 10


def test_transparency_is_composited_onto_white():
    im = Image.new("RGBA", (10, 10), (255, 0, 0, 0))  # fully transparent red
    rgb, notes = open_image(_bytes(im, "PNG"))
    assert rgb.getpixel((5, 5)) == (255, 255, 255) and "white" in notes[0]


def test_exif_rotation_is_applied():
    im = _photo((60, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    rotated, _ = open_image(_bytes(im, "JPEG", exif=exif))
    assert rotated.size == (30, 60)


def test_an_animated_gif_uses_its_first_frame_and_says_so():
    frames = [Image.new("RGB", (16, 16), c) for c in ["red", "blue", "green"]]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    rgb, notes = open_image(buf.getvalue())
    assert rgb.getpixel((8, 8))[0] > 200 and "3 frames" in notes[0]


def test_a_one_pixel_image_is_resized_not_refused():
    tensor, photo, _ = load_for_model(_bytes(Image.new("RGB", (1, 1), "red"), "PNG"), 32)
    assert tensor.shape == (3, 32, 32) and photo.size == (1, 1)  # the photo as given, for the heat maps
    assert tensor[0].float().mean() > 200 and tensor[1:].float().mean() < 30


def test_squash_keeps_the_whole_photo_and_crop_keeps_its_centre():
    im = Image.new("RGB", (120, 40), "blue")
    im.paste(Image.new("RGB", (20, 40), "red"), (0, 0))  # a red strip on the left edge
    squashed, photo, _ = load_for_model(_bytes(im, "PNG"), 32, fit="squash")
    cropped, _, _ = load_for_model(_bytes(im, "PNG"), 32, fit="crop")
    assert photo.size == (120, 40)
    assert squashed[0, :, :4].float().mean() > 200  # the strip is still there, squeezed
    assert cropped[0, :, :4].float().mean() < 30  # the centre square never had it
    with pytest.raises(ValueError, match="fit must be"):
        load_for_model(_bytes(im, "PNG"), 32, fit="stretch")


@pytest.mark.parametrize("data, message", [
    (b"this is not an image at all", "not an image"),
    (b"", "not an image"),
    (_bytes(_photo((200, 200)), "JPEG")[:300], "damaged or truncated"),
    (_bytes(_photo((200, 200)), "PNG")[:200], "damaged or truncated"),
])
def test_bad_files_raise_a_clear_image_error(data, message):
    with pytest.raises(ImageError, match=message):
        open_image(data)


def test_a_decompression_bomb_is_refused_before_decoding():
    side = int(MAX_PIXELS ** 0.5) + 100  # a small file that claims a huge picture
    data = _bytes(Image.new("1", (side, side)), "PNG")
    assert len(data) < 2_000_000
    with pytest.raises(ImageError, match="million pixels"):
        open_image(data)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        open_image(tmp_path / "nope.jpg")


# --------------------------------------------------------------------------- training views (torchvision)

def _ramps(batch: int, side: int = 64) -> torch.Tensor:
    """uint8 photos dark on the left, bright on the right (and a constant green channel)."""
    ramp = torch.linspace(0, 255, side).round().to(torch.uint8)
    images = torch.zeros(batch, 3, side, side, dtype=torch.uint8)
    images[:, 0] = ramp[None, None, :]
    images[:, 1] = 120
    return images


def test_augmented_views_repeat_from_the_same_seed_and_differ_from_another():
    from seqmodels.images import augment
    images = _ramps(8)
    a = augment(images, 32, torch.Generator().manual_seed(0))
    b = augment(images, 32, torch.Generator().manual_seed(0))
    c = augment(images, 32, torch.Generator().manual_seed(1))
    assert a.shape == (8, 3, 32, 32) and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert int(a[:, 1].min()) == int(a[:, 1].max()) == 120  # resizing keeps a flat colour flat


def test_about_half_the_augmented_views_are_mirrored():
    from seqmodels.images import augment
    views = augment(_ramps(200), 32, torch.Generator().manual_seed(3)).float()
    mirrored = (views[:, 0, :, 0].mean(1) > views[:, 0, :, -1].mean(1)).sum().item()  # bright side on the left
    assert 70 <= mirrored <= 130


def test_the_evaluation_view_resizes_the_whole_photo():
    from seqmodels.images import center_resize
    images = _ramps(2, 64)
    small = center_resize(images, 16)
    assert small.shape == (2, 3, 16, 16) and small.dtype == torch.uint8
    assert small[0, 0, 0, 0] < 20 and small[0, 0, 0, -1] > 235  # both ends of the ramp are kept: nothing cropped
    assert center_resize(images, 64) is images
