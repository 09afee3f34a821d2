"""Line plots for reports: label-efficiency curves and learning curves (matplotlib, Agg, PNG)."""

import numpy as np
from matplotlib.figure import Figure


def label_efficiency(path, curves, title='Label efficiency'):
  """curves: {name: {labels_per_class: [accuracies over seeds]}}; 0 means all labels.

  Mean with a +-std band against labels per class (log x axis, 'all' at the right).
  """
  fig = Figure(figsize=(6.5, 4.5), dpi=120)
  ax = fig.subplots()
  all_ks = sorted({k for c in curves.values() for k in c if k > 0})
  x_all = (max(all_ks) * 4) if all_ks else 1
  for name, points in curves.items():
    ks = sorted(points, key=lambda k: x_all if k == 0 else k)
    xs = np.array([x_all if k == 0 else k for k in ks], float)
    mean = np.array([100 * np.mean(points[k]) for k in ks])
    std = np.array([100 * np.std(points[k]) for k in ks])
    ax.plot(xs, mean, marker='o', label=name)
    ax.fill_between(xs, mean - std, mean + std, alpha=0.2)
  ticks = all_ks + [x_all]
  ax.set_xscale('log')
  ax.set_xticks(ticks, [str(k) for k in all_ks] + ['all'])
  ax.minorticks_off()
  ax.set_xlabel('labels per class')
  ax.set_ylabel('target test accuracy (%)')
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize='small')
  fig.tight_layout()
  fig.savefig(path, format='png')


def learning_curves(path, panels, title=None):
  """panels: [(panel title, {series name: (steps, values)}, y label)] side by side."""
  fig = Figure(figsize=(5 * len(panels), 4), dpi=120)
  axes = np.atleast_1d(fig.subplots(1, len(panels)))
  for ax, (panel_title, series, ylabel) in zip(axes, panels):
    for name, (steps, values) in series.items():
      ax.plot(steps, values, label=name, marker='.' if len(steps) < 30 else None)
    ax.set_title(panel_title)
    ax.set_xlabel('step')
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 1:
      ax.legend(fontsize='small')
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, format='png')


def metric_series(rows, split, metric):
  """(steps, values) of one metric of one split from metrics.jsonl rows."""
  pts = [(r['step'], r[metric]) for r in rows if r['split'] == split and metric in r]
  return [p[0] for p in pts], [p[1] for p in pts]
