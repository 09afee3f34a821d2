"""Specification of `tlu.transfer.surgery.transplant` and its report."""

import json

import flax.linen as nn
import jax
import numpy as np
import pytest

from tlu.transfer.paths import flatten, match_any, unflatten
from tlu.transfer.surgery import TransplantError, transplant


def _tree(seed, backbone='backbone', head_out=3, cin=1):
  """A small params tree of numpy arrays whose values depend on `seed`."""
  rng = np.random.default_rng(seed)
  f = lambda *s: rng.normal(size=s).astype(np.float32)
  return {
      backbone: {
          'Conv_0': {'kernel': f(3, 3, cin, 4), 'bias': f(4)},
          'Dense_0': {'kernel': f(4, 8), 'bias': f(8)},
      },
      'head': {'kernel': f(8, head_out), 'bias': f(head_out)},
  }


def _assert_same_values(a, b):
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_paths_flatten_roundtrip_and_full_match():
  tree = _tree(0)
  flat = flatten(tree)
  assert sorted(flat) == ['backbone/Conv_0/bias', 'backbone/Conv_0/kernel',
                          'backbone/Dense_0/bias', 'backbone/Dense_0/kernel',
                          'head/bias', 'head/kernel']
  assert jax.tree.structure(unflatten(flat)) == jax.tree.structure(tree)
  assert match_any('head/kernel', ('head/.*',))
  assert not match_any('head/kernel', ('head',))  # full match, not search
  assert match_any('head/kernel', 'head/.*')  # a single string is one pattern


def test_default_rule_copies_every_leaf():
  source, target = _tree(0), _tree(1)
  new, report = transplant(source, target)
  for path, value in flatten(new).items():
    _assert_same_values(value, flatten(source)[path])
  assert sorted(report.copied) == sorted((p, p) for p in flatten(target))
  assert report.kept_fresh == [] and report.unused_source == [] and report.adapted == []


def test_rename_rule_copies_exactly_the_named_leaves():
  source, target = _tree(0, backbone='encoder'), _tree(1)
  new, report = transplant(source, target, rules=[('backbone/(.*)', r'encoder/\1')])
  src, tgt, out = flatten(source), flatten(target), flatten(new)
  for path in ('Conv_0/kernel', 'Conv_0/bias', 'Dense_0/kernel', 'Dense_0/bias'):
    _assert_same_values(out['backbone/' + path], src['encoder/' + path])
  _assert_same_values(out['head/kernel'], tgt['head/kernel'])
  _assert_same_values(out['head/bias'], tgt['head/bias'])
  assert sorted(report.copied) == [
      ('backbone/Conv_0/bias', 'encoder/Conv_0/bias'),
      ('backbone/Conv_0/kernel', 'encoder/Conv_0/kernel'),
      ('backbone/Dense_0/bias', 'encoder/Dense_0/bias'),
      ('backbone/Dense_0/kernel', 'encoder/Dense_0/kernel')]
  assert sorted(report.kept_fresh) == [('head/bias', 'no rule'), ('head/kernel', 'no rule')]
  assert sorted(report.unused_source) == ['head/bias', 'head/kernel']


def test_rule_naming_a_missing_source_leaf_falls_through_to_the_next_rule():
  source, target = _tree(0, backbone='encoder'), _tree(1)
  rules = [('backbone/(.*)', r'missing/\1'), ('backbone/(.*)', r'encoder/\1'),
           ('backbone/(.*)', r'head/\1')]
  new, report = transplant(source, target, rules=rules)
  _assert_same_values(new['backbone']['Dense_0']['kernel'], source['encoder']['Dense_0']['kernel'])
  assert ('backbone/Dense_0/kernel', 'encoder/Dense_0/kernel') in report.copied


def test_dont_load_keeps_fresh_values():
  source, target = _tree(0), _tree(1)
  new, report = transplant(source, target, dont_load=('head/.*',))
  _assert_same_values(new['head']['kernel'], target['head']['kernel'])
  _assert_same_values(new['head']['bias'], target['head']['bias'])
  _assert_same_values(new['backbone']['Conv_0']['kernel'], source['backbone']['Conv_0']['kernel'])
  assert sorted(report.kept_fresh) == [('head/bias', 'dont_load'), ('head/kernel', 'dont_load')]
  assert sorted(report.unused_source) == ['head/bias', 'head/kernel']


def test_shape_mismatch_names_both_paths_and_both_shapes():
  source, target = _tree(0, backbone='encoder', head_out=10), _tree(1, head_out=3)
  rules = [('backbone/(.*)', r'encoder/\1'), ('head/(.*)', r'head/\1')]
  with pytest.raises(TransplantError) as info:
    transplant(source, target, rules=rules)
  message = str(info.value)
  assert isinstance(info.value, ValueError)
  assert "'head/bias'" in message  # sorted traversal: bias comes first
  assert message.count("'head/bias'") == 2  # as source and as target
  assert '(10,)' in message and '(3,)' in message


def test_shape_mismatch_message_names_renamed_paths():
  source = {'encoder': {'kernel': np.zeros((4, 10), np.float32)}}
  target = {'backbone': {'kernel': np.zeros((4, 3), np.float32)}}
  with pytest.raises(TransplantError, match='shapes') as info:
    transplant(source, target, rules=[('backbone/(.*)', r'encoder/\1')])
  message = str(info.value)
  for part in ("'encoder/kernel'", "'backbone/kernel'", '(4, 10)', '(4, 3)'):
    assert part in message


def test_dtype_mismatch_names_both_paths_and_dtypes():
  source = {'w': np.zeros((2, 2), np.float16)}
  target = {'w': np.zeros((2, 2), np.float32)}
  with pytest.raises(TransplantError, match='dtypes') as info:
    transplant(source, target)
  message = str(info.value)
  assert message.count("'w'") == 2 and 'float16' in message and 'float32' in message


def test_dtype_mismatch_raises_even_with_adapters():
  source = {'head': {'kernel': np.zeros((8, 3), np.float16)}}
  target = {'head': {'kernel': np.zeros((8, 5), np.float32)}}
  with pytest.raises(TransplantError):
    transplant(source, target, adapters=('reinit_mismatched', 'in_channels'))


@pytest.mark.parametrize('adapter', ['reinit_mismatched', 'head'])
def test_reinit_mismatched_keeps_the_fresh_head(adapter):
  source, target = _tree(0, head_out=10), _tree(1, head_out=3)
  new, report = transplant(source, target, adapters=(adapter,))
  _assert_same_values(new['head']['kernel'], target['head']['kernel'])
  _assert_same_values(new['backbone']['Dense_0']['kernel'], source['backbone']['Dense_0']['kernel'])
  assert sorted(report.kept_fresh) == [('head/bias', 'reinit_mismatched'),
                                       ('head/kernel', 'reinit_mismatched')]
  assert sorted(report.unused_source) == ['head/bias', 'head/kernel']


def _conv(image, kernel):
  """NHWC image (1, H, W, cin), HWIO kernel -> (1, H, W, cout), 'SAME' padding."""
  return jax.lax.conv_general_dilated(
      image, kernel, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def test_in_channels_1_to_3_keeps_the_response_to_a_grey_image():
  source, target = _tree(0, cin=1), _tree(1, cin=3)
  new, report = transplant(source, target, adapters=('in_channels',))
  grey = np.random.default_rng(2).uniform(size=(1, 6, 6, 1)).astype(np.float32)
  expected = _conv(grey, source['backbone']['Conv_0']['kernel'])
  got = _conv(np.repeat(grey, 3, axis=-1), new['backbone']['Conv_0']['kernel'])
  assert new['backbone']['Conv_0']['kernel'].shape == (3, 3, 3, 4)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  assert report.adapted == [('backbone/Conv_0/kernel', 'backbone/Conv_0/kernel', 'in_channels 1->3')]


def test_in_channels_1_to_3_through_a_flax_conv():
  conv = nn.Conv(4, (3, 3))
  grey = np.random.default_rng(3).uniform(size=(1, 5, 5, 1)).astype(np.float32)
  source = conv.init(jax.random.key(0), grey)
  target = conv.init(jax.random.key(1), np.repeat(grey, 3, axis=-1))
  new, _ = transplant(source, target, adapters=('in_channels',))
  np.testing.assert_allclose(conv.apply(new, np.repeat(grey, 3, axis=-1)),
                             conv.apply(source, grey), rtol=1e-5, atol=1e-6)


def test_in_channels_3_to_1_sums_over_input_channels():
  source, target = _tree(0, cin=3), _tree(1, cin=1)
  new, report = transplant(source, target, adapters=('in_channels',))
  expected = source['backbone']['Conv_0']['kernel'].sum(axis=2, keepdims=True)
  np.testing.assert_allclose(new['backbone']['Conv_0']['kernel'], expected, rtol=1e-6)
  assert report.adapted[0][2] == 'in_channels 3->1'


def test_in_channels_does_not_adapt_other_mismatches():
  source, target = _tree(0, cin=3), _tree(1, cin=4)  # 3 -> 4 is not 1 <-> n
  with pytest.raises(TransplantError, match='backbone/Conv_0/kernel'):
    transplant(source, target, adapters=('in_channels',))
  source, target = _tree(0, head_out=10), _tree(1, head_out=3)  # a head is not a conv
  with pytest.raises(TransplantError, match='head/'):
    transplant(source, target, adapters=('in_channels',))


class _Net(nn.Module):

  @nn.compact
  def __call__(self, x, train=True):
    x = nn.Conv(4, (3, 3), name='stem')(x)
    x = nn.BatchNorm(use_running_average=not train, name='bn')(x)
    return nn.Dense(self.num_classes, name='head')(x.mean(axis=(1, 2)))

  num_classes: int = 3


def test_variables_dict_transplants_params_and_batch_stats():
  x = np.ones((2, 5, 5, 1), np.float32)
  net = _Net(num_classes=10)
  source = net.init(jax.random.key(0), x)
  # Non-trivial running statistics, so a copy is told apart from a fresh init.
  _, updates = net.apply(source, x * 3.0, mutable=['batch_stats'])
  source = {'params': source['params'], 'batch_stats': updates['batch_stats']}
  target = _Net(num_classes=3).init(jax.random.key(1), x)
  new, report = transplant(source, target, dont_load=('head/.*',))
  for name in ('mean', 'var'):
    _assert_same_values(new['batch_stats']['bn'][name], source['batch_stats']['bn'][name])
    assert not np.array_equal(new['batch_stats']['bn'][name], target['batch_stats']['bn'][name])
  _assert_same_values(new['params']['stem']['kernel'], source['params']['stem']['kernel'])
  _assert_same_values(new['params']['head']['kernel'], target['params']['head']['kernel'])
  assert ('batch_stats/bn/mean', 'batch_stats/bn/mean') in report.copied
  assert ('params/head/kernel', 'dont_load') in report.kept_fresh
  assert sorted(report.unused_source) == ['params/head/bias', 'params/head/kernel']
  assert jax.tree.structure(new) == jax.tree.structure(target)


def test_params_only_source_into_variables_target_keeps_fresh_stats():
  x = np.ones((1, 4, 4, 1), np.float32)
  target = _Net().init(jax.random.key(1), x)
  source = _Net().init(jax.random.key(0), x)['params']
  new, report = transplant(source, target)
  _assert_same_values(new['params']['stem']['kernel'], source['stem']['kernel'])
  assert sorted(report.kept_fresh) == [('batch_stats/bn/mean', 'no rule'),
                                       ('batch_stats/bn/var', 'no rule')]


def test_report_table_and_json_name_every_leaf():
  source, target = _tree(0, backbone='encoder', cin=3), _tree(1, cin=1)
  source['encoder']['extra'] = {'w': np.zeros(2, np.float32)}
  _, report = transplant(source, target, rules=[('backbone/(.*)', r'encoder/\1')],
                         dont_load=('head/bias',), adapters=('in_channels',))
  table = report.table()
  for path in ('backbone/Dense_0/kernel', 'encoder/Dense_0/kernel', 'head/bias', 'head/kernel',
               'encoder/extra/w', 'in_channels 3->1', 'dont_load', 'no rule'):
    assert path in table
  data = json.loads(json.dumps(report.to_json()))
  assert {(d['target'], d['source']) for d in data['copied']} == set(report.copied)
  assert data['kept_fresh'] == [{'target': 'head/bias', 'reason': 'dont_load'},
                                {'target': 'head/kernel', 'reason': 'no rule'}]
  assert sorted(data['unused_source']) == ['encoder/extra/w', 'head/bias', 'head/kernel']
  assert data['adapted'] == [{'target': 'backbone/Conv_0/kernel',
                              'source': 'encoder/Conv_0/kernel', 'how': 'in_channels 3->1'}]
