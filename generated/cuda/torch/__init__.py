"""CUDA kernels of the specs in specs/torch/. Generated; do not edit."""
