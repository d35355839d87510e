"""The README and docs/*.md say only what the code accepts.

- Every `jaxgan ...` command line (in a code block or in inline code; after `VAR=value`,
  `time`, `.venv/bin/`, `python -m jaxgan`, or inside a quoted `--command="... && ..."`) parses
  with the CLI's own argparse parser (`cli._parser()`, `cli._split_overrides`), and its
  `--config.KEY=VALUE` overrides (and a sweep's `--param`/`--values`) are valid for the named
  config (`config.load_config_file` + `config.apply_overrides`). A synopsis line (one with
  `[...]`, `...`, `|`, `$VAR` or an UPPERCASE placeholder such as `DIR`, `N`, `KEY`) is checked
  for its subcommand and option names, and for any lowercase `--config.key` it names.
- Every `python ...` command line names a script (or `-m` module of this repo) that exists.
- Every `experiments/*.py` (and other repo file: `benchmarks/`, `tests/`, `jaxgan/` paths with an
  extension) named in them exists, and every relative link resolves, anchors included.
- The README's library example runs (3 steps instead of 1,000) and is the one in docs/library.md.

The unit tests of the checker feed it known-bad lines, so a check that stopped working fails.
"""
import contextlib
import functools
import io
import itertools
import re
import shlex
from pathlib import Path

import pytest

from jaxgan import cli
from jaxgan import config as config_lib

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^(```|~~~)")
_WRAPPERS = {"time", "/usr/bin/time", "-v", "nohup", "env"}
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_PLACEHOLDER = re.compile(r"(?<![A-Za-z0-9_])[A-Z][A-Z0-9_]*(?![a-z0-9_])")
_SYNOPSIS_MARKS = ("[", "]", "...", "|", "$", "<", "{")


# ---------------------------------------------------------------------------------------------
# extraction

def split_markdown(text: str):
  """(shell code-block lines, inline code spans, prose) of a markdown text. Shell blocks are
  those without a language or marked bash/sh/shell/console/text (not python); an inline span
  may run over a line break (its whitespace is normalised)."""
  code, prose, fence = [], [], None
  for line in text.splitlines():
    m = _FENCE.match(line.strip())
    if m:
      fence = line.strip()[3:].strip() if fence is None else None
      continue
    if fence is None:
      prose.append(line)
    elif fence in ("", "bash", "sh", "shell", "console", "text"):
      code.append(line)
  prose_text = "\n".join(prose)
  spans = [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", prose_text)]
  return code, spans, prose_text


def code_commands(lines):
  """Logical command lines of a code block: backslash continuations joined, and indented
  synopsis continuations (`  [--opt X]`, `  --opt X`) appended to the `jaxgan` line above."""
  out = []
  pending = ""
  for line in lines:
    stripped = line.strip()
    if pending:
      pending += " " + stripped
    elif out and line[:1].isspace() and stripped[:1] in ("[", "-") and "jaxgan" in out[-1]:
      out[-1] += " " + stripped
      continue
    else:
      pending = stripped
    if pending.endswith("\\"):
      pending = pending[:-1].rstrip()
      continue
    out.append(pending)
    pending = ""
  if pending:
    out.append(pending)
  return [c for c in out if c]


def _tokens(line: str):
  try:
    return shlex.split(line, comments=True)
  except ValueError:  # an unbalanced quote: prose, not a command
    return None


def commands(line: str):
  """The (program, args) command lines in one shell line: `jaxgan` and `python` only. Splits on
  `&&` and `;`, strips env assignments and time/nohup wrappers, and descends into quoted shell
  strings (`--command="cd jaxgan && .venv/bin/jaxgan train ..."`)."""
  toks = _tokens(line)
  if not toks:
    return []
  found = []
  for key, group in itertools.groupby(toks, lambda t: t in ("&&", ";", "||")):
    if key:
      continue
    part = list(group)
    for t in part:                                   # quoted shell strings inside the line
      if "=" in t and " " in t and t.startswith("--"):
        found += commands(t.split("=", 1)[1])
      elif " " in t and ("&&" in t or "jaxgan " in t or "python" in t):
        found += commands(t)
    while part and (_ENV.match(part[0]) or part[0] in _WRAPPERS):
      part = part[1:]
    if not part:
      continue
    prog = part[0].rsplit("/", 1)[-1]
    if prog in ("python", "python3") and part[1:3] == ["-m", "jaxgan"]:
      found.append(("jaxgan", part[3:]))
    elif prog == "jaxgan":
      found.append(("jaxgan", part[1:]))
    elif prog in ("python", "python3"):
      found.append(("python", part[1:]))
  return found


def doc_commands(text: str):
  """(raw line, program, args) of every command line in a markdown text."""
  code, spans, _ = split_markdown(text)
  out = []
  for raw in code_commands(code) + spans:
    for prog, args in commands(raw):
      out.append((raw, prog, args))
  return out


# ---------------------------------------------------------------------------------------------
# checks: each returns a list of error strings (empty: fine)

def _subparsers(parser):
  return next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices


@functools.lru_cache(maxsize=None)
def _config(name):
  return config_lib.load_config_file(name)


def _check_overrides(config_name, overrides, raw):
  try:
    config_lib.apply_overrides(_config(config_name), overrides)
  except config_lib.ConfigError as e:
    return [f"{raw!r}: {str(e)[:300]}"]
  return []


def is_synopsis(args) -> bool:
  text = " ".join(args)
  return any(m in text for m in _SYNOPSIS_MARKS) or bool(_PLACEHOLDER.search(text))


def check_synopsis(args, raw):
  """Subcommand and option names of a synopsis line; its lowercase --config keys."""
  sub = _subparsers(cli._parser())
  words = [a for a in args if not a.startswith(("-", "["))]
  if not words or words[0] not in sub:
    return [f"{raw!r}: no subcommand of {sorted(sub)}"]
  parser = sub[words[0]]
  if words[0] == "data":
    inner = _subparsers(parser)
    if len(words) < 2 or words[1] not in inner:
      return [f"{raw!r}: `jaxgan data` has the subcommands {sorted(inner)}"]
    parser = inner[words[1]]
  errors, config_name = [], None
  if "--config" in args and args.index("--config") + 1 < len(args):
    candidate = args[args.index("--config") + 1]
    config_name = None if is_synopsis([candidate]) else candidate
  for tok in " ".join(args).replace("[", " ").replace("]", " ").replace("|", " ").split():
    if not tok.startswith("--"):
      continue
    opt, _, value = tok.partition("=")
    if opt.startswith("--config."):
      key = opt[len("--config."):]
      if words[0] not in ("train", "sweep"):
        errors.append(f"{raw!r}: {words[0]} takes no --config.* overrides")
      elif not _PLACEHOLDER.search(key) and key not in config_lib.flat_keys(_config(config_name)):
        errors.append(f"{raw!r}: unknown config key {key!r}")
    elif opt not in parser._option_string_actions:
      errors.append(f"{raw!r}: {opt} is not an option of `jaxgan {' '.join(words[:2])}`")
  return errors


def check_jaxgan(args, raw):
  """A concrete command line: parsed as `jaxgan` parses it, its overrides applied."""
  if not args:
    return []                                          # `jaxgan`: the program's name in prose
  if all(not a.startswith("-") for a in args) and len(args) <= 2 and args[0] in _subparsers(
      cli._parser()) and (len(args) == 1 or args[0] == "data"):
    return check_synopsis(args, raw)                   # `jaxgan eval`: a command's name in prose
  if is_synopsis(args):
    return check_synopsis(args, raw)
  err = io.StringIO()
  try:
    rest, overrides = cli._split_overrides(args)
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
      ns = cli._parser().parse_args(rest)
  except SystemExit as e:
    if e.code in (0, None):                            # --help
      return []
    detail = err.getvalue().strip().splitlines()[-1:] or [str(e.code)]
    return [f"{raw!r}: {detail[0]}"]
  if ns.command in ("train", "sweep") and not getattr(ns, "summarize", False):
    errors = _check_overrides(ns.config, overrides, raw)
    if ns.command == "sweep" and ns.param:
      values = [v for v in (ns.values or "").split(",") if v] or ["0"]
      errors += _check_overrides(ns.config, [f"{ns.param}={v}" for v in values], raw)
    return errors
  if overrides:
    return [f"{raw!r}: {ns.command} takes no --config.* overrides"]
  if ns.command == "sample" and Path(ns.out).suffix not in (".npy", ".png"):
    return [f"{raw!r}: --out must end in .npy or .png"]
  return []


def check_python(args, raw):
  """`python SCRIPT ...` names a script of this repo that exists; `python -m MODULE` a module
  of this repo (stdlib modules such as venv are not checked)."""
  args = [a for a in args if a not in ("-u", "-O", "-B")]
  if not args:
    return []
  if args[0] == "-m":
    if len(args) < 2:
      return [f"{raw!r}: -m without a module"]
    parts = args[1].split(".")
    if parts[0] not in ("jaxgan", "benchmarks", "experiments", "tests"):
      return []
    base = ROOT.joinpath(*parts)
    if not (base.with_suffix(".py").is_file() or (base / "__main__.py").is_file()):
      return [f"{raw!r}: no module {args[1]} in the repo"]
    return []
  if args[0].startswith("-") or not args[0].endswith(".py"):
    return []
  if not (ROOT / args[0]).is_file():
    return [f"{raw!r}: {args[0]} does not exist"]
  return []


_REPO_FILE = re.compile(r"(?<![\w/.-])((?:experiments|benchmarks|tests|jaxgan|docs)/"
                        r"[\w./*{},-]*\.(?:py|md|json|png|log))")


def _expand(path: str):
  m = re.search(r"\{([^}]*)\}", path)
  if not m:
    return [path]
  return [p for alt in m.group(1).split(",")
          for p in _expand(path[:m.start()] + alt + path[m.end():])]


def check_files(text: str):
  """Every repo file the text names (experiments/*.py and the like) exists."""
  errors = []
  for path in sorted(set(_REPO_FILE.findall(text))):
    for p in _expand(path):
      if "*" in p:
        if not list(ROOT.glob(p)):
          errors.append(f"{p}: matches no file")
      elif not (ROOT / p).is_file():
        errors.append(f"{p}: no such file")
  return errors


def slug(heading: str) -> str:
  """GitHub's anchor of a heading."""
  s = heading.strip().lower().replace("`", "")
  s = re.sub(r"[^\w\- ]", "", s)
  return s.replace(" ", "-")


def anchors(text: str) -> set:
  _, _, prose = split_markdown(text)
  return {slug(m.group(1)) for line in prose.splitlines() if (m := re.match(r"#{1,6} (.+)", line))}


def check_links(path: Path, text: str):
  """Relative links resolve to a file, and `#anchor`s to a heading of it."""
  errors = []
  _, _, prose = split_markdown(text)
  for target in re.findall(r"\]\(([^)\s]+)\)", prose):
    if re.match(r"[a-z]+:", target):
      continue
    file, _, anchor = target.partition("#")
    dest = (path.parent / file).resolve() if file else path
    if file and not dest.exists():
      errors.append(f"{path.name}: link {target}: no such file")
    elif anchor and dest.suffix == ".md" and anchor not in anchors(
        dest.read_text() if file else text):
      errors.append(f"{path.name}: link {target}: no heading #{anchor} in {dest.name}")
  return errors


def check_text(text: str, path: Path = ROOT / "README.md"):
  errors = []
  for raw, prog, args in doc_commands(text):
    errors += (check_jaxgan if prog == "jaxgan" else check_python)(args, raw)
  return errors + check_files(text) + check_links(path, text)


# ---------------------------------------------------------------------------------------------
# the docs

@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_commands_files_and_links(path):
  text = path.read_text()
  assert doc_commands(text) or path.name not in ("README.md", "cli.md")
  errors = check_text(text, path)
  assert not errors, "\n".join(errors)


def test_the_docs_show_many_commands():
  """The extractor finds the commands (so the check above is not vacuous)."""
  found = [c for p in DOCS for c in doc_commands(p.read_text())]
  jaxgan = [args[0] for _, prog, args in found if prog == "jaxgan" and args]
  assert {"train", "sample", "eval", "sweep", "data"} <= set(jaxgan)
  assert len(found) > 40
  assert sum(prog == "python" for _, prog, _ in found) > 5


def test_every_docs_page_is_linked_from_the_readme():
  readme = (ROOT / "README.md").read_text()
  for page in DOCS[1:]:
    assert f"(docs/{page.name})" in readme, page.name


def test_ci_runs_the_readmes_test_command():
  """The README's set-up commands are the Makefile's targets, and CI runs `make test`."""
  code, _, _ = split_markdown((ROOT / "README.md").read_text())
  shown = [c.split("#")[0].strip() for c in code_commands(code)]
  assert "make demo" in shown and "make test" in shown
  makefile = (ROOT / "Makefile").read_text()
  assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
  ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
  assert "make test" in ci


def _python_blocks(text: str):
  return re.findall(r"```python\n(.*?)```", text, re.S)


def test_readme_library_example_runs_and_matches_docs():
  example = _python_blocks((ROOT / "README.md").read_text())[0]
  assert example in _python_blocks((ROOT / "docs" / "library.md").read_text())
  assert example.count("range(1000)") == 1
  namespace = {}
  exec(compile(example.replace("range(1000)", "range(3)"), "README.md", "exec"), namespace)
  assert int(namespace["state"].step) == 3
  assert namespace["images"].shape == (16, 28, 28, 1)
  assert {"d_loss", "g_loss", "penalty"} <= set(namespace["metrics"])


# ---------------------------------------------------------------------------------------------
# the checker fails where it must

@pytest.mark.parametrize("line, match", [
    ("jaxgan train --confg experiments/mnist_mlp.py", "unrecognized arguments"),
    ("jaxgan trian", "invalid choice"),
    ("jaxgan train --config.stepz=5", "unknown config key 'stepz'"),
    ("jaxgan train --config.steps=many", "expected a int"),
    ("jaxgan train --config experiments/grid25.py --config.model.nope=1", "unknown config key"),
    ("jaxgan train --config experiments/nope.py", "not found"),
    ("jaxgan sample --workdir runs/x --num ten --out x.png", "invalid int value"),
    ("jaxgan sample --workdir runs/x --out x.jpg", "must end in .npy or .png"),
    ("jaxgan eval --workdir runs/x --config.steps=3", "takes no --config"),
    ("jaxgan sweep --config experiments/grid25.py --param penalty.wieght --values 1",
     "unknown config key"),
    ("jaxgan eval --workdir DIR [--bogus N]", "--bogus is not an option"),
    ("jaxgan train [--config.KEY=VALUE ...] [--config.stepz=N]", "unknown config key 'stepz'"),
    ("jaxgan data inspekt PATH", "has the subcommands"),
    ("CUDA_VISIBLE_DEVICES=0 .venv/bin/jaxgan train --workdir", "expected one argument"),
    ("/usr/bin/time -v .venv/bin/jaxgan train --no-progrss", "unrecognized arguments"),
    ("gcloud ssh x --command=\"cd jaxgan && .venv/bin/jaxgan train --bad\"", "unrecognized"),
    ("python experiments/nope.py --out x", "does not exist"),
    ("python -m benchmarks.nope", "no module"),
])
def test_checker_refuses_a_bad_line(line, match):
  errors = check_text(f"```bash\n{line}\n```\n")
  assert any(match in e for e in errors), errors
  errors = check_text(f"Run `{line}` here.\n")
  assert any(match in e for e in errors), errors


@pytest.mark.parametrize("line", [
    "jaxgan train --config experiments/mnist_dcgan32.py --config.data.image_size=64 --no-progress",
    "jaxgan train --config mnist_dcgan32 --config.steps 100",
    "jaxgan sweep --config experiments/grid25.py --seeds 2 --param penalty.weight --values 0.1,1",
    "jaxgan sweep --summarize --workdir runs/grid25_sweep",
    "jaxgan sample --workdir DIR --num N --seed S --out FILE.npy|FILE.png [--step K]",
    "jaxgan eval",
    "jaxgan data inspect ~/photos --image-size 64 --preview p.png",
    "python -m jaxgan train --no-progress",
    "python3 -m venv .venv",
    "python benchmarks/compare.py --out x.json",
])
def test_checker_accepts_a_good_line(line):
  assert check_text(f"```bash\n{line}\n```\n") == []


def test_checker_refuses_missing_files_and_links(tmp_path):
  page = tmp_path / "page.md"
  text = ("See experiments/nope.py, `benchmarks/results/x_{a,b}.json`, [a](missing.md) and "
          "[b](#nowhere).\n\n## Here\n\n[c](#here)\n")
  errors = check_text(text, page)
  assert any("experiments/nope.py" in e for e in errors)
  assert any("x_a.json" in e for e in errors) and any("x_b.json" in e for e in errors)
  assert any("missing.md" in e for e in errors)
  assert any("#nowhere" in e for e in errors)
  assert not any("#here" in e for e in errors)


def test_code_block_continuations_are_joined():
  lines = ["jaxgan train --config experiments/grid25.py \\", "  --config.steps=10",
           "jaxgan sweep --config FILE --seeds N", "             [--bogus K]"]
  assert code_commands(lines) == ["jaxgan train --config experiments/grid25.py --config.steps=10",
                                  "jaxgan sweep --config FILE --seeds N [--bogus K]"]
  assert any("--bogus" in e for e in check_text("```\n" + "\n".join(lines) + "\n```\n"))
