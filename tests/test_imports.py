"""The package's modules import each other without cycles (lazy imports inside functions
count too): e.g. config validation does not import the model zoo, and eval does not import
the train loop (nor the train loop eval's through a cycle)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "jaxgan"


def import_graph() -> dict:
  """{module: the jaxgan modules it imports anywhere in its file}; `from pkg import sub` of a
  submodule counts as importing pkg.sub (not the package's __init__, which every submodule
  import passes through)."""
  files = {".".join(f.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__"): f
           for f in ROOT.rglob("*.py")}
  graph = {}
  for name, f in files.items():
    deps = set()
    for node in ast.walk(ast.parse(f.read_text())):
      if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("jaxgan"):
        named = {f"{node.module}.{a.name}" for a in node.names}
        deps.update(named & set(files))
        if named - set(files):                            # names defined in the module itself
          deps.add(node.module)
      elif isinstance(node, ast.Import):
        deps.update(a.name for a in node.names if a.name.startswith("jaxgan"))
    graph[name] = {d for d in deps if d in files and d != name}
  return graph


def find_cycle(graph: dict):
  """One import cycle as a list of modules, or None."""
  state, stack = {}, []
  def visit(m):
    state[m] = "open"
    stack.append(m)
    for d in sorted(graph[m]):
      if state.get(d) == "open":
        return stack[stack.index(d):] + [d]
      if d not in state:
        found = visit(d)
        if found:
          return found
    state[m] = "done"
    stack.pop()
    return None
  for m in sorted(graph):
    if m not in state:
      found = visit(m)
      if found:
        return found
  return None


def test_the_package_has_no_import_cycles_but_the_folder_dispatch():
  """One known exception: data.make_source imports jaxgan.folder inside the function for
  data.name = 'folder', and folder builds on data's Source (a plugin dispatch)."""
  graph = {k: set(v) for k, v in import_graph().items() if k != "jaxgan"}
  assert {"jaxgan.config", "jaxgan.models", "jaxgan.eval", "jaxgan.train"} <= set(graph)
  assert find_cycle(graph) == ["jaxgan.data", "jaxgan.folder", "jaxgan.data"]
  graph["jaxgan.data"].discard("jaxgan.folder")
  assert find_cycle(graph) is None


def test_the_cycle_finder_finds_one():
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
  assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("module,forbidden", [("jaxgan.config", "jaxgan.models"),
                                              ("jaxgan.eval", "jaxgan.train")])
def test_named_cycles_are_gone(module, forbidden):
  graph = {k: v for k, v in import_graph().items() if k != "jaxgan"}
  seen, todo = set(), [module]
  while todo:
    m = todo.pop()
    for d in graph[m] - seen:
      seen.add(d)
      todo.append(d)
  assert forbidden not in seen
