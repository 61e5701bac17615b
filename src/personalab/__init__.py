"""personalab: personalize one small pretrained model to many personas with LoRA adapters.

The package is layered (each layer imports only from the ones before it):
``data`` -> ``models`` -> ``bank`` -> ``train`` -> ``strategies`` -> ``evaluate`` -> ``cli``.
"""

__version__ = "0.1.0"
