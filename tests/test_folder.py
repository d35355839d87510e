"""Folder and zip image sets (jaxgan.folder): generated trees of PNG and JPEG files of several
sizes, grey and RGB, in class subfolders and in zips; the cache; every bad input; labels;
xflip; host vs device reading; exact resume; the process row split; a sweep; the CLI."""
import dataclasses
import json
import os
import zipfile
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from jaxgan import config as config_lib
from jaxgan import data, folder
from jaxgan.cli import main
from tests.util import assert_trees_equal


def _save(path: Path, pixels: np.ndarray, fmt=None):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(pixels).save(path, format=fmt)


def _rgb(rng, h, w):
  return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def make_tree(root: Path, classes=("cat", "dog", "eel"), per_class=(5, 4, 3), seed=0,
              grey=False) -> Path:
  """class subfolders of PNG and JPEG files of several (non-square) sizes."""
  rng = np.random.default_rng(seed)
  for c, n in zip(classes, per_class):
    for i in range(n):
      h, w = rng.integers(20, 48, 2)
      x = rng.integers(0, 256, (h, w), dtype=np.uint8) if grey else _rgb(rng, h, w)
      _save(root / c / (f"sub/{i}.jpg" if i % 3 == 2 else f"{i}.png"), x)
  return root


def snapshot(root: Path) -> dict:
  """Every path under root, with each file's size, mtime and bytes."""
  return {p: (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes()) if p.is_file() else "dir"
          for p in sorted(root.rglob("*"))}


def load(path, tmp_path, **kw):
  logs = []
  kw.setdefault("image_size", 16)
  fs = folder.load_folder(path, cache_dir=tmp_path / "cache", log=logs.append, **kw)
  return fs, logs


# ------------------------------------------------------------------------------ decoding
def test_class_tree_decodes_crops_and_labels(tmp_path):
  root = make_tree(tmp_path / "set")
  before = snapshot(root)
  fs, logs = load(root, tmp_path)
  assert fs.images.shape == (12, 16, 16, 3) and fs.images.dtype == np.uint8
  assert fs.class_names == ["cat", "dog", "eel"]
  assert fs.labels.tolist() == [0] * 5 + [1] * 4 + [2] * 3          # sorted file order
  assert fs.files[:3] == ["cat/0.png", "cat/1.png", "cat/3.png"] and "cat/sub/2.jpg" in fs.files
  assert fs.meta["class_counts"] == [5, 4, 3] and fs.meta["label_source"] == "folders"
  assert any("decoding 12 images" in m for m in logs)
  # each image: centre-cropped square, Lanczos-resized, exactly as PIL does it by hand
  img = Image.open(root / "dog/1.png")
  w, h = img.size
  s = min(w, h)
  ref = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
  ref = np.asarray(ref.resize((16, 16), Image.LANCZOS))
  np.testing.assert_array_equal(fs.images[fs.files.index("dog/1.png")], ref)
  assert snapshot(root) == before                                   # never written to


def test_centre_crop_keeps_the_middle(tmp_path):
  x = np.zeros((40, 60, 3), np.uint8)                               # [H, W, C], wide
  x[:, :10] = x[:, 50:] = (255, 0, 0)                               # red side bands
  x[:, 10:50] = (0, 0, 255)                                         # the blue 40 x 40 centre
  _save(tmp_path / "one" / "wide.png", x)
  fs, _ = load(tmp_path / "one", tmp_path, image_size=40)           # crop only, no resize
  assert fs.labels is None and fs.meta["label_source"] == "none"
  np.testing.assert_array_equal(fs.images[0], x[:, 10:50])
  fs, _ = load(tmp_path / "one", tmp_path, image_size=8)            # a constant stays constant
  np.testing.assert_array_equal(fs.images[0], np.broadcast_to([0, 0, 255], (8, 8, 3)))


def test_channels_grey_colour_mixed_and_16_bit(tmp_path):
  grey = make_tree(tmp_path / "grey", grey=True)
  fs, _ = load(grey, tmp_path)
  assert fs.images.shape[-1] == 1                                   # every image grey: 1
  mixed = tmp_path / "mixed"
  rng = np.random.default_rng(1)
  colour = _rgb(rng, 16, 16)
  _save(mixed / "a.png", colour)
  g = rng.integers(0, 256, (16, 16), dtype=np.uint8)
  _save(mixed / "b.png", g)
  with pytest.raises(data.DataError, match=r"mixes greyscale and colour images \(1 grey, e.g. "
                                           r"b.png; 1 colour, e.g. a.png\).*channels=3"):
    load(mixed, tmp_path, image_size=0)
  fs, _ = load(mixed, tmp_path, image_size=0, channels=3)
  np.testing.assert_array_equal(fs.images[1], np.repeat(g[..., None], 3, -1))  # replicated
  fs, _ = load(mixed, tmp_path, image_size=0, channels=1)
  luma = np.asarray(Image.fromarray(colour).convert("L"))           # ITU-R 601 luma
  np.testing.assert_array_equal(fs.images[0, ..., 0], luma)
  deep = tmp_path / "deep"                                          # 16-bit grey PNG
  v = np.arange(256, dtype=np.uint16).reshape(16, 16) * 257
  deep.mkdir()
  Image.fromarray(v).save(deep / "d.png")
  fs, _ = load(deep, tmp_path, image_size=0)
  np.testing.assert_array_equal(fs.images[0, ..., 0], np.arange(256).reshape(16, 16))


def test_zip_equals_folder(tmp_path):
  root = make_tree(tmp_path / "set")
  ref, _ = load(root, tmp_path)
  for inner in ("", "set/"):                  # flat, and zipped as a folder (zip -r set.zip set/)
    path = tmp_path / f"set{len(inner)}.zip"
    with zipfile.ZipFile(path, "w") as z:
      for f in sorted(root.rglob("*")):
        if f.is_file():
          z.write(f, inner + f.relative_to(root).as_posix())
      z.writestr("__MACOSX/cat/._0.png", b"junk")                   # macOS resource forks
    fs, _ = load(path, tmp_path)
    assert fs.files == ref.files and fs.class_names == ref.class_names
    np.testing.assert_array_equal(fs.labels, ref.labels)
    np.testing.assert_array_equal(fs.images, ref.images)


def test_dataset_json_labels(tmp_path):
  root = make_tree(tmp_path / "set", classes=("a",), per_class=(4,))
  names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.*"))
  (root / "dataset.json").write_text(json.dumps({"labels": [[n, i % 2 * 5] for i, n in
                                                            enumerate(names)]}))
  fs, _ = load(root, tmp_path)
  assert fs.meta["label_source"] == "dataset.json" and fs.labels.tolist() == [0, 5, 0, 5]
  assert fs.class_names == [str(i) for i in range(6)]
  fs, _ = load(root, tmp_path, labels="folders")                    # the subfolder instead
  assert fs.class_names == ["a"]
  fs, _ = load(root, tmp_path, labels="none")
  assert fs.labels is None
  (root / "dataset.json").write_text(json.dumps({"labels": [[names[0], 1]]}))
  with pytest.raises(data.DataError, match="gives no label for 3 of the 4 images"):
    load(root, tmp_path)
  (root / "dataset.json").write_text(json.dumps({"labels": [[n, "x"] for n in names]}))
  with pytest.raises(data.DataError, match="integers >= 0"):
    load(root, tmp_path)
  (root / "dataset.json").write_text("{not json")
  with pytest.raises(data.DataError, match="not StyleGAN's format"):
    load(root, tmp_path)
  (root / "dataset.json").unlink()
  with pytest.raises(data.DataError, match="no dataset.json"):
    load(root, tmp_path, labels="json")


# --------------------------------------------------------------------------------- cache
def test_cache_is_reused_and_invalidated(tmp_path):
  root = make_tree(tmp_path / "set")
  a, logs = load(root, tmp_path)
  b, logs = load(root, tmp_path)
  assert not any("decoding" in m for m in logs) and b.cache_dir == a.cache_dir
  assert isinstance(b.images, np.memmap)                            # read lazily from disk
  c, _ = load(root, tmp_path, image_size=8)                         # other options: other cache
  assert c.cache_dir != a.cache_dir
  x = _rgb(np.random.default_rng(5), 30, 30)                        # a file changes
  _save(root / "cat" / "0.png", x)
  os.utime(root / "cat" / "0.png", ns=(1, 1))
  d, logs = load(root, tmp_path)
  assert any("decoding" in m for m in logs) and d.cache_dir != a.cache_dir
  ref = np.asarray(Image.fromarray(x).resize((16, 16), Image.LANCZOS))
  np.testing.assert_array_equal(d.images[0], ref)
  _save(root / "dog" / "new.png", x)                                # a file is added
  assert load(root, tmp_path)[0].images.shape[0] == 13
  # an unfinished build (a killed process) is never used: only the renamed directory counts
  leftovers = [p for p in (tmp_path / "cache").iterdir() if ".tmp-" in p.name]
  assert leftovers == []
  (d.cache_dir / "images.npy").write_bytes(b"garbage")             # a damaged cache: rebuilt
  os.utime(root / "dog" / "new.png", ns=(2, 2))
  os.utime(root / "dog" / "new.png", ns=(1, 1))
  e, logs = load(root, tmp_path)
  assert e.images.shape[0] == 13


def test_cache_dir_inside_the_source_is_refused(tmp_path):
  root = make_tree(tmp_path / "set")
  with pytest.raises(data.DataError, match="lies inside the source folder"):
    folder.load_folder(root, 16, cache_dir=root / "cache")
  assert not (root / "cache").exists()


# ----------------------------------------------------------------------------- bad input
def test_bad_inputs_name_the_file_and_the_fix(tmp_path):
  root = make_tree(tmp_path / "set")
  before = snapshot(root)
  empty = tmp_path / "empty"
  empty.mkdir()
  (empty / "notes.txt").write_text("x")
  with pytest.raises(data.DataError, match=r"no images .* searched recursively; it holds 1 "
                                           r"other file\(s\), e.g. notes.txt"):
    load(empty, tmp_path)
  with pytest.raises(data.DataError, match="does not exist"):
    load(tmp_path / "nowhere", tmp_path)
  (tmp_path / "fake.zip").write_text("not a zip")
  with pytest.raises(data.DataError, match="not a zip archive"):
    load(tmp_path / "fake.zip", tmp_path)
  with zipfile.ZipFile(tmp_path / "noimg.zip", "w") as z:
    z.writestr("readme.md", "hi")
  with pytest.raises(data.DataError, match=r"no images .*/noimg.zip"):
    load(tmp_path / "noimg.zip", tmp_path)
  # top-level images in a labelled tree
  _save(root / "stray.png", _rgb(np.random.default_rng(0), 16, 16))
  with pytest.raises(data.DataError, match=r"1 at its top level, which have no class: "
                                           r"stray.png.*data.labels=none"):
    load(root, tmp_path)
  assert load(root, tmp_path, labels="none")[0].images.shape[0] == 13
  (root / "stray.png").unlink()
  # a non-image with an image extension, and a truncated PNG
  (root / "cat" / "text.png").write_text("hello")
  good = (root / "dog" / "0.png").read_bytes()
  (root / "dog" / "cut.png").write_bytes(good[:len(good) // 2])
  caches = sorted((tmp_path / "cache").iterdir())
  with pytest.raises(data.DataError, match=r"2 unreadable image file\(s\)") as e:
    load(root, tmp_path)
  assert "cat/text.png: not an image" in str(e.value) and "dog/cut.png" in str(e.value)
  assert "data.skip_bad=true" in str(e.value)
  assert sorted((tmp_path / "cache").iterdir()) == caches           # nothing cached
  fs, logs = load(root, tmp_path, skip_bad=True)
  assert fs.images.shape[0] == 12 and "cat/text.png" not in fs.files
  assert len(fs.meta["skipped"]) == 2
  assert any("skipped 2 unreadable file(s)" in m and "dog/cut.png" in m for m in logs)
  (root / "cat" / "text.png").unlink()
  (root / "dog" / "cut.png").unlink()
  assert snapshot(root) == before
  odd = tmp_path / "odd"                                            # several sizes, no resize
  _save(odd / "a.png", _rgb(np.random.default_rng(0), 16, 16))
  _save(odd / "b.png", _rgb(np.random.default_rng(0), 16, 20))
  with pytest.raises(data.DataError, match="several sizes or not square.*data.image_size=N"):
    load(odd, tmp_path, image_size=0)


# ------------------------------------------------------------------------------- batches
def _source(root, tmp_path, batch_size=8, seed=0, **kw):
  cfg = {**data.DATA_DEFAULTS, "name": "folder", "path": str(root), "image_size": 16,
         "cache_dir": str(tmp_path / "cache"), **kw}
  return data.make_source(cfg, batch_size, seed, kw.pop("process_index", 0),
                          kw.pop("process_count", 1))


def test_host_and_device_reading_give_the_same_batches(tmp_path):
  root = make_tree(tmp_path / "set")
  fs, _ = load(root, tmp_path)
  for xflip in (False, True):
    dev = _source(root, tmp_path, xflip=xflip)
    assert dev.keyed_batch is not None and dev.num_examples == 12 * (1 + xflip)
    hosts = [_source(root, tmp_path, xflip=xflip, device_max_mb=0, prefetch=p) for p in (0, 3)]
    assert all(h.keyed_batch is None for h in hosts)
    for step in [0, 1, 2, 3, 7, 2, 0, 11]:                          # epochs; out of order too
      want = dev.batch(step)
      assert want["image"].dtype == np.float32 and want["label"].dtype == np.int32
      for h in hosts:
        got = h.batch(step)
        for k in ("image", "label"):
          np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(want[k]))
    # the images are the cache's, scaled to [-1, 1]; labels follow their image
    idx = np.asarray(data.epoch_indices(jax.random.key(0), 3, dev.num_examples, 8))
    x = fs.images[idx % 12].astype(np.float32) / 127.5 - 1
    if xflip:
      x = np.where((idx >= 12)[:, None, None, None], x[:, :, ::-1], x)
    np.testing.assert_allclose(np.asarray(dev.batch(3)["image"]), x, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(dev.batch(3)["label"]), fs.labels[idx % 12])


def test_xflip_doubles_the_set_with_mirror_images(tmp_path):
  root = make_tree(tmp_path / "set", classes=("a", "b"), per_class=(4, 4))
  fs, _ = load(root, tmp_path)
  src = _source(root, tmp_path, batch_size=16, xflip=True)         # one epoch: all 16
  b = src.batch(0)
  pixels = np.round((np.asarray(b["image"]) + 1) * 127.5).astype(np.uint8)   # back to uint8
  got = sorted(map(bytes, pixels.reshape(16, -1)))
  want = sorted(map(bytes, np.concatenate([fs.images, fs.images[:, :, ::-1]]).reshape(16, -1)))
  assert got == want
  assert sorted(np.asarray(b["label"]).tolist()) == sorted(fs.labels.tolist() * 2)


def test_each_process_reads_its_rows(tmp_path):
  root = make_tree(tmp_path / "set")
  for mb in (1024, 0):                                              # device and host reading
    whole = _source(root, tmp_path, device_max_mb=mb)
    parts = [_source(root, tmp_path, device_max_mb=mb, process_index=p, process_count=2)
             for p in range(2)]
    for step in (0, 4):
      for k in ("image", "label"):
        np.testing.assert_array_equal(
            np.concatenate([np.asarray(s.batch(step)[k]) for s in parts]),
            np.asarray(whole.batch(step)[k]))
      assert parts[1].batch(step)["image"].shape == (4, 16, 16, 3)


def test_batch_larger_than_the_set_is_refused(tmp_path):
  root = make_tree(tmp_path / "set")
  with pytest.raises(data.DataError, match="batch_size 16 is larger than the set"):
    _source(root, tmp_path, batch_size=16)


# ------------------------------------------------------------------------ training runs
def _folder_config(root, tmp_path, *extra):
  c = config_lib.load_config_file("experiments/mnist_dcgan32.py")
  return config_lib.apply_overrides(c, [
      "data.name=folder", f"data.path={root}", "data.image_size=32",
      f"data.cache_dir={tmp_path / 'cache'}", "steps=8", "batch_size=8", "log_every=4",
      "sample_every=8", "checkpoint_every=4", "model.width=8", *extra])


@pytest.mark.slow
def test_resume_on_a_folder_set_is_exact(tmp_path):
  from jaxgan.train import train
  root = make_tree(tmp_path / "set")
  for mb in ("1024", "0"):                      # on the device, and read from the host cache
    full = train(_folder_config(root, tmp_path, f"data.device_max_mb={mb}"),
                 tmp_path / f"full{mb}", progress=False)
    half = _folder_config(root, tmp_path, f"data.device_max_mb={mb}", "steps=4")
    train(half, tmp_path / f"half{mb}", progress=False)
    resumed = train(_folder_config(root, tmp_path, f"data.device_max_mb={mb}"),
                    tmp_path / f"half{mb}", progress=False)
    assert_trees_equal(resumed, full)
  assert json.loads((tmp_path / "full0" / "classes.json").read_text()) == {
      "cat": 0, "dog": 1, "eel": 2}
  meta = json.loads((tmp_path / "full0" / "data.json").read_text())
  assert meta["num_classes"] == 3 and meta["shape"] == [32, 32, 3]


@pytest.mark.slow
def test_folder_run_on_1_and_8_devices_is_the_same(tmp_path):
  from jaxgan import parallel
  from jaxgan.train import train
  root = make_tree(tmp_path / "set")
  c = _folder_config(root, tmp_path, "steps=4", "model.name=mlp", "model.g_hidden=(16,)",
                     "model.d_hidden=(16,)")
  one = train(c, tmp_path / "one", progress=False, mesh=parallel.make_mesh(jax.devices()[:1]))
  eight = train(c, tmp_path / "eight", progress=False, mesh=parallel.make_mesh())
  from tests.util import assert_trees_close
  assert_trees_close(one.g_params, eight.g_params, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_sweep_on_a_folder_set(tmp_path):
  """Member seed 1 of a sweep on a folder set equals the single run with seed 1."""
  from jaxgan import sweep
  from jaxgan.runs import load_run
  from jaxgan.train import train
  from tests.util import assert_trees_close
  root = make_tree(tmp_path / "set")
  c = _folder_config(root, tmp_path, "steps=4", "sample_every=4", "model.name=mlp",
                     "model.g_hidden=(16,)", "model.d_hidden=(16,)")
  summary = sweep.sweep(c, tmp_path / "sw", seeds=2, progress=False)
  assert {r["status"] for r in summary["members"].values()} == {"ok"}
  want = train(config_lib.apply_overrides(c, ["seed=1"]), tmp_path / "single", progress=False)
  assert_trees_close(load_run(tmp_path / "sw" / "seed1")[2], want, rtol=1e-4, atol=1e-5)
  with pytest.raises(data.DataError, match="whose cache fits data.device_max_mb"):
    sweep.sweep(config_lib.apply_overrides(c, ["data.device_max_mb=0"]), tmp_path / "sw2",
                seeds=2, progress=False)


def test_cli_inspect_and_train(tmp_path, capsys):
  root = make_tree(tmp_path / "set")
  preview = tmp_path / "p.png"
  assert main(["data", "inspect", str(root), "--image-size", "16", "--cache-dir",
               str(tmp_path / "cache"), "--preview", str(preview)]) == 0
  out = capsys.readouterr().out
  assert "12 images" in out and "labels from folders: 3 classes" in out
  assert "cat: 5" in out and "eel: 3" in out and "original sizes: width" in out
  assert Image.open(preview).size[0] > 16
  assert main(["data", "inspect", str(tmp_path / "nowhere")]) == 2
  assert "does not exist" in capsys.readouterr().err
  args = ["train", "--no-progress", "--config", "experiments/mnist_dcgan32.py", "--workdir",
          str(tmp_path / "run"), "--config.data.name=folder", f"--config.data.path={root}",
          "--config.data.image_size=32", f"--config.data.cache_dir={tmp_path / 'cache'}",
          "--config.steps=2", "--config.batch_size=8", "--config.log_every=2",
          "--config.sample_every=2", "--config.checkpoint_every=2", "--config.model.width=8"]
  assert main(args) == 0
  assert (tmp_path / "run" / "samples" / "step_000002.png").exists()
  assert main(["train", "--config.data.name=folder"]) == 2           # no path
  assert "needs config.data.path" in capsys.readouterr().err
