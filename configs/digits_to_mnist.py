"""Unsupervised domain adaptation across handwriting: UCI digits (tlu_digits) -> real MNIST (tlu_mnist).

`--config=configs/digits_to_mnist.py:<method>` runs one method (source_only, dann, shot,
target_oracle); no argument runs all four, for every seed in `seeds`. Same structure,
network and step budget as configs/mnist_to_mnist_m.py.

Data: source `tlu_digits`, the 1,797 UCI digits of scikit-learn (train 1,437 / test 360;
writers of Alpaydin & Kaynak's set, 32x32 bitmaps counted down to 8x8 ink levels),
fitted on the host to 28x28x1 (bilinear, `dataset.image_size`); target `tlu_mnist`, 5,000
real MNIST digits (train 3,500 without labels / validation 500 / test 1,000). The shift is
in the writers, the scanning and the framing: an upsampled UCI digit fills the whole
28x28 frame, an MNIST digit sits in a 20x20 box centred in it, and 8x8 ink counts come
back blurred. `tlu_digits` has no validation split: the source model is scored on its
test split (source data only); the target's labels are read for its test split only.

Published: no paper reports UCI digits -> MNIST. The nearest published handwriting shift
is USPS (16x16) -> MNIST (e.g. Tzeng et al. 2017, ADDA, Table 2), on other data: its
numbers are not comparable and are not quoted here. Measured: docs/results.md.
"""

from configs import digits_supervised, mnist_to_mnist_m

SOURCE_TRAIN = 1_437     # tlu_digits train split


def get_config(arg=None):
  c = mnist_to_mnist_m.get_config(arg)
  c.source_task.dataset = digits_supervised.dataset('tlu_digits', image_size=28)
  c.target = digits_supervised.dataset('tlu_mnist')
  c.source_validation_split = 'test'   # tlu_digits has no validation split (source labels)
  return c
