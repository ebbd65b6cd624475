"""Scoring functions shared by the batch and streaming jobs (pure pandas core, model cache)."""
