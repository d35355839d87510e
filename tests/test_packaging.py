"""constraints.txt (the versions `make install` pins) against pyproject.toml's requirements."""
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _pins() -> dict:
  pins = {}
  for line in (ROOT / "constraints.txt").read_text().splitlines():
    if line.strip() and not line.startswith("#"):
      name, version = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line.strip()).groups()
      assert canonicalize_name(name) not in pins, f"{name} pinned twice"
      pins[canonicalize_name(name)] = version
  return pins


def test_constraints_pin_every_requirement_within_its_range():
  """`make install` installs with -c constraints.txt: each runtime and test requirement must be
  pinned there (else it floats to whatever the registry has that day), at a version its range
  in pyproject.toml allows."""
  project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
  pins = _pins()
  for spec in project["dependencies"] + project["optional-dependencies"]["test"]:
    req = Requirement(spec)
    name = canonicalize_name(req.name)
    assert name in pins, f"{req.name} (pyproject.toml) is not pinned in constraints.txt"
    assert req.specifier.contains(pins[name], prereleases=True), (
        f"constraints.txt pins {req.name}=={pins[name]}, outside pyproject.toml's {spec!r}")
  assert "jaxgan" not in pins                                       # the package itself floats
