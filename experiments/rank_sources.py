"""Rank candidate sources for a target task without fine-tuning:
`python -m experiments.rank_sources --config=configs/rank_sources.py --config.sources=(...)`.

Writes summary.json (each source's scores, the best source per score, and Kendall's tau
with `config.accuracies` when given), ranking.json and report.md. Every source must load
and take the target's images before anything is written. The scores:
tlu/transfer/transferability.py.
"""

import jax

from experiments import common
from tlu.evaluate import run_features
from tlu.train import mesh as mesh_lib, workdir as workdir_lib
from tlu.transfer import transferability


def prepare(config, workdir):
  common.check_batch(config.batch_size)
  try:
    transferability.check_config(config)
    shape, _ = run_features.task_shape(config.dataset)
    for source in config.sources:
      run_features.load_backbone(source, config.source_step, image_shape=shape)
  except ValueError as e:   # DatasetError, PretrainedError
    raise common.ConfigError(str(e)) from None
  common.check_workdir(workdir, config)


def main(config, workdir):
  workdir = common.resolve_workdir(workdir, 'rank_sources')
  prepare(config, workdir)
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
    workdir_lib.write_json(workdir_lib.path(workdir, 'summary.json'), ranking.summary())
    workdir_lib.write_text(workdir_lib.path(workdir, 'report.md'), (
        f'# Source ranking for {ds.name} classes {tuple(ds.classes) or "all"}\n\n'
        f'Scores of each source on the {ds.train_split} split (higher is better), without '
        f'fine-tuning.\n\n{ranking.table()}\n'))
  print(f'report: {workdir_lib.path(workdir, "report.md")}')


if __name__ == '__main__':
  common.launch(main, 'configs/rank_sources.py')
