"""Serving a trained run: the export folder for other servers, what they accept, and
personalab's own server.

- ``plan``: which adapters an export holds (one per distinct route) and ``routing.json``.
- ``writer``: ``export_run``, writing the folder atomically (adapters, routing, router,
  classifier head, ``export.json``).
- ``compat``: the multi-LoRA servers' rules (vLLM today), ``check_adapter`` / ``check_export``.
- ``answer``: answering texts for personas with a run (``personalab predict`` and ``serve``).
- ``serve``: ``personalab serve``, the HTTP server that batches many personas' requests.
"""

from personalab.export.compat import (
    CompatReport,
    Problem,
    ServingBase,
    check_adapter,
    check_adapters,
    check_export,
    vllm_max_lora_rank,
)
from personalab.export.writer import ExportedAdapter, ExportReport, export_run

__all__ = [
    "CompatReport",
    "ExportReport",
    "ExportedAdapter",
    "Problem",
    "ServingBase",
    "check_adapter",
    "check_adapters",
    "check_export",
    "export_run",
    "vllm_max_lora_rank",
]
