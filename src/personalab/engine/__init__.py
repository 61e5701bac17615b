"""The multi-LoRA engine: routes over an adapter bank, applied per row.

Depends on torch and safetensors only; it knows nothing of datasets, strategies or plans.

* ``routes``: ``Route``, a sparse weighted mixture of adapter names;
* ``weights``: ``LoraWeights``, one adapter at one module (``A``, ``B``, scale);
* ``peft_io``: PEFT adapter folders <-> ``{module_path: LoraWeights}``;
* ``rows``: ``RowRoutes``, one batch's routes resolved to adapter indices and weights;
* ``layers``: ``MultiLoraLinear``, a linear layer applying each row's own mixture;
* ``input_vectors``: ``InputVectors``, named vectors a route adds to its rows' input embeddings;
* ``model``: ``MultiLoraModel``, a base model with those layers and a route table;
* ``ensemble``: ``mix_scores``, output-space mixtures of several routes' scores;
* ``merge``: ``merge_exact`` / ``merge_svd``, a weighted sum of adapters as one adapter.
"""

from personalab.engine.ensemble import mix_scores
from personalab.engine.input_vectors import InputVectors
from personalab.engine.layers import MultiLoraLinear
from personalab.engine.merge import merge_exact, merge_svd, pad_rank, relative_errors
from personalab.engine.model import MultiLoraModel, route_table, wrap_linears
from personalab.engine.peft_io import (
    AdapterFormatError,
    adapter_config,
    read_adapter_config,
    read_peft_adapter,
    write_peft_adapter,
)
from personalab.engine.routes import Route
from personalab.engine.rows import RowRoutes, row_routes
from personalab.engine.weights import LoraWeights

__all__ = [
    "AdapterFormatError",
    "InputVectors",
    "LoraWeights",
    "MultiLoraLinear",
    "MultiLoraModel",
    "Route",
    "RowRoutes",
    "adapter_config",
    "merge_exact",
    "merge_svd",
    "mix_scores",
    "pad_rank",
    "read_adapter_config",
    "read_peft_adapter",
    "relative_errors",
    "route_table",
    "row_routes",
    "wrap_linears",
    "write_peft_adapter",
]
