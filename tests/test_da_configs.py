"""configs/adapt_methods.py: every block is a valid task of its method in an adaptation config."""

import pytest

from configs import adapt_methods, digits_to_digits_m
from tlu import methods
from tlu.adapt import cells
from tlu.train import task


def _config():
  c = digits_to_digits_m.get_config()
  with c.unlocked():
    c.update(adapt_methods.blocks(steps=40, batch_size=8))
    c.methods = adapt_methods.METHODS
  return c


def test_every_new_method_file_has_a_block():
  new = {'cdan', 'cdan_bsp', 'dann_bsp', 'dan', 'jan', 'mcc', 'mdd', 'afn', 'aad', 'mcd', 'adda'}
  assert set(adapt_methods.METHODS) == new and new <= set(methods.names())
  for name, block in adapt_methods.blocks(100, 16).items():
    assert block.method.name == name


@pytest.mark.parametrize('name', adapt_methods.METHODS)
def test_each_block_passes_every_check_before_compute(name):
  config = _config()
  cells.check_methods(config)
  cells.check_values(config)
  cfg = cells.cell_task(config, name, seed=1)
  method_cls = methods.get(cfg.method.name)
  named = ('validation', 'target_train', 'source_train', 'source_validation')   # the sweep's
  free = cells.source_free(method_cls)
  splits = task.Splits(train=range(64), target=None if free else range(64),
                       num_classes=10, image_shape=(32, 32, 3),
                       extra={s: range(64) for s in named})
  task.check_task(cfg, splits)   # method ranges, optimizer, and the model traced on the shapes
  assert cfg.seed == 1 and cfg.model == config.source_task.model
  assert method_cls.from_source == (name in ('aad', 'adda')) and free == (name == 'aad')
