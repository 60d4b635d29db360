"""Reading photos: modes, EXIF orientation, bad files of every kind, input expansion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import deepinside
from deepinside.images import ImageLoadError, expand_inputs, load_image, resize_maps


def _save(tmp_path, name, img, **kw):
    p = tmp_path / name
    img.save(p, **kw)
    return p


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "1", "I", "F"])
def test_modes_become_rgb(tmp_path, mode):
    rng = np.random.default_rng(0)
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65535, (20, 30), dtype=np.uint16))
        assert img.mode.startswith("I;16")
    else:
        img = Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "I", "F") else "PNG"
    p = _save(tmp_path, f"x.{fmt.lower()}", img, format=fmt)
    out = load_image(p)
    assert out.mode == "RGB" and out.size == (30, 20)


def test_sixteen_bit_keeps_its_range(tmp_path):
    a = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    out = np.asarray(load_image(_save(tmp_path, "g16.png", Image.fromarray(a))))
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255


def test_alpha_is_composited_over_white(tmp_path):
    img = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    out = np.asarray(load_image(_save(tmp_path, "t.png", img)))
    assert (out == 255).all()


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    p = _save(tmp_path, "o.jpg", img, exif=exif.tobytes())
    assert load_image(p).size == (20, 40)


def test_decompression_bomb_is_refused(tmp_path):
    p = _save(tmp_path, "big.png", Image.new("1", (10_000, 10_000)))  # 100 Mpx, a tiny file
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        load_image(p)
    small = _save(tmp_path, "s.png", Image.new("RGB", (100, 100)))
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        load_image(small, max_pixels=5000)


def test_bad_files_name_the_file(tmp_path):
    good = _save(tmp_path, "good.jpg", Image.new("RGB", (64, 64), (1, 2, 3)))
    data = good.read_bytes()
    cases = {
        "empty.jpg": b"",
        "text.jpg": b"hello, this is not an image\n" * 10,
        "corrupt.jpg": data[:20] + bytes(range(256)) * 4,
        "truncated.jpg": data[: len(data) // 2],
    }
    for name, content in cases.items():
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(ImageLoadError) as e:
            load_image(p)
        assert name in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageLoadError, match="directory"):
        load_image(tmp_path)


def test_expand_inputs(tmp_path):
    for n in ("b.jpg", "a.png", "notes.txt"):
        (tmp_path / n).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.JPEG").write_bytes(b"x")
    found, problems = expand_inputs([tmp_path])
    assert [p.name for p in found] == ["a.png", "b.jpg", "c.JPEG"]
    found, problems = expand_inputs([str(tmp_path / "*.jpg"), tmp_path / "a.png",
                                     tmp_path / "b.jpg", tmp_path / "nope.jpg",
                                     str(tmp_path / "*.gif")])
    assert [p.name for p in found] == ["b.jpg", "a.png"]  # in order, no repeats
    assert [r for _, r in problems] == ["no such file", "pattern matches no file"]


def test_whole_photo_resize_and_map_back():
    pre = deepinside.Preprocessing(input_size=(32, 32), resize_size=36, mean=(0.5,) * 3,
                                   std=(0.5,) * 3)
    photo = Image.new("RGB", (100, 50), (255, 0, 0))
    x = deepinside.photos_to_batch([photo], pre, crop=False)
    assert x.shape == (1, 3, 32, 32)
    torch.testing.assert_close(x[0, :, 5, 5], torch.tensor([1.0, -1.0, -1.0]))
    assert pre.to_tensor(photo, crop=True).shape == (3, 32, 32)
    m = resize_maps(torch.rand(1, 32, 32), (50, 100))
    assert m.shape == (1, 50, 100)


# ----------------------------------------------------------------------------- the pipeline


def test_open_photo_takes_paths_pil_and_arrays(tmp_path):
    from deepinside.images import as_photos, open_photo

    a = (np.arange(6 * 4 * 3) % 255).astype(np.uint8).reshape(6, 4, 3)
    Image.fromarray(a).save(tmp_path / "a.png")
    for item in (tmp_path / "a.png", str(tmp_path / "a.png"), Image.fromarray(a), a):
        p = open_photo(item)
        assert p.mode == "RGB" and np.array_equal(np.asarray(p), a)
    assert open_photo(a[..., 0]).size == (4, 6)  # grey array
    with pytest.raises(ImageLoadError, match="not an image"):
        open_photo(np.zeros((2, 3, 7), np.uint8))
    with pytest.raises(ImageLoadError, match="non-finite"):
        open_photo(np.full((4, 4, 3), np.nan))
    with pytest.raises(TypeError):
        open_photo(42)
    assert len(as_photos([a, a])) == 2 and len(as_photos(a)) == 1
    with pytest.raises(ValueError):
        as_photos([])


def test_iter_photo_batches_reports_each_failure_once_and_goes_on(tmp_path):
    from deepinside.images import iter_photo_batches

    good = []
    for i in range(5):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(tmp_path / f"g{i}.png")
        good.append(tmp_path / f"g{i}.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    items = [good[0], tmp_path / "bad.png", good[1], good[2], tmp_path / "missing.png", good[3],
             good[4]]
    failed = []
    batches = list(iter_photo_batches(items, 2, lambda item, why: failed.append((item, why))))
    assert [b.items for b in batches if b.items] == [good[:2], good[2:4], good[4:]]
    assert sum(b.failed for b in batches) == 2
    assert [f[0] for f in failed] == [tmp_path / "bad.png", tmp_path / "missing.png"]
    assert "no such file" in failed[1][1] and str(tmp_path) not in failed[1][1]
    records = [{"path": p, "label": i} for i, p in enumerate(good[:3])]
    [batch, rest] = iter_photo_batches(records, 2, source=lambda r: r["path"])
    assert batch.items == records[:2] and rest.items == records[2:]


def test_photo_maps_top_k_equals_one_class_at_a_time():
    from models import tiny_classifier

    from deepinside.photomaps import photo_maps

    clf = tiny_classifier()
    rng = np.random.default_rng(0)
    photos = [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
              for h, w in ((40, 50), (33, 31), (64, 48))]
    maps, t, logits = photo_maps(clf, photos, "top3", method="gradcam", batch_size=2)
    assert t.shape == (3, 3) and t.tolist() == logits.topk(3).indices.tolist()
    assert [m.shape for m in maps] == [(3, 40, 50), (3, 33, 31), (3, 64, 48)]
    for j in range(3):
        one, tj, _ = photo_maps(clf, photos, t[:, j], method="gradcam")
        assert tj.tolist() == t[:, j].tolist()
        for a, b in zip(maps, one):
            np.testing.assert_allclose(a[j], b, rtol=1e-4, atol=1e-6)


def test_import_deepinside_loads_no_torch():
    import subprocess
    import sys

    code = ("import sys, deepinside, deepinside.localize, deepinside.evaluate.metrics; "
            "print('torch' in sys.modules, callable(deepinside.localize))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    assert out == ["False", "True"]


def test_float_and_bool_arrays_and_empty_inputs():
    from models import tiny_classifier

    from deepinside.images import open_photo
    from deepinside.photomaps import photo_maps

    a = np.full((4, 5, 3), 0.5)
    assert np.asarray(open_photo(a)).max() == 128  # floats in [0, 1] are scaled
    assert np.asarray(open_photo(np.ones((4, 5), bool))).min() == 255
    with pytest.raises(ValueError, match="no photos"):
        photo_maps(tiny_classifier(), [])
    photo = Image.new("RGB", (40, 30))
    [m], t, _ = photo_maps(tiny_classifier(), [photo], torch.tensor(2))
    assert t.tolist() == [2] and m.shape == (30, 40)
