"""Render a shipper config as an equivalent Vector config (YAML), with unit tests Vector can run.

The mapping, option by option, and what has no Vector equivalent is in ``docs/deploy.md``.
Every difference found while rendering is also returned as a note and written at the top of the
output; a sink type Vector cannot carry is left out with a note saying so. Targets Vector 0.57 or
newer by default (``vector_version``): from 0.57 on, routing templates made only of event fields
(``{{ service }}``) need the sink-level opt-out ``dangerously_allow_unconfined_template_resolution``,
and ``${VAR}`` in the file are interpolated only with ``--dangerously-allow-env-var-interpolation``.

Modules: :mod:`.sources` and :mod:`.sinks` (one function per component type, in a table),
:mod:`.samples` (the ``tests:`` section), :mod:`.render` (the walk over the config).
"""

from pipelines.vector.render import Rendered, RenderOptions, render_vector
from pipelines.vector.samples import SAMPLE_CONTAINER_FILE, SAMPLE_RECORD
from pipelines.vector.sinks import MIN_DISK_BUFFER_BYTES, NOT_RENDERED, SINK_RENDERERS
from pipelines.vector.sources import SOURCE_RENDERERS

__all__ = [
    "MIN_DISK_BUFFER_BYTES",
    "NOT_RENDERED",
    "SAMPLE_CONTAINER_FILE",
    "SAMPLE_RECORD",
    "SINK_RENDERERS",
    "SOURCE_RENDERERS",
    "RenderOptions",
    "Rendered",
    "render_vector",
]
