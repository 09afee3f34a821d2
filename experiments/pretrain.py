"""Self-supervised pretraining: `python -m experiments.pretrain --config=configs/digits_ssl.py:<method>`.

The method (config.method.name) trains on the training split's images only; its
evaluations (kNN, linear probes, k-means) read labels to score the frozen backbone.
With `pixel_baseline`, the same evaluations score raw pixels (summary.json: pixels_*).
"""

import sys

from experiments import common, train
from tlu import evaluators
from tlu.train import mesh as mesh_lib, task, workdir as workdir_lib

DEFAULT_CONFIG = 'configs/digits_ssl.py'
check = train.check


def run(config, workdir, splits):
  mesh = mesh_lib.make_mesh()
  summary, _ = task.fit_task(task.Trainer(mesh), config, workdir, splits, summary_prefix='',
                             should_stop=common.preempted, desc='pretrain')
  if config.pixel_baseline:
    pixels = evaluators.score_pixels(config.evals, splits, config.eval_batch_size, mesh)
    summary.update({f'pixels_{k}': v for k, v in pixels.items()})
    workdir_lib.write_json(workdir_lib.path(workdir, 'summary.json'), summary)
  print(', '.join(f'{k} {v:.4f}' for k, v in summary.items() if isinstance(v, float)) +
        f'; run in {workdir}')


if __name__ == '__main__':
  common.launch(sys.modules[__name__])
