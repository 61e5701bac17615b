"""Training: LoRA presets and the one loop (a fleet) that trains adapters through a model backend."""
