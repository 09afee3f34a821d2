"""SCAN on the cluster stage's rows: its clustering step, then self-labelling, each a task run.

Van Gansbeke et al. 2020, "SCAN: Learning to classify images without labels": Section 3.2
(mining K neighbours in the pretext features, training backbone + clustering head with the
SCAN loss) and Section 3.3 (confidence-threshold self-labelling), as `tlu.methods.scan` and
`tlu.methods.scan_selflabel` implement them.

In: the cluster stage's config (`seed`, `dataset`, `rows`, `batch_size`, and the task blocks
`scan` and `scan_selflabel`: method, steps, batch_size, optimizer, augment, cadences; the
model is the source's), the source `Backbone` the stage clusters (its run directory and
step) and k. Runs, through `tlu.train.task.fit_task` on the dataset's train split:
`<workdir>/scan` (the source's leaves, head `head` with k outputs fresh), then
`<workdir>/scan_selflabel` (every leaf of the scan run, its head included). A finished run
(summary.json) is read back: no step is trained, nothing written.
Out: per run, the clustering head's argmax on the stage's rows scored as the stage scores
k-means (`tlu.evaluate.clustering`: Hungarian ACC, NMI, ARI).
"""

import dataclasses

import numpy as np

from tlu import checks, methods
from tlu.data import subsets
from tlu.evaluate import clustering, outputs
from tlu.evaluate.kmeans_comparison import ROWS
from tlu.models import build_model
from tlu.train import task, workdir as workdir_lib
from tlu.transfer.pretrained import load_pretrained, source_config
from tlu.transfer.surgery import transplant

ALGORITHM = 'scan'   # its name in the stage's `config.algorithms`
# (block = sub-workdir = method name, the run it starts from (None: the source), leaves
# kept fresh, its row in report.md)
RUNS = (('scan', None, ('head/.*',), 'SCAN (clustering step)'),
        ('scan_selflabel', 'scan', (), 'SCAN + self-labelling'))


def enabled(config):
  return ALGORITHM in tuple(config.get('algorithms', ()))


def source_model(config):
  """The model config of the source the stage clusters: `config.source`'s, or the pretrain
  task's."""
  if config.source:
    return source_config(config.source)['model']
  return config.pretrain.model.to_dict()


def task_config(config, block, model):
  """The task config of run `block`: the stage's block with its seed, dataset, `model`."""
  cfg = config[block].copy_and_resolve_references()
  with cfg.unlocked():
    cfg.seed = config.seed
    cfg.dataset = config.dataset.copy_and_resolve_references()
    cfg.model = model
    cfg.evals = {}
  return cfg


def task_splits(config, k):
  """The dataset's train / test splits, the head sized k (the number of clusters)."""
  return dataclasses.replace(task.task_splits(config.dataset), num_classes=k)


def check(config, workdir, k, model):
  """Every check of the SCAN runs that needs no compute (nothing when 'scan' is not in
  `config.algorithms`); `model`: the source's model config, or None where the source is
  made later by the same invocation (then only the values are checked). ValueError."""
  if not enabled(config):
    return
  splits = task_splits(config, k) if model is not None else None
  for block, _, _, _ in RUNS:
    if block not in config:
      raise ValueError(f"algorithms names 'scan': config.{block} (its task block) is missing")
    cfg = task_config(config, block, model or {})
    if cfg.method.get('name') != block:
      raise ValueError(f'{block}.method.name={cfg.method.get("name")!r} must be {block!r}')
    with checks.under(f'{block}.'):
      task.check_values(cfg)
      task.check_task(cfg, splits)
    if model is not None:
      workdir_lib.check(workdir_lib.path(workdir, block), task.config_json(cfg))


def _init(run_dir, step, dont_load):
  variables, _, _ = load_pretrained(run_dir, step)
  return lambda fresh: transplant(variables, fresh, dont_load=dont_load)[0]


def predict(run_dir, cfg, k, sources, *, batch_size, mesh):
  """(argmax of head `head` (N,), labels (N,)) of the rows of `sources`, with the latest
  checkpoint of the run in `run_dir` (task config `cfg`)."""
  variables, model_cfg, _ = load_pretrained(run_dir)
  model = build_model(model_cfg, methods.get(cfg.method.name).model_heads(cfg.method, k))
  preds, labels = [], []
  for source in sources:
    _, logits, y = outputs.extract_outputs(model, variables, source, batch_size, mesh,
                                           head='head', num_classes=k)
    preds.append(np.argmax(logits, axis=1))
    labels.append(y)
  return np.concatenate(preds), np.concatenate(labels)


def run(config, workdir, backbone, k, labels, mesh, should_stop=lambda: False):
  """[(name, report row label, {'acc', 'nmi', 'ari'})] of each run, trained (or read back)
  in `<workdir>/<name>`; `labels`: the stage's rows' labels, in order."""
  ds, model = config.dataset, source_model(config)
  splits = task_splits(config, k)
  sources = [subsets.task_source(ds, ds[s]) for s in ROWS[config.rows]]
  trainer, out = task.Trainer(mesh), []
  for block, start, dont_load, title in RUNS:
    cfg, run_dir = task_config(config, block, model), str(workdir_lib.path(workdir, block))
    if not workdir_lib.done(run_dir):
      init = (_init(backbone.run_dir, backbone.step, dont_load) if start is None else
              _init(str(workdir_lib.path(workdir, start)), None, dont_load))
      task.fit_task(trainer, cfg, run_dir, splits, init=init, summary_prefix='',
                    should_stop=should_stop, desc=block)
    pred, y = predict(run_dir, cfg, k, sources, batch_size=config.batch_size, mesh=mesh)
    np.testing.assert_array_equal(y, labels)
    out.append((block, title, clustering.clustering_metrics(labels, pred)))
  return out


def describe(config):
  """report.md's sentence on the SCAN runs ('' when off)."""
  if not enabled(config):
    return ''
  s, t = config.scan, config.scan_selflabel
  return (f' SCAN (Van Gansbeke et al. 2020): the source backbone and a k-way head trained '
          f'{s.steps} steps with the SCAN loss (K = {s.method.num_neighbors} neighbours mined '
          f'in the source features, entropy weight {s.method.entropy_weight}) in `scan/`, then '
          f'{t.steps} steps of self-labelling (confidence > {t.method.threshold}) in '
          '`scan_selflabel/`; each scored by the head\'s argmax on the same rows.')
