"""Numerics only: contiguous arrays in, arrays out. Imports numpy and numba, nothing else."""
