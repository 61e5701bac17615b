"""personalab: personalize one small pretrained model to many personas with LoRA adapters.

The package is layered (each layer imports only from the ones before it):
``data`` -> ``engine`` -> ``models`` -> ``bank`` -> ``routing`` -> ``train`` -> ``strategies`` ->
``evaluate`` -> ... -> ``cli`` (``../shared/DESIGN.md`` lists them all).
"""

__version__ = "0.1.0"
