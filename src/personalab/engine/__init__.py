"""The multi-LoRA engine: routes over an adapter bank, applied per row.

Depends on torch and safetensors only; it knows nothing of datasets, strategies or plans.
"""

from personalab.engine.routes import Route

__all__ = ["Route"]
