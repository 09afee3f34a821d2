"""One-class anomaly detection on features: `python -m experiments.anomaly --config=configs/digits_anomaly.py`.

Features: the backbone of `--config.source` (any run directory, at `--config.source_step`),
or of the task `config.pretrain`, trained first in `<workdir>/pretrain`. Scorers and
protocol: tlu/evaluate/anomaly_eval.py; summary.json: `<features>/<scorer>/mean_auroc`.
"""

import jax
import numpy as np

from experiments import common
from tlu.evaluate import anomaly_eval, run_features
from tlu.evaluate.representation import l2_normalize
from tlu.report import tables
from tlu.train import mesh as mesh_lib, workdir as workdir_lib


def prepare(config, workdir, check_source=True):
  """Every check before anything is written; returns (feature source, scorers)."""
  common.check_batch(config.batch_size)
  try:
    scorers = anomaly_eval.scorers(config.knn_k, config.mahalanobis_shrinkage,
                                   config.kmeans_clusters, config.seed)
    shape, _ = run_features.task_shape(config.dataset)
    common.check_workdir(workdir, config)
    return run_features.FeatureSource(config, workdir, shape, check_source), scorers
  except ValueError as e:
    raise common.ConfigError(str(e)) from None


def main(config, workdir):
  workdir = common.resolve_workdir(workdir, 'anomaly')
  source, scorers = prepare(config, workdir)
  common.claim_workdir(workdir, config)
  if source.needs_training():
    print(f'pretraining the representation in {source.run_dir}')
  mesh = mesh_lib.make_mesh()
  backbone = source.backbone(mesh, should_stop=common.preempted)
  ds = config.dataset
  (pix_train, f_train, y_train), (pix_test, f_test, y_test) = run_features.pixels_and_features(
      backbone, ds, (ds.train_split, ds.eval_split), batch_size=config.batch_size, mesh=mesh)
  reps = {'raw pixels': (pix_train, pix_test),
          'contrastive features': (l2_normalize(f_train), l2_normalize(f_test))}
  rows, summary = anomaly_eval.auroc_table(reps, scorers, y_train, y_test)
  for rep, score, *_, mean in rows:
    print(f'{rep:>22} {score:>22}: mean AUROC {mean:.4f}')
  if jax.process_index() != 0:
    return
  workdir_lib.write_json(workdir_lib.path(workdir, 'summary.json'), summary)
  table = tables.key_value_table(
      rows, ('features', 'score', *[f'normal={c}' for c in np.unique(y_test)], 'mean'))
  workdir_lib.write_text(workdir_lib.path(workdir, 'report.md'), (
      f'# One-class anomaly detection on {ds.name}\n\n'
      'Each class in turn is normal: the scorer sees only its training images; every test '
      'image of another class is an anomaly. AUROC (anomaly = positive). Features: backbone '
      f'of `{backbone.run_dir}` (step {backbone.step}), L2-normalised; that backbone may have '
      'seen images of every class (without labels) during its own training.\n\n'
      f'{table}\n'))
  print(f'report: {workdir_lib.path(workdir, "report.md")}')


if __name__ == '__main__':
  common.launch(main, 'configs/digits_anomaly.py')
