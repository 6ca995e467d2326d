"""MNIST and Fashion-MNIST for exaug: which data sets exist (`catalog`), how their files are fetched and
verified (`fetching`), the fixed splits and subsets (`splits`), and the labels of any dataset (`labels`)."""

from .catalog import DATASETS, REGISTRY, DatasetInfo, dataset_info, default_root
from .fetching import FetchError, fetch, verify_files
from .labels import class_count, dataset_labels, describe_labels, listed_labels
from .splits import SPLITS, ImageTensorDataset, balanced_subset_rows, data_checksum, load_split, write_image_folder

__all__ = ["DATASETS", "REGISTRY", "SPLITS", "DatasetInfo", "FetchError", "ImageTensorDataset", "balanced_subset_rows",
           "class_count", "data_checksum", "dataset_info", "dataset_labels", "default_root", "describe_labels",
           "fetch", "listed_labels", "load_split", "verify_files", "write_image_folder"]
