"""Day archives: the format, the layout and the object stores that both the ``s3`` sink and the jobs use.

An archive holds, per UTC day, gzip NDJSON objects and a ``manifest.json`` written last that lists
every object with its event count, size, SHA-256 and time range (:mod:`.layout`, :mod:`.objects`,
:mod:`.manifest`), in S3 or a directory (:mod:`.storage`). This package imports nothing of the
sinks or the jobs: they build on it.
"""
