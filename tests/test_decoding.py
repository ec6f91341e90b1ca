"""Robust decoding: every file kind users bring comes out upright 8-bit RGB; every bad file is found at once."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageOps

from core.errors import UserError
from core.images import BadImageError, is_image_name, load_resized, load_rgb, probe
from imagedata.image_cache import decoded_images
from imagedata.prescan import apply_policy, bad_images, require_readable, scan

RED, BLUE = (255, 0, 0), (0, 0, 255)


def close(pixel, expected, tol: int = 0) -> bool:
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(pixel, expected))


def two_halves(width: int = 24, height: int = 32) -> Image.Image:
    """Top half red, bottom half blue: any rotation or flip moves the colours somewhere testable."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[: height // 2] = RED
    pixels[height // 2:] = BLUE
    return Image.fromarray(pixels, "RGB")


def save_with_orientation(path, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    two_halves().save(path, format="JPEG", quality=95, exif=exif)


@pytest.mark.parametrize("orientation, size, red_at, blue_at", [
    (3, (24, 32), (12, 28), (12, 3)),   # 180°: red now at the bottom
    (6, (32, 24), (28, 12), (3, 12)),   # stored rotated: shown turned 90° clockwise, red on the right
    (8, (32, 24), (3, 12), (28, 12)),   # turned 90° anticlockwise, red on the left
])
def test_exif_orientation_is_applied(tmp_path, orientation, size, red_at, blue_at):
    path = tmp_path / "photo.jpg"
    save_with_orientation(path, orientation)
    img = load_rgb(path)
    assert img.mode == "RGB" and img.size == size
    assert close(img.getpixel(red_at), RED, 40) and close(img.getpixel(blue_at), BLUE, 40)
    assert probe(path) == size  # the scan reports the upright size too


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow_reference(tmp_path, orientation):
    path = tmp_path / f"o{orientation}.jpg"
    save_with_orientation(path, orientation)
    with Image.open(path) as ref:
        expected = np.asarray(ImageOps.exif_transpose(ref).convert("RGB"))
    np.testing.assert_array_equal(np.asarray(load_rgb(path)), expected)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "scan.jpg"
    Image.new("CMYK", (24, 32), (255, 0, 0, 0)).save(path, quality=95)  # pure cyan ink
    img = load_rgb(path)
    assert img.mode == "RGB" and img.size == (24, 32)
    assert close(img.getpixel((10, 10)), (0, 255, 255), 3)


def test_rgba_png_is_composited_on_white(tmp_path):
    pixels = np.zeros((32, 24, 4), np.uint8)
    pixels[:, :12] = (0, 0, 0, 0)          # fully transparent black
    pixels[:, 12:] = (255, 0, 0, 255)      # opaque red
    pixels[0, 0] = (0, 0, 0, 128)          # half-transparent black over white -> mid grey
    path = tmp_path / "cutout.png"
    Image.fromarray(pixels, "RGBA").save(path)
    img = load_rgb(path)
    assert img.mode == "RGB"
    assert img.getpixel((5, 20)) == (255, 255, 255)
    assert img.getpixel((20, 20)) == RED
    assert close(img.getpixel((0, 0)), (127, 127, 127), 1)


def test_palette_png_with_and_without_transparency(tmp_path):
    img = Image.new("P", (24, 32), 0)
    img.putpalette([0, 128, 0, 200, 100, 50] + [0] * 762)
    img.paste(1, (0, 0, 12, 32))
    plain, keyed = tmp_path / "plain.png", tmp_path / "keyed.png"
    img.save(plain)
    img.save(keyed, transparency=0)
    out = load_rgb(plain)
    assert out.mode == "RGB" and out.getpixel((3, 3)) == (200, 100, 50) and out.getpixel((20, 3)) == (0, 128, 0)
    out = load_rgb(keyed)
    assert out.getpixel((3, 3)) == (200, 100, 50) and out.getpixel((20, 3)) == (255, 255, 255)


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    values = np.zeros((32, 24), np.uint16)
    values[:, 8:16] = 128 * 257    # mid grey in 16 bits
    values[:, 16:] = 65535
    path = tmp_path / "depth.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")  # really stored as 16-bit
    out = np.asarray(load_rgb(path))
    assert out.dtype == np.uint8 and out.shape == (32, 24, 3)
    assert (out[:, :8] == 0).all() and (out[:, 8:16] == 128).all() and (out[:, 16:] == 255).all()


@pytest.mark.parametrize("mode, value, expected", [("L", 77, (77, 77, 77)), ("LA", (77, 0), (255, 255, 255)),
                                                   ("1", 1, (255, 255, 255))])
def test_greyscale_kinds_become_rgb(tmp_path, mode, value, expected):
    path = tmp_path / "grey.png"
    Image.new(mode, (24, 32), value).save(path)
    out = load_rgb(path)
    assert out.mode == "RGB" and out.getpixel((4, 4)) == expected


@pytest.mark.parametrize("name", ["a.jpg", "b.JPG", "c.Jpeg", "d.PNG", "e.webp", "f.WEBP"])
def test_extensions_in_any_letter_case_are_read(tmp_path, name):
    path = tmp_path / name
    fmt = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}[path.suffix[1:].lower()]
    Image.new("RGB", (24, 32), (10, 200, 30)).save(path, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    assert is_image_name(path)
    arr = load_resized(path, (16, 12))
    assert arr.shape == (16, 12, 3)
    assert close(arr[8, 6], (10, 200, 30), 6)


@pytest.mark.parametrize("name", ["._a.jpg", "Thumbs.db", ".DS_Store", "notes.txt", "x.gif"])
def test_non_images_are_not_image_names(tmp_path, name):
    assert not is_image_name(tmp_path / name)


def bad_file_set(folder) -> dict[str, str]:
    """One file of each bad kind beside two good ones; returns path -> kind."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 255, (64, 48, 3), dtype=np.uint8))
    noisy.save(folder / "good.jpg", quality=90)
    noisy.save(folder / "good.png")
    kinds = {}
    for name, kind in (("trunc.jpg", "jpg"), ("trunc.png", "png")):
        data = (folder / f"good.{kind}").read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])
        kinds[str(folder / name)] = f"truncated {kind.upper()}"
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(rng.integers(0, 255, 400, dtype=np.uint8)))
    kinds[str(folder / "corrupt.jpg")] = "corrupt bytes"
    (folder / "empty.png").write_bytes(b"")
    kinds[str(folder / "empty.png")] = "0-byte"
    return kinds


def test_each_bad_kind_raises_a_named_error(tmp_path):
    kinds = bad_file_set(tmp_path / "imgs")
    for path, kind in kinds.items():
        with pytest.raises(BadImageError) as err:
            load_rgb(path)
        assert str(path) in str(err.value), kind
        with pytest.raises(BadImageError):
            probe(path)
    assert "0 bytes" in bad_images([str(tmp_path / "imgs" / "empty.png")], None)[str(tmp_path / "imgs" / "empty.png")]
    assert "truncated" in bad_images([str(tmp_path / "imgs" / "trunc.jpg")], None)[str(tmp_path / "imgs" / "trunc.jpg")]


def test_scan_collects_every_bad_file_and_sizes_the_good(tmp_path):
    kinds = bad_file_set(tmp_path / "imgs")
    good = [str(tmp_path / "imgs" / "good.jpg"), str(tmp_path / "imgs" / "good.png")]
    paths = good[:1] + list(kinds) + good[1:]
    result = scan(paths, with_hash=True)
    assert set(result.bad) == set(kinds)
    assert result.sizes[0] == (48, 64) and result.sizes[-1] == (48, 64)
    assert result.sha256[0] != result.sha256[-1] and all(result.sha256)


def test_image_cache_lists_all_failures_and_caches_nothing(tmp_path):
    kinds = bad_file_set(tmp_path / "imgs")
    paths = [str(tmp_path / "imgs" / "good.jpg"), *kinds]
    with pytest.raises(UserError) as err:
        decoded_images(paths, (16, 12), tmp_path / "cache")
    message = str(err.value)
    assert message.startswith(f"{len(kinds)} of {len(paths)} images")
    assert all(path in message for path in kinds)
    assert not list((tmp_path / "cache").glob("*.json"))  # no half-built cache left to be trusted later


def frame(paths) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"id{i}" for i in range(len(paths))], "path": [str(p) for p in paths],
                         "label": 0, "group": [f"g{i}" for i in range(len(paths))]})


def test_error_policy_refuses_naming_every_kind(tmp_path):
    kinds = bad_file_set(tmp_path / "imgs")
    train = frame([tmp_path / "imgs" / "good.jpg", *kinds, tmp_path / "imgs" / "good.png"])
    with pytest.raises(UserError) as err:
        apply_policy(train, "error", tmp_path / "cache")
    message = str(err.value)
    assert "\n" not in message and "data.on_bad_image=skip" in message
    for path, kind in kinds.items():
        assert path in message, kind


def test_skip_policy_drops_exactly_the_bad_rows(tmp_path):
    kinds = bad_file_set(tmp_path / "imgs")
    train = frame([tmp_path / "imgs" / "good.jpg", *kinds, tmp_path / "imgs" / "good.png"])
    kept, skipped = apply_policy(train, "skip", tmp_path / "cache")
    assert kept["path"].tolist() == [str(tmp_path / "imgs" / "good.jpg"), str(tmp_path / "imgs" / "good.png")]
    assert set(skipped["path"]) == set(kinds) and skipped["reason"].str.len().gt(0).all()
    # The verdict is cached by fingerprint: a file that changes is scanned again.
    fixed = tmp_path / "imgs" / "empty.png"
    Image.new("RGB", (4, 4)).save(fixed)
    kept, skipped = apply_policy(train, "skip", tmp_path / "cache")
    assert str(fixed) in kept["path"].tolist() and str(fixed) not in skipped["path"].tolist()


def test_skip_policy_refuses_when_nothing_is_left(tmp_path):
    kinds = bad_file_set(tmp_path / "imgs")
    with pytest.raises(UserError, match="every one"):
        apply_policy(frame(list(kinds)), "skip", None)


def test_test_list_must_decode_in_full(tmp_path):
    kinds = bad_file_set(tmp_path / "imgs")
    with pytest.raises(UserError) as err:
        require_readable([str(tmp_path / "imgs" / "good.png"), *kinds], "test list info.csv", tmp_path / "cache")
    assert all(path in str(err.value) for path in kinds) and "every row" in str(err.value)
    require_readable([str(tmp_path / "imgs" / "good.png")], "test list info.csv", tmp_path / "cache")
