"""Datasets and input pipelines. Importing this package registers the embedded TFDS builders."""

from tlu.data import digits as _digits  # noqa: F401  (registers tlu_digits, tlu_digits_m)
