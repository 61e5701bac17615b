"""Serving a trained run over HTTP (``personalab serve``): the base model and the personalizer
loaded once, requests of many personas answered from one process, concurrent ones scored in one
engine batch with a route per row. Needs the ``serve`` extra (FastAPI and uvicorn).

- ``batcher``: ``Batcher``, gathering concurrent requests for a few milliseconds into one call.
- ``schema``: the request and response bodies, as the OpenAPI page documents them.
- ``app``: ``create_app``, the endpoints (``/predict``, ``/personas``, ``/health``), request
  checks with clear 4xx answers, and the one-line-per-request log.

Only ``batcher`` is imported here: it needs nothing beyond the standard library, while the
app needs the extra (``personalab.export.serve.app``).
"""

from personalab.export.serve.batcher import Batcher, BatchSettings, BatchStats, Busy

__all__ = ["BatchSettings", "BatchStats", "Batcher", "Busy"]
