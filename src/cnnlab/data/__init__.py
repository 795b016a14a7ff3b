"""Data: the named data sets, the file formats, splits, and turning a user's image into a model input.

    dataset.py   load_data: a name or a directory -> DataSet (train and test Splits in memory)
    catalog.py   the known names and where to find them       formats.py  IDX, CIFAR-10 batches, digits
    folders.py   image folders (photos, broken files)          images.py   image suffixes and decoding
    cache.py     decoded folders kept on disk                  splits.py   stratified splits, statistics
    prepare.py   a user's image -> model input                 ink.py      a photo's ink, cleaned
"""

from .catalog import known_datasets
from .dataset import DataSet, load_data
from .formats import DIGIT_CLASSES, FASHION_CLASSES, IDX_STEMS, Split
from .images import IMAGE_EXTS, open_image
from .prepare import normalize, prepare, to_model_pixels
from .splits import channel_stats, stratified_split, stratified_subset

__all__ = ["DIGIT_CLASSES", "FASHION_CLASSES", "IDX_STEMS", "IMAGE_EXTS", "DataSet", "Split", "channel_stats",
           "known_datasets", "load_data", "normalize", "open_image", "prepare", "stratified_split",
           "stratified_subset", "to_model_pixels"]
