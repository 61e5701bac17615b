"""The adapter bank: named LoRA adapters for one base model, on disk in PEFT format, with a
manifest (base model, LoRA settings, training data, validation scores, config hash, time).

- ``names``: bank names (``unified``, ``persona/<any id>``, ...) and the safe folder and PEFT
  adapter name derived from each.
- ``base``: which base model an adapter belongs to, and the rule for "same base".
- ``folders``: what a folder must be for the bank to accept it (plain LoRA, safetensors).
- ``vectors``: the persona vectors an adapter may carry in its folder (``persona_token``).
- ``lock``: the writers' lock (folders go into place through ``personalab.data.atomic``).
- ``store``: ``AdapterBank`` itself: atomic saves, import, export, loading into a model.
"""

from personalab.bank.names import adapter_directory, peft_adapter_name, split_name
from personalab.bank.store import AdapterBank

__all__ = ["AdapterBank", "adapter_directory", "peft_adapter_name", "split_name"]
