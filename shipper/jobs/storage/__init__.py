"""Moved to :mod:`shipper.archive.storage`; this path stays for callers not yet updated."""
