"""Renders benchmark JSON (from train_step.py or compare.py) as the table in RESULTS.md.

  python benchmarks/report.py benchmarks/results/cpu.json            # print the table
  python benchmarks/report.py benchmarks/results/cpu.json --write    # and put it in RESULTS.md
"""
import argparse
import json
from pathlib import Path

RESULTS_MD = Path(__file__).with_name("RESULTS.md")
START, END = "<!-- table:start (benchmarks/report.py) -->", "<!-- table:end -->"


def _fmt(x, spec):
  return format(x, spec) if isinstance(x, (int, float)) and not isinstance(x, bool) else "n/a"


def _options(r):
  opts = []
  if r["penalty_every"] != 1:
    opts.append(f"every {r['penalty_every']}")
  if r["steps_per_call"] != 1:
    opts.append(f"K={r['steps_per_call']}")
  if r["precision"] != "fp32":
    opts.append(r["precision"])
  if r["model"] != "mlp":
    opts.append(r["upsample"])
  if r.get("layers", "fast") != "fast":
    opts.append(f"{r['layers']} layers")
  return ", ".join(opts) or "-"


def table(results) -> str:
  lines = [
      "| # | model | batch | penalty | options | peer | img/s | ms/step | vs torch | compile s "
      "| GFLOP/step | XLA GFLOP/step | GFLOP/s | MFU | load avg |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  commands = []
  for i, res in enumerate(results, 1):
    load = "/".join(f"{x:.1f}" for x in res["env"]["load_avg"][:1] + res["env"].get(
        "load_avg_after", [float("nan")])[:1])
    commands.append(f"{i}. `{res['command']}`")
    for r in res["rows"]:
      if "error" in r:
        lines.append(f"| {i} | {r['model']} | {r['batch_size']} | {r['penalty']} | "
                     f"{_options(r)} | {r['peer']} | not run: {r['error'][:90]} |||||||||")
        continue
      gf = lambda x: _fmt(x / 1e9 if isinstance(x, (int, float)) else None, ".2f")
      mfu = f"{100 * r['mfu']:.1f}%" if isinstance(r["mfu"], float) else "n/a"
      threads = f" ({r['threads']} thr)" if r.get("threads") else ""
      lines.append(
          f"| {i} | {r['model']} | {r['batch_size']} | {r['penalty']} | {_options(r)} | "
          f"{r['peer']}{threads} | {r['images_per_sec']:.1f} | {r['step_ms_median']:.1f} | "
          f"{_fmt(r.get('speed_vs_torch'), '.2f')}x | {r['compile_s']:.1f} | "
          f"{gf(r['flops_per_step'])} | {gf(r.get('xla_flops_per_step'))} | "
          f"{gf(r['achieved_flops_per_s'])} | {mfu} | {load} |")
  env = results[0]["env"]
  head = (f"Measured {env['date']} on {env['cpu']} ({env['cpu_count']} cores), backend "
          f"{env['backend']} ({env['device_kind']}); jax {env['jax']}, jaxlib {env['jaxlib']}, "
          f"flax {env['flax']}, optax {env['optax']}, torch {env['torch']}, python "
          f"{env['python']}; XLA_FLAGS={env['xla_flags'] or '(none)'}. "
          "'vs torch' = img/s over the faster torch eager row (2 or 1 threads) of the same "
          "command; load avg = 1-min load average before / after the command. MFU peak: "
          f"{next((r['peak_source'] for res in results for r in res['rows'] if 'peak_source' in r), 'n/a')}.")
  return "\n".join([head, "", *lines, "", "Commands (run from the repo root):", "", *commands])


def write_results_md(text: str, path: Path = RESULTS_MD) -> None:
  md = path.read_text()
  if START not in md or END not in md:
    raise SystemExit(f"{path} lacks the markers {START} ... {END}")
  before, rest = md.split(START, 1)
  _, after = rest.split(END, 1)
  path.write_text(f"{before}{START}\n{text}\n{END}{after}")


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("json", help="a JSON file from compare.py (a list) or train_step.py (one)")
  p.add_argument("--write", action="store_true", help=f"replace the table in {RESULTS_MD}")
  args = p.parse_args(argv)
  data = json.loads(Path(args.json).read_text())
  text = table(data if isinstance(data, list) else [data])
  print(text)
  if args.write:
    write_results_md(text)


if __name__ == "__main__":
  main()
