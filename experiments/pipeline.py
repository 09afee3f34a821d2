"""The default experiment, end to end on embedded data: `python -m experiments.pipeline`.

The stages are declared in the config (`stages`: sub-workdir, stage module, config
key, source stage); each runs in its sub-workdir and resumes; report.md puts every
stage's headline numbers next to their baselines, with pictures.
"""

import importlib
import time

import jax

from experiments import common
from tlu.report import pipeline as report_lib
from tlu.train import mesh as mesh_lib, workdir as workdir_lib


def stage_configs(config, workdir):
  """[(sub-workdir, stage module, its config)] with each source wired to its stage's dir."""
  out = []
  for sub, stage, key, source in config.stages:
    cfg = config[key].copy_and_resolve_references()
    if source:
      with cfg.unlocked():
        cfg.source = str(workdir_lib.path(workdir, source))
    out.append((sub, importlib.import_module(f'experiments.{stage}'), cfg, bool(source)))
  return out


def main(config, workdir):
  workdir = common.resolve_workdir(workdir, 'pipeline')
  common.check_workdir(workdir, config)
  stages = stage_configs(config, workdir)
  for sub, module, cfg, wired in stages:   # every check that needs no compute, for every stage
    module.prepare(cfg, str(workdir_lib.path(workdir, sub)), **({'check_source': False}
                                                                 if wired else {}))
  common.claim_workdir(workdir, config)
  t0, times = time.time(), {}
  for sub, module, cfg, _ in stages:
    path = str(workdir_lib.path(workdir, sub))
    if workdir_lib.done(path):
      print(f'== {sub}: done before ({path}), not recomputed')
      continue
    print(f'== {sub} -> {path}')
    start = time.time()
    module.main(cfg, path)
    times[sub] = time.time() - start
  if times or not workdir_lib.path(workdir, 'report.md').exists():
    report_lib.write(config, workdir, times, mesh_lib.make_mesh())
  if jax.process_index() == 0:
    print(f'pipeline finished in {time.time() - t0:.0f} s; report: {workdir}/report.md')


if __name__ == '__main__':
  common.launch(main, 'configs/pipeline.py')
