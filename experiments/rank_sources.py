"""Rank candidate sources for a target task without fine-tuning:
`python -m experiments.rank_sources --config=configs/rank_sources.py --config.sources=(...)`.

Writes summary.json (each source's scores, the best source per score, and Kendall's tau
with `config.accuracies` when given), ranking.json and report.md. Every source must load
and take the target's images before anything is written. The scores:
tlu/transfer/transferability.py.
"""

import sys

import jax

from experiments import common
from tlu.evaluate import run_features
from tlu.train import mesh as mesh_lib, sweep, workdir as workdir_lib
from tlu.transfer import transferability

DEFAULT_CONFIG = 'configs/rank_sources.py'


def check(config, workdir, wired=False):
  common.check_batch(config.batch_size)
  transferability.check_config(config)
  shape, _ = run_features.task_shape(config.dataset)
  for source in () if wired else config.sources:
    run_features.load_backbone(source, config.source_step, image_shape=shape)
  common.check_workdir(workdir, config)


def run(config, workdir, plan):
  del plan
  common.claim_workdir(workdir, config)
  mesh, ds, scores = mesh_lib.make_mesh(), config.dataset, {}
  for source in config.sources:
    feats, probs, labels = transferability.source_outputs(
        source, ds, ds.train_split, batch_size=config.batch_size, mesh=mesh,
        step=config.source_step)
    scores[source] = transferability.scores(feats, labels, probs, config.scores)
    print(source, ' '.join(f'{k}={v:.4f}' for k, v in scores[source].items()))
  ranking = transferability.Ranking(scores, dict(zip(config.sources, config.accuracies)))
  print(ranking.table())
  if jax.process_index() == 0:
    workdir_lib.write_json(workdir_lib.path(workdir, 'ranking.json'),
                           {n: ranking.order(n) for n in ranking.names()})
  sweep.write(workdir, ranking.summary(), ranking.report(ds))


if __name__ == '__main__':
  common.launch(sys.modules[__name__])
