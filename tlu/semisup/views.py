"""The weak and strong views of the FixMatch family, on device (`tlu.data.augment`).

FixMatch (Sohn et al. 2020, section 2.3): weak = a random horizontal flip and a
translation of up to 12.5% of the side (torchvision's 4-pixel reflect pad + crop on
32x32); strong = the weak ops, then RandAugment (two of 14 ops at random magnitudes),
then Cutout (`strong='randaugment'`: `tlu.data.augment.randaugment.strong_view`, whose
ops are checked against Pillow). The named strong views below are cheaper stand-ins built
from tlu's affine and colour ops: a larger affine warp (rotation, shear, translation),
colour jitter, solarization (RGB) or pixel noise (grey).

A view spec is a name of `WEAK_VIEWS` / `STRONG_VIEWS`, 'randaugment' ('randaugment_noflip'
for digits), a mapping with name='randaugment' and `strong_view`'s options, or anything
`tlu.data.augment.make_augment` takes (a preset name or a mapping of AugmentConfig
fields). `make_view(spec) -> augment(key, images (N, H, W, C) float [0, 1]) -> same`.
"""

from collections.abc import Mapping

from tlu.data import augment as augment_lib
from tlu.data.augment.config import AugmentConfig

RANDAUGMENT = 'randaugment'
RANDAUGMENT_VIEWS = {RANDAUGMENT: {}, 'randaugment_noflip': {'flip': False}}   # + its options

WEAK_VIEWS = {
    # FixMatch's weak view; 'mirror' is torchvision's reflect padding.
    'flip_translate': AugmentConfig(flip_prob=0.5, affine_prob=1.0, translate_frac=0.125,
                                    affine_fill='mirror'),
    # Digits are not mirror-invariant: the shift alone, on a black background.
    'translate': AugmentConfig(affine_prob=1.0, translate_frac=0.125, affine_fill='constant'),
}

STRONG_VIEWS = {
    'flip_translate_strong': AugmentConfig(
        flip_prob=0.5, affine_prob=1.0, rotate_deg=30.0, shear_deg=15.0, translate_frac=0.125,
        affine_fill='mirror', jitter_prob=1.0, brightness=0.5, contrast=0.5, saturation=0.5,
        hue=0.1, solarize_prob=0.2),
    'translate_strong': AugmentConfig(
        affine_prob=1.0, rotate_deg=30.0, shear_deg=15.0, translate_frac=0.125,
        affine_fill='constant', jitter_prob=1.0, brightness=0.5, contrast=0.5,
        noise_prob=0.5, noise_std=0.1),
}


def _randaugment(spec):
  from tlu.data.augment import randaugment  # pylint: disable=import-outside-toplevel
  if isinstance(spec, str):
    spec = {'name': RANDAUGMENT, **RANDAUGMENT_VIEWS[spec]}
  try:
    return randaugment.strong_view(spec)
  except (TypeError, ValueError) as e:
    raise ValueError(f'view {spec!r}: {e}') from e


def is_randaugment(spec):
  return ((isinstance(spec, str) and spec in RANDAUGMENT_VIEWS)
          or (isinstance(spec, Mapping) and spec.get('name') == RANDAUGMENT))


def make_view(spec):
  """augment(key, images) for a view spec (see the module docstring); ValueError if unknown."""
  if hasattr(spec, 'to_dict'):
    spec = spec.to_dict()
  if is_randaugment(spec):
    return _randaugment(spec)
  if isinstance(spec, str) and spec in {**WEAK_VIEWS, **STRONG_VIEWS}:
    spec = {**WEAK_VIEWS, **STRONG_VIEWS}[spec]
  try:
    return augment_lib.make_augment(spec)
  except (TypeError, ValueError) as e:
    raise ValueError(f'view {spec!r}: {e}; known views: '
                     f'{sorted(WEAK_VIEWS) + sorted(STRONG_VIEWS) + sorted(RANDAUGMENT_VIEWS)}') from e
