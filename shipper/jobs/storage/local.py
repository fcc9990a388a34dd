"""Moved to :mod:`shipper.archive.storage.local`; this path stays for callers not yet updated."""

from shipper.archive.storage.local import LocalStore

__all__ = ["LocalStore"]
