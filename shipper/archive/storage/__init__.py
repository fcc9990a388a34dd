"""Object stores for archives: S3 (``s3://bucket/prefix``) and local directories (``file:///dir``).

:mod:`.base` is the interface, :mod:`.local` and :mod:`.s3` the stores, :mod:`.url` picks one.
"""
