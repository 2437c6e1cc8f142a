"""CUDA kernels of the specs in specs/mxnet1/. Generated; do not edit."""
