"""NumPy reference modules of the specs in specs/torch/. Generated; do not edit."""
