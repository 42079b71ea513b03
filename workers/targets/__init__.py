"""Saved targets: bundle folders under the models directory."""
