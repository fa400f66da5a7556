"""Synthetic data generation and training/export of the ensemble members."""
