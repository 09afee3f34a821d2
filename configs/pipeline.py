"""The whole story on embedded data, the default experiment: `python -m experiments.pipeline`.

`stages` lists (sub-workdir, stage, config key, source stage): each stage runs
`python -m experiments.<stage>`'s `main` on `config.<config key>` in its
sub-workdir, with `source` set to the sub-workdir of the named stage:
1. pretrain: SimCLR on the unlabelled tlu_digits train images;
2. cluster: k-means of the learned features (vs raw pixels and PCA);
3. label_efficiency/*: the ten tlu_digits classes with 1/5/10/all labels per class,
   from the contrastive backbone, from a backbone supervised on labelled
   tlu_digits_m (another domain, same classes, fitted to 8x8 grey), and from scratch;
4. adapt: real MNIST -> MNIST-M (tlu_mnist -> tlu_mnist_m, configs/mnist_to_mnist_m.py) at
   seed 0 with every method `adapt.methods` names;
5. anomaly: one-class anomaly detection on the learned features;
then report.md in the pipeline workdir. A finished stage (its summary.json exists)
is not recomputed. Measured: docs/results.md. `:tiny` shrinks every stage to a few
steps (a smoke test of the wiring, not of the numbers).
"""

import ml_collections

from configs import (digits_anomaly, digits_cluster, digits_ssl, digits_supervised,
                     digits_transfer, mnist_to_mnist_m)

STAGES = (('pretrain', 'pretrain', 'pretrain', ''),
          ('cluster', 'cluster', 'cluster', 'pretrain'),
          ('label_efficiency/contrastive', 'transfer', 'transfer', 'pretrain'),
          ('label_efficiency/supervised', 'transfer', 'transfer_supervised', ''),
          ('label_efficiency/scratch', 'transfer', 'transfer_scratch', 'pretrain'),
          ('adapt', 'adapt', 'adapt', ''),
          ('anomaly', 'anomaly', 'anomaly', 'pretrain'))


def label_efficiency():
  """The ten tlu_digits classes at 1/5/10/all labels per class, 3 label draws."""
  t = digits_transfer.get_config()
  t.dataset = digits_supervised.dataset('tlu_digits')      # all ten classes
  t.strategies = ('linear_probe', 'finetune')
  t.labels_per_class = (1, 5, 10, 0)
  t.seeds = (0, 1, 2)
  t.steps = 100
  t.head_l2_scale = 10.0           # cosine head, imprinted from the labelled examples
  t.head_init = 'imprint'
  return t


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.stages = STAGES
  c.tsne = True                    # t-SNE pictures of the adaptation in report.md
  c.pretrain = digits_ssl.get_config()
  c.pretrain.progress = False
  c.pretrain.steps = 1000          # a flatter NT-Xent suits few-label transfer
  c.pretrain.method.temperature = 1.0
  c.pretrain.model = digits_supervised.cnn()   # the supervised source's architecture
  c.cluster = digits_cluster.get_config()
  c.cluster.tsne = True
  c.cluster.algorithms = ('kmeans',)
  c.transfer = label_efficiency()
  s = c.transfer_supervised = label_efficiency()
  s.source_task = digits_supervised.get_config()           # the supervised source backbone
  s.source_task.dataset = digits_supervised.dataset('tlu_digits_m', image_size=8, channels=1)
  s.source_task.progress = False
  r = c.transfer_scratch = label_efficiency()              # stage 1's architecture, fresh
  r.strategies, r.head_l2_scale, r.head_init = ('scratch',), 0.0, 'fresh'
  c.adapt = mnist_to_mnist_m.get_config()   # its protocol and step budget, seed 0 only
  c.adapt.seeds = (0,)             # 3-seed means: `python -m experiments.adapt`
  # The label-free validators only (no source passes); selection.validator stays class_ami.
  c.adapt.validators = ('entropy', 'im', 'bnm', 'snd', 'class_ami')
  c.anomaly = digits_anomaly.get_config()
  for stage in (c.cluster, c.anomaly):
    stage.pretrain = ml_collections.ConfigDict()   # features come from stage 1
  if arg == 'tiny':
    shrink(c)
  elif arg:
    raise ValueError(f'unknown variant {arg!r}; use tiny or nothing')
  return c


def shrink(c):
  """A few steps of every stage: exercises the wiring, resume and report in seconds."""
  c.tsne = False
  p = c.pretrain
  p.steps, p.batch_size, p.eval_every, p.checkpoint_every, p.log_every = 4, 32, 0, 4, 2
  p.evals.few_label_probe.trials = 1
  for name in ('linear_probe', 'few_label_probe'):
    p.evals[name].steps = 10
  p.evals.kmeans.n_init = 1
  c.cluster.update(dict(n_init=1, tsne=False))
  for t in (c.transfer, c.transfer_supervised, c.transfer_scratch):
    t.labels_per_class, t.seeds, t.steps, t.lp_steps, t.batch_size = (1,), (0,), 4, 2, 16
    t.source_task.steps, t.source_task.batch_size, t.source_task.eval_every = 4, 32, 0
    t.source_task.checkpoint_every = 4
  a = c.adapt
  a.seeds = (0,)
  a.validators = ('class_ami',)
  for task in (a.source_task, a.target_oracle):
    task.steps, task.batch_size, task.eval_every, task.checkpoint_every = 4, 32, 0, 4
  a.dann.update(dict(steps=4, batch_size=16, log_every=2, eval_every=4, checkpoint_every=4))
  a.shot.update(dict(epochs=1, steps_per_epoch=2, batch_size=16, log_every=2, eval_every=2,
                     checkpoint_every=2))
  c.anomaly.kmeans_clusters = 2
