"""exaug.cli: the ``exaug`` command. Thin click commands that map flags onto configs and call the library."""
