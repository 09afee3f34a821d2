"""The house's checks of one method block, in the order tlu/train/task.py runs them."""

from tlu import checks


def check_block(cls, config):
  """RangeError / ValueError for a method block `config` that `cls` refuses: its `ranges`,
  then its `check` (what a range cannot say)."""
  checks.check_values(config, cls.ranges, 'method.')
  cls.check(config)
