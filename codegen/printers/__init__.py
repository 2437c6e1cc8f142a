"""One sympy printer per target: host Python, array code (NumPy/CuPy), CUDA C++, LaTeX."""
