"""Every value the house's old key-name table refused is still refused before any compute,
now by the code that reads it: each numeric leaf of each stage's config is set out of the
range that table gave its key, and the stage's own check must refuse it naming the key.

`OLD_TABLE` is the table as it was (tlu/checks.py applied it by bare key name anywhere in
a config); it is the specification here, not code under test.
"""

import importlib
import re

import ml_collections
import pytest

from experiments import common
from method_block import check_block
from tlu import checks, methods

OLD_TABLE = (   # (key regex, a value out of range); the first full match applies
    (r'(.*_)?batch_size|checkpoint_every|log_every|keep_checkpoints|n_init|max_iter|'
     r'knn_k|k|kmeans_clusters|pca_components|trials|lp_steps|width|'
     r'grad_accum_steps|base_batch_size|num_prototypes|.*_iterations|local_crops|kernel_size',
     0),
    (r'steps', -1),
    (r'features', -1),
    (r'epochs|steps_per_epoch|eval_every|warmup_steps|num_clusters|image_size|channels|'
     r'cluster_rounds|few_shot_trials|.*_steps|local_size|randaugment_ops', -1),
    (r'lr|temperature|.*_temperature|eps|epsilon|input_std', 0.0),
    (r'depth|mlp_dim|num_heads|patch_size|hidden_size|num_layers', 0),
    (r'weight_decay|grad_clip_norm|.*_lr_mult|noise_std|head_l2_scale|beta|alpha|gamma|'
     r'.*_weight|.*_deg|.*_std|margin|.*_scale', -1.0),
    (r'momentum|.*_momentum|.*_prob|prob|.*_shrinkage|translate_frac|shift_frac|cutout_frac',
     1.5),
    (r'label_smoothing', 1.0),
    (r'labels_per_class', -1),
    (r'widths|dims|projector|predictor|domain_head|hidden', 0),
)


def _bad(key, value):
  """A value the old table refused for `key` (a tuple with its last element replaced), or None."""
  for pattern, bad in OLD_TABLE:
    if re.fullmatch(pattern, key):
      bad = float(bad) if isinstance(value, float) else bad
      return (*value[:-1], bad) if isinstance(value, (tuple, list)) else bad
  return None


def _numeric_leaves(tree, prefix=''):
  for key, value in tree.items():
    if isinstance(value, dict):
      yield from _numeric_leaves(value, f'{prefix}{key}.')
    else:
      values = value if isinstance(value, (tuple, list)) else (value,)
      if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        yield f'{prefix}{key}', key, value


def _set(config, path, value):
  *parents, leaf = path.split('.')
  block = config
  for p in parents:
    block = block[p]
  block[leaf] = value


def _refusals(stage, config, workdir, baseline=True, only=''):
  """{leaf path: the stage check's message, or None where it let the bad value through}, of
  the leaves whose path starts with `only` (a prefix, or a tuple of paths)."""
  if baseline:
    common.check(stage, config, str(workdir))   # as given, the config passes
  out = {}
  for path, key, value in list(_numeric_leaves(config.to_dict())):
    bad = _bad(key, value)
    if bad is None or not path.startswith(only) or (isinstance(value, (tuple, list)) and
                                                    not value):
      continue
    cfg = config.copy_and_resolve_references()
    _set(cfg, path, bad)
    try:
      common.check(stage, cfg, str(workdir))
      out[path] = None
    except common.ConfigError as e:
      out[path] = str(e)
  return out


STRUCTURE = {'source_task', 'task', 'pretrain', 'method', 'model', 'dataset', 'target',
             'optimizer', 'augment', 'evals'}


def _used_blocks(config):
  """The blocks a sweep's `methods` run, and the cluster stage's SCAN task blocks when its
  `algorithms` name 'scan'."""
  from tlu.evaluate import scan_clustering  # pylint: disable=import-outside-toplevel
  used = set(config.get('methods', ()))
  if scan_clustering.ALGORITHM in config.get('algorithms', ()):
    used |= {block for block, *_ in scan_clustering.RUNS}
  return used


def _unused_blocks(config):
  """The method blocks of a sweep that its `methods` do not run (nothing reads them)."""
  return {k for k, v in config.items() if hasattr(v, 'keys') and k not in STRUCTURE and
          ('name' in v or 'method' in v) and k not in _used_blocks(config)}


def _with_data(config, data_dir):
  for key in list(config.keys()):
    if key == 'data_dir':
      config[key] = data_dir
    elif hasattr(config[key], 'keys'):
      _with_data(config[key], data_dir)
  return config


def _adapt_every_method():
  from configs import adapt_methods, digits_to_digits_m  # pylint: disable=import-outside-toplevel
  c = digits_to_digits_m.get_config()
  with c.unlocked():
    c.update(adapt_methods.blocks(steps=40, batch_size=8))
    c.methods = ('source_only', 'dann', 'shot', 'target_oracle', *adapt_methods.METHODS)
  return c


def _config(name, arg=None):
  return lambda: importlib.import_module(f'configs.{name}').get_config(arg)


def _rank_sources():
  c = _config('rank_sources')()
  c.sources = ('not/a/run',)   # opened after every value check
  return c


CASES = {
    'train': _config('digits_supervised'), 'pretrain': _config('digits_ssl'),
    'transfer': _config('digits_transfer'), 'adapt': _adapt_every_method,
    'semi': _config('mnist_semi', 'tiny'), 'cluster': _config('digits_cluster'),
    'anomaly': _config('digits_anomaly'), 'rank_sources': _rank_sources,
}


@pytest.mark.parametrize('stage', CASES)
def test_every_value_the_old_table_refused_is_refused_by_its_owner(stage, data_dir, tmp_path):
  config = _with_data(CASES[stage](), data_dir)
  module = importlib.import_module(f'experiments.{stage}')
  unused = _unused_blocks(config)
  if stage == 'rank_sources':   # its one given source is opened (and missing) after the rest
    with pytest.raises(common.ConfigError, match='not/a/run'):
      common.check(module, config, str(tmp_path / 'w'))
  refusals = _refusals(module, config, tmp_path / 'w', baseline=stage != 'rank_sources')
  checked = {p: m for p, m in refusals.items() if p.split('.')[0] not in unused}
  assert len(checked) >= 3, checked
  let_through = [p for p, m in checked.items() if m is None]
  assert not let_through, let_through
  for path, message in checked.items():   # the key as written, or in its owner's block
    block, key = path.rpartition('.')[::2]
    assert f'{path}=' in message or (f'{key}=' in message and block in message), (path, message)


def _assert_refused_naming(refusals):
  let_through = [p for p, m in refusals.items() if m is None]
  assert not let_through, let_through
  for path, message in refusals.items():
    assert f'{path}=' in message, (path, message)


@pytest.mark.parametrize('variant', [m for m in importlib.import_module('configs.digits_ssl')
                                     .METHODS if m != 'simclr'])
def test_every_self_supervised_method_block_is_checked_by_its_method(variant, data_dir, tmp_path):
  from experiments import pretrain  # pylint: disable=import-outside-toplevel
  config = _with_data(_config('digits_ssl', variant)(), data_dir)
  refusals = _refusals(pretrain, config, tmp_path / 'w', only='method.')
  assert refusals
  _assert_refused_naming(refusals)


def test_the_pipeline_names_a_stage_s_value_as_written_in_its_config(data_dir, tmp_path):
  from experiments import pipeline  # pylint: disable=import-outside-toplevel
  config = _with_data(_config('pipeline')(), data_dir)
  leaves = ('pretrain.method.temperature', 'cluster.n_init', 'transfer.steps',
            'adapt.dann.optimizer.momentum', 'adapt.target.image_size', 'anomaly.knn_k')
  refusals = _refusals(pipeline, config, tmp_path / 'w', only=leaves)
  assert set(refusals) == set(leaves)
  _assert_refused_naming(refusals)


@pytest.mark.parametrize('rng,value,allowed', [
    (checks.POSITIVE_INT, 3, True), (checks.POSITIVE_INT, 0, False),
    (checks.POSITIVE_INT, 2.0, False), (checks.POSITIVE_INT, True, False),
    (checks.POSITIVE_INT, (1, 2), True), (checks.POSITIVE_INT, (1, 0), False),
    (checks.POSITIVE, 0.5, True), (checks.POSITIVE, 1, True), (checks.POSITIVE, '1', False),
    (checks.POSITIVE, False, False), (checks.UNIT, 1.0, True), (checks.BELOW_ONE, 1.0, False),
    (checks.WIDTHS, (8, 4), True), (checks.WIDTHS, (), False), (checks.WIDTHS, 8, False),
    (checks.WIDTHS, (8, 2.5), False), (checks.BANDWIDTHS, (0.5, 2), True),
    (checks.BANDWIDTHS, (), False), (checks.BANDWIDTHS, (0.5, 0.0), False),
    (checks.FLAG, False, True), (checks.FLAG, 0, False), (checks.FLAG, 'yes', False),
])
def test_a_range_refuses_values_of_the_wrong_kind(rng, value, allowed):
  assert checks.fits(value, rng) is allowed


def _wrong_kind(rng, value):
  """A value of the wrong kind for `rng` (hand-chosen per kind)."""
  return {'bool': 1, 'integer': 1.5, 'number': 'one', 'widths': (), 'numbers': ()}[rng.kind]


@pytest.mark.parametrize('name', methods.names())
def test_every_method_refuses_a_value_of_the_wrong_kind_naming_its_key(name):
  cls = methods.get(name)
  example = {**getattr(cls, 'defaults', {}), **cls.example_config()}   # semi's defaults too
  keys = [key for key in cls.ranges if key in example]
  for key in keys:
    config = ml_collections.ConfigDict({**example, key: None}).unlock()
    config[key] = _wrong_kind(cls.ranges[key], example[key])
    with pytest.raises(ValueError, match=rf'^method\.{key}=.*: must be '):
      check_block(cls, config)
