"""Training: LoRA presets and the loop that trains adapters through a model backend."""
