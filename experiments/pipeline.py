"""The default experiment, end to end on embedded data: `python -m experiments.pipeline`.

Stages run in sub-workdirs of the pipeline workdir and resume; report.md puts
every stage's headline number next to its baseline, with pictures.
"""

import os
import time

import jax
import numpy as np

from experiments import adapt, anomaly, cluster, common, pretrain, transfer
from tlu.evaluate.representation import l2_normalize
from tlu.evaluate.run_features import features_of_run
from tlu.report import embedding, plots
from tlu.train import mesh as mesh_lib
from tlu.train.writers import read_metrics

# Label-efficiency sweeps (sub-workdirs of label_efficiency/) and their curves' backbone names.
LE_SWEEPS = {'contrastive': 'contrastive', 'supervised': 'supervised digits_m', 'scratch': ''}


def _done(path):
  return os.path.exists(os.path.join(path, 'summary.json'))


def _summary(path):
  return common.read_json(os.path.join(path, 'summary.json'))


def stage_configs(config, workdir):
  """The config of every stage, wired to the outputs of the stages before it."""
  d = lambda *p: os.path.join(workdir, *p)
  with_features = {}
  for name in ('cluster', 'anomaly'):
    cfg = getattr(config, name).copy_and_resolve_references()
    cfg.unlock()
    cfg.features = d('pretrain')
    with_features[name] = cfg
  sweeps = {}
  for name in LE_SWEEPS:
    cfg = sweeps[f'label_efficiency/{name}'] = config.transfer.copy_and_resolve_references()
    cfg.unlock()
    cfg.source = '' if name == 'supervised' else d('pretrain')  # '': trains source_task
    if name == 'scratch':   # the architecture of stage 1, fresh weights, a plain head
      cfg.strategies, cfg.head_l2_scale, cfg.head_init = ('scratch',), 0.0, 'fresh'
  return {'pretrain': config.pretrain, 'cluster': with_features['cluster'], **sweeps,
          'adapt': config.adapt, 'anomaly': with_features['anomaly']}


def run_stage(name, cfg, path):
  """Runs one stage unless its summary.json exists; returns its wall time (0 if skipped)."""
  if _done(path):
    print(f'== {name}: done before ({path}), not recomputed')
    return 0.0
  print(f'== {name} -> {path}')
  t0 = time.time()
  if name == 'pretrain':
    pretrain.pretrain(cfg, path)
  elif name == 'cluster':
    cluster.main(cfg, path)
  elif name.startswith('label_efficiency'):
    transfer.main(cfg, path)
  elif name == 'adapt':
    adapt.main(cfg, path)
  elif name == 'anomaly':
    anomaly.main(cfg, path)
  return time.time() - t0


def main(config, workdir):
  workdir = common.resolve_workdir(workdir, 'pipeline')
  common.check_workdir(workdir, config)
  cfgs = stage_configs(config, workdir)
  d = lambda name: os.path.join(workdir, name)
  # Everything that can be checked before compute is checked here, for every stage.
  pretrain.validate(cfgs['pretrain'], d('pretrain'))
  cluster.check(cfgs['cluster'])
  anomaly.check(cfgs['anomaly'])
  if 'scratch' in config.transfer.strategies:
    raise common.ConfigError('transfer.strategies: scratch runs in its own sweep '
                             '(label_efficiency/scratch); list only strategies from a backbone')
  transfer.validate(cfgs['label_efficiency/contrastive'], check_source=False)
  transfer.validate(cfgs['label_efficiency/scratch'], check_source=False)
  transfer.prepare(cfgs['label_efficiency/supervised'], d('label_efficiency/supervised'))
  if set(config.adapt.methods) != set(adapt.METHODS):
    raise common.ConfigError(f'adapt.methods {tuple(config.adapt.methods)}: the report compares '
                             f'all of {adapt.METHODS}')
  adapt.validate(cfgs['adapt'], d('adapt'))
  common.claim_workdir(workdir, config)
  t0 = time.time()
  times = {}
  for name, cfg in cfgs.items():
    times[name] = run_stage(name, cfg, d(name))
  if any(times.values()) or not os.path.exists(d('report.md')):
    features = adaptation_features(workdir, config) if config.tsne else {}
    if jax.process_index() == 0:
      report(config, workdir, times, features)
  if jax.process_index() != 0:
    return
  print(f'pipeline finished in {time.time() - t0:.0f} s; report: {d("report.md")}')


# ----------------------------------------------------------------------------- report


def _cells(path, strategy, lpc):
  accs = []
  for entry in sorted(os.listdir(os.path.join(path, strategy))):
    if entry.startswith(f'lpc{lpc}_seed') and _done(os.path.join(path, strategy, entry)):
      accs.append(_summary(os.path.join(path, strategy, entry))['test_accuracy'])
  return accs


def label_efficiency_curves(workdir, config):
  """{curve name: {labels per class: [accuracy per seed]}} read from the cells."""
  curves = {}
  configs = stage_configs(config, workdir)
  for sweep, backbone in LE_SWEEPS.items():
    path = os.path.join(workdir, 'label_efficiency', sweep)
    for s in configs[f'label_efficiency/{sweep}'].strategies:
      name = 'scratch' if s == 'scratch' else f'{backbone} {s.replace("_", " ")}'
      curves[name] = {k: _cells(path, s, k) for k in config.transfer.labels_per_class}
  return curves


def adaptation_features(workdir, config):
  """{'before'|'after': (source feats, labels, target feats, labels)} of the test splits.

  Before: the source model; after: SHOT. Run on every process: feature extraction
  over the global mesh is a collective.
  """
  acfg = config.adapt
  src_ds, tgt_ds = acfg.source_task.dataset, acfg.target
  before = adapt.source_dir(acfg, os.path.join(workdir, 'adapt'), acfg.seeds[0])
  after = adapt._cell_dir(os.path.join(workdir, 'adapt'), 'shot', acfg.seeds[0])  # pylint: disable=protected-access
  mesh = mesh_lib.make_mesh()
  out = {}
  for tag, run in (('before', before), ('after', after)):
    if os.path.isdir(os.path.join(run, 'checkpoints')):
      # SHOT's cells hold checkpoints of the source model's architecture.
      out[tag] = (*features_of_run(run, src_ds, src_ds.eval_split, batch_size=360, mesh=mesh,
                                   config_dir=before),
                  *features_of_run(run, tgt_ds, tgt_ds.eval_split, batch_size=360, mesh=mesh,
                                   config_dir=before))
  return out


def adaptation_tsne(features, out_dir):
  """t-SNE pictures of `adaptation_features`, coloured by class and by domain; their names."""
  paths = []
  for tag, (fs, ys, ft, yt) in features.items():
    emb = embedding.tsne_2d(l2_normalize(np.concatenate([fs, ft])), 0)
    domain = np.array(['source'] * len(fs) + ['target'] * len(ft))
    name = f'tsne_adapt_{tag}.png'
    title = ('before adaptation (source-only model)' if tag == 'before'
             else 'after adaptation (SHOT)')
    embedding.scatter_panels(os.path.join(out_dir, name), emb,
                             [('by class', np.concatenate([ys, yt]), 'class'),
                              ('by domain', domain, 'domain')], title=title)
    paths.append(name)
  return paths


def learning_curves(workdir, config, out_dir):
  panels = []
  rows = read_metrics(os.path.join(workdir, 'pretrain'))
  panels.append(('contrastive pretraining', {'NT-Xent loss': plots.metric_series(
      rows, 'train', 'loss')}, 'train loss'))
  knn = plots.metric_series(rows, 'test', 'knn_accuracy')
  if knn[0]:
    panels.append(('pretraining: kNN accuracy', {'kNN (test)': knn}, 'accuracy'))
  series = {}
  for method in ('dann', 'shot'):
    cell = adapt._cell_dir(os.path.join(workdir, 'adapt'), method, config.adapt.seeds[0])  # pylint: disable=protected-access
    if os.path.exists(os.path.join(cell, 'metrics.jsonl')):
      series[method] = plots.metric_series(read_metrics(cell), 'train', 'loss')
  if series:
    panels.append(('adaptation', series, 'train loss'))
  plots.learning_curves(os.path.join(out_dir, 'learning_curves.png'), panels)
  return 'learning_curves.png'


def _head_text(t):
  head = (f'From a backbone the head sees L2-normalised features x {t.head_l2_scale:g}'
          if t.head_l2_scale else 'From a backbone the head is a plain Dense layer')
  if t.head_init == 'imprint':
    head += (' and starts imprinted at the labelled examples\' class means (Qi et al. 2018), '
             'so before any step it is the cosine nearest-class-mean classifier')
  return head + '; the linear probe trains only that head.'


def _pct(v):
  return f'{100 * v:.1f}'


def report(config, workdir, times, adaptation_feats):
  d = lambda *p: os.path.join(workdir, *p)
  pre, clu, ano = _summary(d('pretrain')), _summary(d('cluster')), _summary(d('anomaly'))
  ada = _summary(d('adapt'))
  curves = label_efficiency_curves(workdir, config)
  plots.label_efficiency(d('label_efficiency.png'), curves,
                         title='tlu_digits (10 classes): accuracy vs labels per class')
  mean = lambda name, k: 100 * np.mean(curves[name][k]) if curves.get(name, {}).get(k) else float('nan')
  lpc = config.pretrain.eval.labels_per_class
  best_ano = max((k for k in ano if k.startswith('contrastive')), key=ano.get)
  best_pix = best_ano.replace('contrastive features', 'raw pixels')
  rows = [
      ('1. contrastive pretraining', f'linear probe, {lpc} labels/class (0-9)',
       _pct(pre['few_shot_probe_accuracy']), 'raw pixels', _pct(pre['pixels_few_shot_probe_accuracy'])),
      ('', 'kNN accuracy (all labels)', _pct(pre['knn_accuracy']), 'raw pixels',
       _pct(pre['pixels_knn_accuracy'])),
      ('2. k-means (k=10)', 'ACC / NMI of learned features',
       f"{_pct(clu['contrastive/acc'])} / {_pct(clu['contrastive/nmi'])}", 'raw pixels',
       f"{_pct(clu['raw/acc'])} / {_pct(clu['raw/nmi'])}"),
      ('3. label efficiency (0-9)', 'contrastive linear probe, 1 label/class',
       f"{mean('contrastive linear probe', 1):.1f}", 'scratch', f"{mean('scratch', 1):.1f}"),
      ('', 'contrastive linear probe, 1 label/class', f"{mean('contrastive linear probe', 1):.1f}",
       'supervised digits_m linear probe', f"{mean('supervised digits_m linear probe', 1):.1f}"),
      ('', 'contrastive fine-tune, 1 label/class', f"{mean('contrastive finetune', 1):.1f}",
       'supervised digits_m fine-tune', f"{mean('supervised digits_m finetune', 1):.1f}"),
      ('4. adaptation digits -> digits_m', 'SHOT / DANN target accuracy',
       f"{_pct(ada['shot/target_test_accuracy'])} / {_pct(ada['dann/target_test_accuracy'])}",
       'source only (oracle)', f"{_pct(ada['source_only/target_test_accuracy'])} "
       f"({_pct(ada['target_oracle/target_test_accuracy'])})"),
      ('5. anomaly detection', f'mean AUROC, {best_ano.split("/")[1]} on features',
       _pct(ano[best_ano]), 'same score on raw pixels', _pct(ano[best_pix])),
  ]
  table = ['| stage | measure | tlu | baseline | baseline value |', '|---|---|---|---|---|']
  table += ['| ' + ' | '.join(r) + ' |' for r in rows]
  pictures = adaptation_tsne(adaptation_feats, workdir)
  curves_png = learning_curves(workdir, config, workdir)
  le_rows = ['| curve | ' + ' | '.join('all' if k == 0 else str(k)
                                        for k in config.transfer.labels_per_class) + ' |',
             '|---|' + '---|' * len(config.transfer.labels_per_class)]
  for name, pts in curves.items():
    le_rows.append(f'| {name} | ' + ' | '.join(
        f'{100 * np.mean(v):.1f} ± {100 * np.std(v):.1f}' if v else ''
        for v in pts.values()) + ' |')
  cluster_png = ('![t-SNE of the features coloured by class and k-means cluster](cluster/tsne.png)\n'
                 if os.path.exists(d('cluster', 'tsne.png')) else '')
  timing = ', '.join(f'{k} {v:.0f} s' for k, v in times.items() if v)
  text = f"""# tlu pipeline: transfer learning meets unsupervised learning

Run in `{workdir}`. Every number below comes from the stage sub-workdirs named in
each section (their `summary.json`, `metrics.jsonl` and `report.md`).
Stage wall times this invocation: {timing or 'all stages were done before'}.

## Results

{chr(10).join(table)}

## 1. Contrastive pretraining (`pretrain/`)
SimCLR (NT-Xent, temperature {config.pretrain.temperature}) on the {config.pretrain.steps}-step
budget with on-device augmentations, no labels; labels only score the representation.

![learning curves]({curves_png})

## 2. k-means (`cluster/`)
{cluster_png}
See `cluster/report.md` for raw pixels, PCA and features side by side.

## 3. Label efficiency (`label_efficiency/`)
Target task: the ten tlu_digits classes with k labelled images per class; test accuracy (%),
mean ± std over seeds {tuple(config.transfer.seeds)} (seed s draws the labelled images),
{config.transfer.steps} steps per run. Backbones: contrastive (stage 1: SimCLR on the
unlabelled tlu_digits train images, no labels), supervised on labelled tlu_digits_m
(another domain, same classes, fitted to 8x8 grey), or scratch (plain head). {_head_text(config.transfer)}

{chr(10).join(le_rows)}

![label efficiency](label_efficiency.png)

## 4. Domain adaptation (`adapt/`)
{open(d('adapt', 'report.md')).read().split(chr(10), 2)[2]}
{''.join(f'![{p}]({p})' + chr(10) for p in pictures)}
## 5. Anomaly detection (`anomaly/`)
{open(d('anomaly', 'report.md')).read().split(chr(10), 2)[2]}
"""
  common.write_text(d('report.md'), text)
  summary = {'pretrain/few_shot_probe_accuracy': pre['few_shot_probe_accuracy'],
             'cluster/acc': clu['contrastive/acc'], 'cluster/nmi': clu['contrastive/nmi'],
             'label_efficiency/contrastive_lp_1': mean('contrastive linear probe', 1) / 100,
             'label_efficiency/scratch_1': mean('scratch', 1) / 100,
             'adapt/shot': ada['shot/target_test_accuracy'],
             'adapt/dann': ada['dann/target_test_accuracy'],
             'adapt/source_only': ada['source_only/target_test_accuracy'],
             'anomaly/best_mean_auroc': ano[best_ano]}
  common.write_json(d('summary.json'), summary)


if __name__ == '__main__':
  common.launch(main, 'configs/pipeline.py')
