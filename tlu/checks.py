"""Range checks of every config value, by key name, before anything is written or compiled.

One place for every stage: `check_ranges(config)` walks the whole (nested) config and
applies the rule of each key it knows, wherever the key sits (`batch_size`,
`dann.batch_size`, `pipeline.transfer.source_task.optimizer.lr`), so a new config
block inherits the checks of the keys it reuses. Every float must be finite.
Enumerations (method, evaluator, model, optimizer and augmentation names) are
checked by their registries when the stage builds them, also before compute.
"""

import math
import re


def _positive(v):
  return v > 0


def _non_negative(v):
  return v >= 0


def _unit(v):
  return 0 <= v <= 1


RULES = (  # (key regex, predicate, what is allowed); the first full match applies
    (r'(.*_)?batch_size|checkpoint_every|log_every|keep_checkpoints|n_init|max_iter|'
     r'knn_k|k|kmeans_clusters|pca_components|trials|lp_steps|width|'
     r'grad_accum_steps|base_batch_size|num_prototypes|.*_iterations|local_crops|kernel_size',
     _positive,
     'an integer >= 1'),
    (r'steps', _non_negative, '>= 1 (or 0 with epochs >= 1)'),
    (r'features', _non_negative, 'an integer >= 0 (0: no fc layer, cnn only)'),
    (r'epochs|steps_per_epoch|eval_every|warmup_steps|num_clusters|image_size|channels|'
     r'cluster_rounds|few_shot_trials|.*_steps|local_size|randaugment_ops', _non_negative,
     'an integer >= 0 (0: off or all)'),
    (r'lr|temperature|.*_temperature|eps|epsilon|input_std', _positive, 'a finite number > 0'),
    (r'depth|mlp_dim|num_heads|patch_size|hidden_size|num_layers', _positive, 'an integer >= 1'),
    (r'weight_decay|grad_clip_norm|.*_lr_mult|noise_std|head_l2_scale|beta|alpha|gamma|'
     r'.*_weight|.*_deg|.*_std|margin|.*_scale', _non_negative, 'a finite number >= 0'),
    (r'momentum|.*_momentum|.*_prob|prob|.*_shrinkage|translate_frac|shift_frac|cutout_frac', _unit,
     'a number in [0, 1]'),
    (r'label_smoothing', lambda v: 0 <= v < 1, 'a number in [0, 1)'),
    (r'labels_per_class', _non_negative, 'integers >= 0 (0: every label)'),
    (r'widths|dims|projector|predictor|domain_head|hidden', _positive, 'widths >= 1'),
)


FLAGS = r'online_probe'   # keys whose value must be True or False


def _is_number(v):
  return isinstance(v, (int, float)) and not isinstance(v, bool)


def _leaves(tree, prefix=''):
  for key, value in tree.items():
    path = f'{prefix}{key}'
    if isinstance(value, dict):
      yield from _leaves(value, path + '.')
    else:
      yield path, str(key), value


def check_ranges(config):
  """Raises ValueError naming the first key whose value is out of its range.

  config: a ConfigDict or nested dict. Message: "<dotted key>=<value>: must be <allowed>".
  """
  tree = config.to_dict() if hasattr(config, 'to_dict') else dict(config)
  for path, key, value in _leaves(tree):
    values = value if isinstance(value, (tuple, list)) else (value,)
    numbers = [v for v in values if _is_number(v)]
    if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
      raise ValueError(f'{path}={value!r}: must be finite')
    if re.fullmatch(FLAGS, key) and not isinstance(value, bool):
      raise ValueError(f'{path}={value!r}: must be True or False')
    for pattern, ok, allowed in RULES:
      if re.fullmatch(pattern, key):
        bad = [v for v in numbers if not ok(v)]
        if bad:
          raise ValueError(f'{path}={value!r}: must be {allowed}')
        break
  _check_step_budgets(tree)


def _check_step_budgets(tree, prefix=''):
  """A block with `steps` trains for steps >= 1, or for epochs >= 1 when steps is 0."""
  if 'steps' in tree and _is_number(tree['steps']) and tree['steps'] == 0 and not (
      _is_number(tree.get('epochs')) and tree['epochs'] >= 1):
    raise ValueError(f'{prefix}steps=0: must be >= 1 (or 0 with {prefix}epochs >= 1)')
  for key, value in tree.items():
    if isinstance(value, dict):
      _check_step_budgets(value, f'{prefix}{key}.')
