"""Evaluation: scoring rows through their routes, metrics, and per-persona breakdowns."""
