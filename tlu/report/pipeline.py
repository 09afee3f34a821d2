"""report.md of the pipeline: headline numbers beside their baselines, each stage's own
report, pictures. Driven by the stages the config declares, whatever methods they run."""

import re

import numpy as np

from tlu.evaluate.features import l2_normalize
from tlu.evaluate.run_features import features_of_run
from tlu.report import embedding, plots
from tlu.train import workdir as workdir_lib
from tlu.train.writers import read_metrics


def _pct(v):
  return f'{100 * v:.1f}'


def _body(workdir, sub):
  """The report.md of the stage in `sub` without its title line, its pictures linked from
  the pipeline's workdir."""
  text = workdir_lib.path(workdir, sub, 'report.md').read_text()
  text = re.sub(r'\]\((?![a-z]+:|/)([^)]+)\)', lambda m: f']({sub}/{m.group(1)})', text)
  return text.split('\n', 2)[2] if text.startswith('# ') else text


def _save(fn, path, *args, **kwargs):
  with workdir_lib.open_atomic(workdir_lib.path(path)) as f:
    fn(f, *args, **kwargs)


def label_efficiency_curves(config, workdir):
  """{curve name: {labels per class: [accuracy per seed]}} from every transfer stage's cells."""
  curves = {}
  for sub, stage, key, _ in config.stages:
    if stage != 'transfer':
      continue
    cfg = config[key]
    for strategy in cfg.strategies:
      name = strategy if strategy == 'scratch' else f'{sub.split("/")[-1]} {strategy}'
      curves[name.replace('_', ' ')] = {
          k: [workdir_lib.read_json(workdir_lib.path(workdir, sub, strategy,
                                                     f'lpc{k}_seed{s}', 'summary.json'))
              ['test_accuracy'] for s in cfg.seeds]
          for k in cfg.labels_per_class}
  return curves


def headline_rows(config, workdir, curves):
  """[(stage, measure, tlu value, baseline, baseline value)] of every declared stage; values
  are fractions (None where a baseline was not measured)."""
  rows = []
  for sub, stage, _, _ in config.stages:
    s = workdir_lib.read_json(workdir_lib.path(workdir, sub, 'summary.json'))
    if stage == 'pretrain':
      for metric in ('few_shot_probe_accuracy', 'knn_accuracy', 'kmeans_acc'):
        if metric in s:
          rows.append((sub, metric, s[metric], 'raw pixels', s.get(f'pixels_{metric}')))
    elif stage == 'cluster':
      for k, v in s.items():
        name, metric = k.rsplit('/', 1)
        if name not in ('raw', 'pca') and metric in ('acc', 'nmi'):
          rows.append((sub, f'k-means {metric.upper()} ({name})', v, 'raw pixels',
                       s.get(f'raw/{metric}')))
    elif stage == 'adapt':
      oracle = s.get('target_oracle/target_test_accuracy')
      base = 'source only' + ('' if oracle is None else f' (target oracle {_pct(oracle)})')
      for k, v in s.items():
        method = k.split('/')[0]
        if k.endswith('/target_test_accuracy') and method not in ('source_only', 'target_oracle'):
          rows.append((sub, f'{method} target accuracy', v, base,
                       s.get('source_only/target_test_accuracy')))
          picked = s.get(f'{method}/validator_selected_target_test_accuracy')
          if picked is not None:   # the step chosen without target labels (selection.validator)
            rows.append((sub, f'{method} target accuracy, selected without target labels',
                         picked, base, s.get('source_only/target_test_accuracy')))
    elif stage == 'anomaly':
      for k, v in s.items():
        features, score = k.split('/')[:2]
        if features != 'raw pixels':
          rows.append((sub, f'mean AUROC, {score} ({features})', v, 'raw pixels',
                       s.get(f'raw pixels/{score}/mean_auroc')))
  small = min((k for c in curves.values() for k in c if k), default=None)
  if small and 'scratch' in curves:
    for name, points in curves.items():
      if name != 'scratch':
        rows.append(('label_efficiency', f'{name}, {small} label(s)/class',
                     float(np.mean(points[small])), 'scratch',
                     float(np.mean(curves['scratch'][small]))))
  return rows


def adaptation_pictures(config, workdir, mesh):
  """t-SNE of source and target test features before (source model) and after (the first
  source-free method's cell) adaptation; the picture names."""
  from tlu import methods  # pylint: disable=import-outside-toplevel
  from tlu.adapt.cells import source_free  # pylint: disable=import-outside-toplevel
  names = []
  for sub, stage, key, _ in config.stages:
    if stage != 'adapt':
      continue
    acfg = config[key]
    seed = acfg.seeds[0]
    before = str(workdir_lib.path(workdir, sub, 'source', f'seed{seed}'))
    free = [m for m in acfg.methods if m not in ('source_only', 'target_oracle')
            and source_free(methods.get(acfg[m].method.name))]
    runs = [('before', before, 'source-only model')]
    runs += [('after', str(workdir_lib.path(workdir, sub, free[0], f'seed{seed}')), free[0])] \
        if free else []
    for tag, run, what in runs:
      if not workdir_lib.path(run, 'checkpoints').exists():
        continue
      src, tgt = acfg.source_task.dataset, acfg.target
      fs, ys = features_of_run(run, src, src.eval_split, batch_size=acfg.eval_batch_size,
                               mesh=mesh, config_dir=before)
      ft, yt = features_of_run(run, tgt, tgt.eval_split, batch_size=acfg.eval_batch_size,
                               mesh=mesh, config_dir=before)
      emb = embedding.tsne_2d(l2_normalize(np.concatenate([fs, ft])), 0)
      name = f'tsne_adapt_{tag}.png'
      domain = np.array(['source'] * len(fs) + ['target'] * len(ft))
      _save(embedding.scatter_panels, workdir_lib.path(workdir, name), emb,
            [('by class', np.concatenate([ys, yt]), 'class'), ('by domain', domain, 'domain')],
            title=f'{what} ({sub})')
      names.append(name)
  return names


def learning_curves(config, workdir):
  """Training losses of the pretraining and of every trained adaptation cell (seed 0)."""
  panels = []
  for sub, stage, key, _ in config.stages:
    if stage == 'pretrain':
      rows = read_metrics(str(workdir_lib.path(workdir, sub)))
      panels.append((f'{sub}: {config[key].method.name}',
                     {'train loss': plots.metric_series(rows, 'train', 'loss')}, 'train loss'))
    if stage == 'adapt':
      acfg, series = config[key], {}
      for m in acfg.methods:
        cell = workdir_lib.path(workdir, sub, m, f'seed{acfg.seeds[0]}')
        if m not in ('source_only', 'target_oracle') and (cell / 'metrics.jsonl').exists():
          series[m] = plots.metric_series(read_metrics(str(cell)), 'train', 'loss')
      if series:
        panels.append((sub, series, 'train loss'))
  if not panels:
    return ''
  _save(plots.learning_curves, workdir_lib.path(workdir, 'learning_curves.png'), panels)
  return 'learning_curves.png'


def _pretrain_section(sub, cfg, summary):
  """The pretraining stage's evaluation of its backbone beside raw pixels."""
  lines = ['| measure | backbone | raw pixels |', '|---|---|---|']
  for k, v in summary.items():
    if isinstance(v, float) and f'pixels_{k}' in summary:
      lines.append(f'| {k} | {_pct(v)} | {_pct(summary["pixels_" + k])} |')
  return (f'## {sub} (`{sub}/`)\n`{cfg.method.name}` for {cfg.steps} steps on the unlabelled '
          f'`{cfg.dataset.name}` training images; labels only score the backbone (evaluations: '
          f'{", ".join(cfg.evals.keys())}; BatchNorm in inference mode).\n\n' +
          '\n'.join(lines) + '\n')


def write(config, workdir, times, mesh):
  """Writes report.md (process 0) and summary.json: {'<stage>/<measure>': value}."""
  curves = label_efficiency_curves(config, workdir)
  rows = headline_rows(config, workdir, curves)
  pictures = adaptation_pictures(config, workdir, mesh) if config.tsne else []
  import jax  # pylint: disable=import-outside-toplevel
  if jax.process_index() != 0:
    return
  table = ['| stage | measure | tlu | baseline | baseline value |', '|---|---|---|---|---|']
  fmt = lambda v: '' if v is None else _pct(v)
  table += [f'| {a} | {b} | {fmt(c)} | {d} | {fmt(e)} |' for a, b, c, d, e in rows]
  sections = []
  curves_png = learning_curves(config, workdir)
  if curves:
    _save(plots.label_efficiency, workdir_lib.path(workdir, 'label_efficiency.png'), curves,
          title='accuracy vs labels per class')
    ks = next(iter(curves.values())).keys()
    le = ['| curve | ' + ' | '.join('all' if k == 0 else str(k) for k in ks) + ' |',
          '|---|' + '---|' * len(ks)]
    le += [f'| {name} | ' + ' | '.join(f'{100 * np.mean(v):.1f} ± {100 * np.std(v):.1f}'
                                         for v in pts.values()) + ' |'
           for name, pts in curves.items()]
    sections.append('## Label efficiency (`label_efficiency/`)\nTest accuracy (%), mean ± std '
                    'over seeds (seed s draws the labelled images).\n\n' + '\n'.join(le) +
                    '\n\n![label efficiency](label_efficiency.png)\n')
  for sub, stage, key, _ in config.stages:
    if stage == 'pretrain':
      sections.append(_pretrain_section(sub, config[key], workdir_lib.read_json(
          workdir_lib.path(workdir, sub, 'summary.json'))))
    elif stage != 'transfer' and workdir_lib.path(workdir, sub, 'report.md').exists():
      extra = ''.join(f'![{p}]({p})\n' for p in pictures) if stage == 'adapt' else ''
      sections.append(f'## {sub} (`{sub}/`)\n{_body(workdir, sub)}\n' + extra)
  timing = ', '.join(f'{k} {v:.0f} s' for k, v in times.items())
  text = (f'# tlu pipeline: transfer learning meets unsupervised learning\n\n'
          f'Run in `{workdir}`; every number comes from the stage sub-workdirs (their '
          f'`summary.json`). Stage wall times this invocation: {timing or "none"}.\n\n'
          f'## Results\n\n' + '\n'.join(table) + '\n\n' +
          (f'![learning curves]({curves_png})\n\n' if curves_png else '') + '\n'.join(sections))
  workdir_lib.write_text(workdir_lib.path(workdir, 'report.md'), text)
  summary = {f'{r[0]}/{re.sub(r"[^a-zA-Z0-9]+", "_", r[1]).strip("_")}': float(r[2])
             for r in rows}
  workdir_lib.write_json(workdir_lib.path(workdir, 'summary.json'), summary)
