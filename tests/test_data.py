"""Data sources: embedded sets, mixtures, TFDS via data_source + mock_data, bad input."""
import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxgan import data


def test_mnist5k_is_the_real_embedded_set():
  x = data.load_embedded_images("mnist5k")
  assert x.shape == (5000, 28, 28, 1) and x.dtype == np.float32
  assert x.min() == -1.0 and x.max() == 1.0
  assert np.bincount(data.load_embedded_labels("mnist5k")).tolist() == [500] * 10


def test_digits():
  x = data.load_embedded_images("digits")
  assert x.shape == (1797, 8, 8, 1) and -1 <= x.min() and x.max() <= 1


def test_batches_are_a_pure_function_of_seed_and_step():
  x = np.arange(50, dtype=np.float32).reshape(50, 1)
  a, b = data.array_source(x, 8, seed=1), data.array_source(x, 8, seed=1)
  np.testing.assert_array_equal(a.batch(9)["image"], b.batch(9)["image"])
  assert not np.array_equal(a.batch(9)["image"], data.array_source(x, 8, seed=2).batch(9)["image"])
  # One epoch (6 full batches of 50) visits 48 distinct examples without replacement.
  epoch = np.concatenate([np.asarray(a.batch(s)["image"]) for s in range(6)]).ravel()
  assert len(set(epoch.tolist())) == 48
  assert set(a.batch(0)) == {"image"} and a.num_classes == 0        # no labels given


def test_labels_travel_with_their_examples():
  x = np.arange(50, dtype=np.float32).reshape(50, 1)
  src = data.array_source(x, 8, seed=1, labels=np.arange(50) % 7)
  assert src.num_classes == 7
  for step in (0, 6, 13):                                            # across epochs
    b = src.batch(step)
    assert b["label"].dtype == np.int32
    np.testing.assert_array_equal(np.asarray(b["label"]), np.asarray(b["image"])[:, 0] % 7)
  with pytest.raises(data.DataError, match="one per example"):
    data.array_source(x, 8, 0, labels=np.zeros(49, np.int32))
  with pytest.raises(data.DataError, match=r"labels must lie in 0..2"):
    data.array_source(x, 8, 0, labels=np.arange(50) % 7, num_classes=3)


def test_every_embedded_source_gives_its_labels():
  digits, y = data.load_embedded_images("mnist5k"), data.load_embedded_labels("mnist5k")
  src = data.make_source(data_config("mnist5k"), 16, 0)
  b = src.batch(3)
  idx = [int(np.argmin(np.abs(digits - x[None]).reshape(5000, -1).max(1))) for x in np.asarray(b["image"])]
  np.testing.assert_array_equal(np.asarray(b["label"]), y[idx])     # each image's own digit
  assert src.num_classes == 10 and src.class_names == [str(i) for i in range(10)]
  for name, k in (("grid25", 25), ("ring8", 8)):                     # the mixture component
    src = data.make_source(data_config(name), 500, 0)
    b = src.batch(0)
    means = data.mixture_means(name)
    nearest = np.argmin(((np.asarray(b["image"])[:, None] - means[None]) ** 2).sum(-1), 1)
    assert src.num_classes == k
    np.testing.assert_array_equal(np.asarray(b["label"]), nearest)
  src = data.make_source(data_config("stacked_mnist"), 8, 0)       # the digit triple
  b = src.batch(0)
  flat = digits.reshape(5000, -1)
  for i, x in enumerate(np.asarray(b["image"])):
    ds = [y[np.argmin(np.abs(flat - x[..., c].reshape(1, -1)).max(1))] for c in range(3)]
    assert int(b["label"][i]) == 100 * ds[0] + 10 * ds[1] + ds[2]
  assert src.num_classes == 1000


def data_config(name, **kw):
  return {**data.DATA_DEFAULTS, "name": name, **kw}


def test_batch_gather_does_not_recompile():
  src = data.array_source(np.zeros((20, 3), np.float32), 4, seed=0)
  for step in range(7):
    src.batch(step)
  # the jitted gather is captured in the closure; its cache holds one entry
  jitted = [c.cell_contents for c in src.batch.__closure__ if hasattr(c.cell_contents, "_cache_size")]
  assert jitted and jitted[0]._cache_size() == 1


@pytest.mark.parametrize("name,n_modes,std", [("grid25", 25, 0.05), ("ring8", 8, 0.01)])
def test_mixture_geometry(name, n_modes, std):
  means = data.mixture_means(name)
  assert means.shape == (n_modes, 2)
  if name == "grid25":
    assert sorted(set(means[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
  else:
    np.testing.assert_allclose(np.linalg.norm(means, axis=1), 1.0, rtol=1e-6)
  src = data.mixture_source(name, 4000, seed=0)
  x = np.asarray(src.batch(0)["image"])
  nearest = np.argmin(((x[:, None] - means[None]) ** 2).sum(-1), 1)
  assert len(set(nearest.tolist())) == n_modes
  np.testing.assert_allclose((x - means[nearest]).std(), std, rtol=0.1)
  assert not np.array_equal(x, np.asarray(src.batch(1)["image"]))
  np.testing.assert_array_equal(
      x, np.asarray(data.mixture_source(name, 4000, seed=0).batch(0)["image"]))


def test_tfds_data_source_with_mock_data():
  with tfds.testing.mock_data(num_examples=40):
    src = data.tfds_source("mnist", 8, seed=0, image_size=32)
    b = src.batch(2)
    x = np.asarray(b["image"])
    assert x.shape == (8, 32, 32, 1) and src.shape == (32, 32, 1) and src.num_examples == 40
    assert -1 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal(
        x, np.asarray(data.tfds_source("mnist", 8, 0, image_size=32).batch(2)["image"]))
    # the `label` ClassLabel feature: mnist's 10 classes, the records' own labels
    ds = tfds.data_source("mnist", split="train")
    idx = np.random.default_rng([0, 0]).permutation(40)[16:24]        # step 2 of epoch 0
    assert src.num_classes == 10 and b["label"].dtype == np.int32
    np.testing.assert_array_equal(np.asarray(b["label"]), [ds[int(i)]["label"] for i in idx])
    assert "label" not in data.tfds_source("mnist", 8, 0, label_key="nolabel").batch(0)


def test_missing_tfds_set_says_how_to_prepare(tmp_path):
  with pytest.raises(data.DataError, match="tfds build mnist"):
    data.tfds_source("mnist", 8, 0, data_dir=str(tmp_path))
  # TFDS's reason is quoted by its first non-empty line (some of its messages start with "\n")
  with pytest.raises(data.DataError, match="DatasetNotFoundError: Namespace nons not found"):
    data.tfds_source("nons:mnist", 8, 0, data_dir=str(tmp_path))


@pytest.mark.parametrize("bad,match", [
    (np.zeros((4, 28, 28)), r"\[N, H, W, C\]"),
    (np.zeros((4, 28, 28, 2)), "channels"),
    (np.zeros((4, 8, 8, 1), np.int32), "dtype int32"),
    (np.full((4, 8, 8, 1), 3.0), r"\[-1, 1\]"),
    (np.full((4, 8, 8, 1), np.nan), "NaN"),
])
def test_bad_images_are_refused_clearly(bad, match):
  with pytest.raises(data.DataError, match=match):
    data.as_images(bad)


def test_check_batch_names_expected_shape():
  with pytest.raises(data.DataError, match=r"expects shape \(4, 28, 28, 1\)"):
    data.check_batch(np.zeros((4, 28, 28), np.float32), (28, 28, 1), 4)
  x = np.zeros((4, 2), np.float32)
  with pytest.raises(data.DataError, match=r"labels have shape \(4,\) and dtype int64"):
    data.check_batch({"image": x, "label": np.zeros(4, np.int64)}, (2,), 4)
  with pytest.raises(data.DataError, match="no 'label' entry but the source has 3 classes"):
    data.check_batch({"image": x}, (2,), 4, num_classes=3)
  with pytest.raises(data.DataError, match=r"unknown batch entries \['lable'\]"):
    data.check_batch({"image": x, "lable": x}, (2,), 4)


def test_batch_larger_than_data_is_refused():
  with pytest.raises(data.DataError, match="larger than the data set"):
    data.array_source(np.zeros((3, 2), np.float32), 8, 0)
