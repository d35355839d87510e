"""Config files, command-line overrides and their validation.

A config file is a Python file with `get_config() -> ml_collections.ConfigDict`. Overrides
use dotted keys (`--config.penalty.weight=5`); values are parsed to the type of the default,
and an unknown key is refused with the list of valid ones.
"""
import ast
import copy
import importlib.util
import json
from pathlib import Path
from typing import Iterable, Optional

import ml_collections

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = "experiments/mnist_mlp.py"
REQUIRED_KEYS = ("steps", "batch_size", "seed", "checkpoint_every")
# Keys that may differ when a run in a workdir is resumed: they set how far the run goes and
# how often it writes, never the numbers it computes (a larger `steps` continues a run). Any
# other difference is refused unless `jaxgan train --force`.
RESUMABLE_KEYS = ("steps", "log_every", "sample_every", "checkpoint_every", "num_sample_images",
                  "data.data_dir", "steps_per_call", "eval_every", "eval_num", "eval_inception",
                  "data.cache_dir", "data.device_max_mb", "data.prefetch")


class ConfigError(ValueError):
  pass


def resolve_config_path(path: Optional[str]) -> Path:
  """A path, or a name under experiments/ (`mnist_mlp`), relative to the CWD or the repo."""
  path = path or DEFAULT_CONFIG
  candidates = [Path(path), REPO_ROOT / path]
  if not path.endswith(".py"):
    candidates += [Path("experiments") / f"{path}.py", REPO_ROOT / "experiments" / f"{path}.py"]
  for c in candidates:
    if c.is_file():
      return c
  raise ConfigError(f"config file {path!r} not found (looked in {', '.join(map(str, candidates))})")


def load_config_file(path: Optional[str]) -> ml_collections.ConfigDict:
  file = resolve_config_path(path)
  spec = importlib.util.spec_from_file_location(f"jaxgan_config_{file.stem}", file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ConfigError(f"{file} has no get_config() function")
  config = module.get_config()
  missing = [k for k in REQUIRED_KEYS if k not in config]
  if missing:
    raise ConfigError(f"{file} lacks the required top-level keys {missing}")
  return with_data_defaults(config)


# Top-level keys every config has, filled in where a config file leaves them out.
TOP_DEFAULTS = {"conditional": False}
# The `augment` block (D's input augmentation, jaxgan.augment; train_step's docstring):
#   policy        "" off | "ada" | comma-separated DiffAugment items "color,translation,cutout"
#   p             ADA's p: fixed when ada_target is 0, else where it starts
#   ada_target    > 0: adapt p so that E[sign(D(aug(real)))] approaches it (ADA: 0.6)
#   ada_kimg      p can move from 0 to 1 in this many thousand real images (ADA: 500)
#   ada_interval  p is updated every this many steps (ADA: 4)
AUGMENT_DEFAULTS = dict(policy="", p=0.0, ada_target=0.6, ada_kimg=500.0, ada_interval=4)


def with_data_defaults(config) -> ml_collections.ConfigDict:
  """Fills the keys that a config file leaves out: the `data` block's (data.DATA_DEFAULTS)
  and TOP_DEFAULTS, so every such key can be overridden from the command line."""
  from jaxgan.data import DATA_DEFAULTS                              # numpy/jax only, no cycle
  data = dict(config.get("data", {}))
  with config.unlocked():
    config.data = ml_collections.ConfigDict({**DATA_DEFAULTS, **data})
    for key, value in TOP_DEFAULTS.items():
      if key not in config:
        config[key] = value
    config.augment = ml_collections.ConfigDict(
        {**AUGMENT_DEFAULTS, **dict(config.get("augment", {}))})
  return config


def flat_keys(config, prefix: str = "") -> list[str]:
  keys = []
  for k, v in config.items():
    if isinstance(v, ml_collections.ConfigDict):
      keys += flat_keys(v, f"{prefix}{k}.")
    else:
      keys.append(f"{prefix}{k}")
  return keys


def _parse_value(key: str, text: str, default):
  if isinstance(default, bool):
    low = text.lower()
    if low in ("1", "true", "yes"):
      return True
    if low in ("0", "false", "no"):
      return False
    raise ConfigError(f"--config.{key}: expected a boolean (true/false), got {text!r}")
  if isinstance(default, (int, float)):
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise ConfigError(f"--config.{key}: expected a {type(default).__name__}, got {text!r}")
    if isinstance(default, int) and not float(value).is_integer():
      raise ConfigError(f"--config.{key}: expected an int, got {text!r}")
    return type(default)(value)
  if isinstance(default, (tuple, list)):
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      raise ConfigError(f"--config.{key}: expected a tuple like (128, 256), got {text!r}") from None
    if isinstance(value, (int, float)):
      value = (value,)
    if not isinstance(value, (tuple, list)):
      raise ConfigError(f"--config.{key}: expected a tuple like (128, 256), got {text!r}")
    return tuple(value)
  return text


def apply_overrides(config, overrides: Iterable[str]) -> ml_collections.ConfigDict:
  """Applies `KEY=VALUE` overrides (dotted keys, without the `--config.` prefix)."""
  config = copy.deepcopy(ml_collections.ConfigDict(config))  # never the caller's nested blocks
  valid = flat_keys(config)
  for item in overrides:
    if "=" not in item:
      raise ConfigError(f"override {item!r} must look like KEY=VALUE")
    key, text = item.split("=", 1)
    if key not in valid:
      raise ConfigError(f"unknown config key {key!r}. Valid keys: {', '.join(valid)}")
    *parents, leaf = key.split(".")
    node = config
    for p in parents:
      node = node[p]
    node[leaf] = _parse_value(key, text, node[leaf])
  config.lock()
  return config


def config_to_json(config) -> str:
  return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=list)


def config_from_json(text: str) -> ml_collections.ConfigDict:
  def tuples(v):
    if isinstance(v, dict):
      return {k: tuples(x) for k, x in v.items()}
    return tuple(v) if isinstance(v, list) else v
  return ml_collections.ConfigDict(tuples(json.loads(text)))


def _flat_json(config) -> dict:
  """{dotted key: value} with values normalised through JSON (tuples become lists)."""
  def walk(d, prefix):
    out = {}
    for k, v in d.items():
      out.update(walk(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out
  return walk(json.loads(config_to_json(config)), "")


# Keys added after runs were written, with the value that reproduces those runs: a workdir
# whose config.json lacks one resumes as if it had that value.
ADDED_KEYS = {"optim.lr_decay": [0, 0], "pack": 1, "model.d_activation": "relu",
              "model.g_batch_norm": False, "model.d_minibatch_std": 0,
              "model.g_out_conv": 0, "eval_inception": "", "data.label_key": "label",
              "data.path": "", "data.channels": 0, "data.xflip": False, "data.labels": "auto",
              "data.skip_bad": False, "data.cache_dir": "", "data.device_max_mb": 1024,
              "data.prefetch": 2, "conditional": False, "data.limit": 0,
              **{f"augment.{k}": v for k, v in AUGMENT_DEFAULTS.items()}}


def lr_decay(config) -> tuple[int, int]:
  """The config's `optim.lr_decay` (start, end); a config from before the key: its ADDED_KEYS
  value (constant learning rate)."""
  return tuple(config.optim.get("lr_decay", ADDED_KEYS["optim.lr_decay"]))


def config_diff(old, new) -> list[str]:
  """`key: old -> new` for each key outside RESUMABLE_KEYS that differs between two configs."""
  a, b = ({**ADDED_KEYS, **_flat_json(c)} for c in (old, new))
  absent = "<absent>"
  return [f"{k}: {a.get(k, absent)!r} -> {b.get(k, absent)!r}" for k in sorted(set(a) | set(b))
          if k not in RESUMABLE_KEYS and a.get(k, absent) != b.get(k, absent)]


def check_choices(flat: dict, choices: dict) -> None:
  """Each `key` of `choices` present in `flat` ({dotted key: value}) must be one of its valid
  values; a ConfigError names them."""
  for key, valid in choices.items():
    if key in flat and flat[key] not in valid:
      raise ConfigError(f"config.{key} = {flat[key]!r} is not one of: {', '.join(valid)}")


def _check_choices(config) -> None:
  """Names that select code (loss, penalty, data labels) must be known ones. The model block's
  (model.name, its activations, precision) are checked where the models are built
  (`jaxgan.models.check_config`): config does not import the model zoo."""
  from jaxgan import losses, penalties                               # jax only, no cycle
  from jaxgan.folder import LABELS
  choices = {"loss": tuple(losses.LOSSES), "penalty.name": ("none", *penalties.PENALTIES),
             "data.labels": LABELS}
  check_choices(_flat_json(config), choices)                         # absent keys: not checked


def validate(config) -> None:
  """Checks values that the types alone cannot."""
  def positive(key):
    if config[key] <= 0:
      raise ConfigError(f"config.{key} must be > 0, got {config[key]}")
  for key in ("steps", "batch_size", "checkpoint_every", "log_every", "sample_every"):
    positive(key)
  _check_choices(config)
  for key in ("eval_every", "eval_num"):
    if config.get(key, 0) < 0:
      raise ConfigError(f"config.{key} must be >= 0 (0: no eval / the data's default), "
                        f"got {config[key]}")
  if config.penalty.name != "none" and config.penalty.weight < 0:
    raise ConfigError(f"config.penalty.weight must be >= 0, got {config.penalty.weight}")
  pack = config.get("pack", 1)
  if pack < 1 or config.batch_size % pack:
    raise ConfigError(f"config.pack must be >= 1 and divide batch_size ({config.batch_size}), "
                      f"got {pack}")
  aug = config.get("augment", {})
  if aug:
    from jaxgan.augment import parse_policy                          # jax only, no cycle
    try:
      parse_policy(aug.get("policy", ""))
    except ValueError as e:
      raise ConfigError(f"config.augment.policy: {e}") from None
    if aug.get("policy") and pack > 1:
      raise ConfigError(f"config.augment.policy = {aug['policy']!r} cannot be combined with "
                        f"packing (config.pack = {pack}); set pack=1")
    if not 0 <= aug.get("p", 0) <= 1 or not 0 <= aug.get("ada_target", 0) < 1:
      raise ConfigError(f"config.augment.p must be in [0, 1] and config.augment.ada_target in "
                        f"[0, 1) (0: a fixed p), got {aug.get('p')} and {aug.get('ada_target')}")
    if aug.get("ada_kimg", 1) <= 0 or aug.get("ada_interval", 1) < 1:
      raise ConfigError(f"config.augment.ada_kimg must be > 0 and config.augment.ada_interval "
                        f">= 1, got {aug.get('ada_kimg')} and {aug.get('ada_interval')}")
  if config.get("conditional", False) and pack > 1:
    raise ConfigError(f"config.conditional = true cannot pack examples (config.pack = {pack}): "
                      f"the examples of a pack have different labels; set pack=1")
  if config.model.get("g_out_conv", 0) < 0:
    raise ConfigError(f"config.model.g_out_conv must be >= 0 (0: a Dense output layer), got "
                      f"{config.model.g_out_conv}")
  group = config.model.get("d_minibatch_std", 0)
  if group < 0 or group and (config.batch_size // pack) % group:
    raise ConfigError(f"config.model.d_minibatch_std must be 0 (off) or a group size >= 1 that "
                      f"divides D's batch, batch_size / pack = {config.batch_size // pack}; "
                      f"got {group}")
  decay = lr_decay(config)
  if len(decay) != 2 or decay != (0, 0) and not 0 <= decay[0] < decay[1]:
    raise ConfigError(f"config.optim.lr_decay must be (start, end) with 0 <= start < end, or "
                      f"(0, 0) for a constant learning rate; got {decay}")
  data = config.get("data", {})
  if data.get("name") == "folder" and not data.get("path"):
    raise ConfigError("config.data.name = 'folder' needs config.data.path: a folder of images "
                      "or a .zip (--config.data.path=DIR)")
  if data.get("channels", 0) not in (0, 1, 3):
    raise ConfigError(f"config.data.channels must be 0 (from the images), 1 or 3, got "
                      f"{data['channels']}")
  for key in ("image_size", "device_max_mb", "prefetch", "limit"):
    if data.get(key, 0) < 0:
      raise ConfigError(f"config.data.{key} must be >= 0, got {data[key]}")
  k = config.get("steps_per_call", 1)
  if k < 1:
    raise ConfigError(f"config.steps_per_call must be >= 1, got {k}")
  for key in ("steps", "log_every", "sample_every", "checkpoint_every", "eval_every"):
    if config.get(key, 0) % k:
      raise ConfigError(f"config.{key} ({config[key]}) must be a multiple of steps_per_call {k} "
                        "(the host loop runs steps_per_call steps per compiled call)")
