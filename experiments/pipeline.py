"""The default experiment, end to end on embedded data: `python -m experiments.pipeline`.

`config.stages` declares (sub-workdir, stage, config key, source stage); every stage is
checked first, then each runs (or resumes) in its sub-workdir; report.md puts every
stage's headline numbers next to their baselines, with pictures.
"""

import importlib
import sys
import time

import jax

from experiments import common
from tlu import checks
from tlu.report import pipeline as report_lib
from tlu.train import compile_time, mesh as mesh_lib, workdir as workdir_lib

DEFAULT_CONFIG = 'configs/pipeline.py'


def check(config, workdir, wired=False):
  """[(sub-workdir, stage module, its config, its plan)], each source wired to its stage's dir."""
  del wired
  common.check_workdir(workdir, config)
  stages = []
  for sub, name, key, source in config.stages:
    cfg, path = config[key].copy_and_resolve_references(), str(workdir_lib.path(workdir, sub))
    if source:
      with cfg.unlocked():
        cfg.source = str(workdir_lib.path(workdir, source))
    stage = importlib.import_module(f'experiments.{name}')
    with checks.under(f'{key}.'):   # a value's key as written in the pipeline's config
      stages.append((sub, stage, cfg, stage.check(cfg, path, bool(source))))
  return stages


def run(config, workdir, stages):
  common.claim_workdir(workdir, config)
  t0, times = time.time(), {}
  for sub, stage, cfg, plan in stages:
    path = str(workdir_lib.path(workdir, sub))
    if workdir_lib.done(path):
      print(f'== {sub}: done before ({path}), not recomputed')
      continue
    print(f'== {sub} -> {path}')
    start = time.time()
    with compile_time.CompileClock() as clock:
      stage.run(cfg, path, plan)
    times[sub] = time.time() - start
    print(f'== {sub}: {clock.line(times[sub])}')
  if times or not workdir_lib.path(workdir, 'report.md').exists():
    report_lib.write(config, workdir, times, mesh_lib.make_mesh())
  if jax.process_index() == 0:
    print(f'pipeline finished in {time.time() - t0:.0f} s; report: {workdir}/report.md')


if __name__ == '__main__':
  common.launch(sys.modules[__name__])
