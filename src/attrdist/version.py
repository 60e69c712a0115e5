"""The version of attrdist (the one place it is written; the package metadata reads it)."""

__version__ = "0.2.0"
