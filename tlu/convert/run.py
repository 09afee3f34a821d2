"""A converted checkpoint as a tlu run directory, which every stage takes as `--config.source`.

  config.json      the conversion's config, with `model` (the tlu model config, input
                   convention included) and `num_classes` (the file's classifier, 0: none)
  checkpoints/0    the variables {'params': {'backbone', 'head'?}, 'batch_stats'} (orbax,
                   through `tlu.train.checkpoint`, as a trained run's)
  convert.json     every leaf: copied or adapted from which file key (TransplantReport)
  summary.json     {'parameters', 'num_classes', 'copied', 'adapted', 'unused'}
"""

import json

import jax
import numpy as np

from tlu.train import workdir as workdir_lib
from tlu.train.checkpoint import Checkpointer


def run_config(config, converted):
  """The config.json of a conversion: `config` (a dict) with the resolved model, as JSON
  reads it back (lists, not tuples), so a re-run compares equal."""
  return json.loads(json.dumps({**config, 'model': converted.model,
                                'num_classes': converted.num_classes}))


def write(workdir, config, converted):
  """Claims `workdir` for `run_config(config, converted)` and writes the run (see above).

  A workdir that already holds this conversion is left as it is (returns False);
  one holding anything else raises tlu.train.workdir.WorkdirError.
  """
  record = run_config(config, converted)
  if workdir_lib.done(workdir):
    workdir_lib.check(workdir, record)
    return False
  workdir_lib.claim(workdir, record)
  ckpt = Checkpointer(workdir_lib.path(workdir, 'checkpoints'), every=1, keep=1)
  ckpt.save(0, converted.variables, force=True)
  ckpt.close()
  report = converted.report
  summary = {'parameters': int(sum(np.size(x) for x in jax.tree.leaves(
      converted.variables['params']))), 'num_classes': converted.num_classes,
             'copied': len(report.copied), 'adapted': len(report.adapted),
             'unused': len(report.unused_source)}
  if jax.process_index() == 0:
    workdir_lib.write_json(workdir_lib.path(workdir, 'convert.json'), report.to_json())
    workdir_lib.write_json(workdir_lib.path(workdir, 'summary.json'), summary)
  return True
