"""Bring your own data in, without TensorFlow (nothing is downloaded):

  python -m experiments.prepare --config=configs/prepare.py:<format> --config.path=<file or folder> \
      --config.name=<dataset name> [--config.data_dir=<dir>] [--config.image_size=64 ...]

writes a TFDS array_record dataset `<data_dir>/<name>/<version>` that every stage reads as
`--config.dataset.name=<name> [--config.dataset.data_dir=<dir>]`. Formats (`:<format>`):

  image_folder  path/<class>/<images> (a train split), path/<train|validation|test>/<class>/...,
                or a flat folder of images (unlabelled); JPEG, PNG, BMP, WebP, ... (Pillow)
  arrays        an .npz with image(s) (N, H, W[, C]) uint8 and optional label(s), or an .npy
  csv           a CSV with a path column (relative to the CSV) and optional label, split
  cifar10       cifar-10-python.tar.gz (or its folder)      -> cifar10, the catalog's name
  cifar100      cifar-100-python.tar.gz (or its folder)     -> cifar100 (coarse labels kept)
  mnist         the folder of MNIST's four idx files        -> mnist
  svhn          the folder of train_32x32.mat, test_32x32.mat (format 2) -> svhn_cropped

The last four default `name` to the catalog dataset their files are the original of, so the
configs that name it (configs/cifar10_ssl.py, configs/svhn_to_mnist.py, ...) read it as is.
"""

import ml_collections
from ml_collections import config_dict


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.format = arg or 'image_folder'
  c.path = ''                    # the file or folder to read
  c.name = ''                    # the dataset's name ('' for the four originals: catalog name)
  c.data_dir = config_dict.placeholder(str)   # default: ~/tensorflow_datasets ($TFDS_DATA_DIR)
  c.image_size = 0               # 0 keeps the stored size (then all must agree)
  c.resize = 'crop'              # crop: shorter side to image_size, centre crop | stretch
  c.channels = 0                 # 0 keeps; 1 or 3 converts (grey <-> RGB)
  c.validation = 0.0             # a count (>= 1) or fraction of train: a seeded stratified split
  c.seed = 0                     # of the validation split
  c.encoding = 'png'             # png (lossless) | jpeg (quality 95, for large photographs)
  c.overwrite = False            # replace an existing dataset of that name
  c.workers = 0                  # decoding processes (0: one per CPU)
  c.progress = True              # a tqdm bar, images/s
  return c
