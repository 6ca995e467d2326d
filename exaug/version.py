"""exaug's version, in one place: the package metadata and the provenance bundles record both read it."""

__version__ = "0.1.0"
