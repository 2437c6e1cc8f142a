// Host stand-ins for CUDA keywords and built-ins, so that a generated .cu file compiles
// as plain C++ (g++ -x c++ -include host_shim.h) and its kernels run on the CPU.
// Element-wise kernels need no synchronisation: the tests call a kernel once per emulated
// (block, thread) with the indices set through om_set_thread.
#pragma once
#include <math.h>

#define __host__
#define __device__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(...)

struct om_dim3 { unsigned x, y, z; };
inline om_dim3 blockIdx{0, 0, 0}, threadIdx{0, 0, 0}, blockDim{1, 1, 1}, gridDim{1, 1, 1};

extern "C" void om_set_thread(unsigned block, unsigned thread, unsigned blocks, unsigned threads) {
    blockIdx.x = block; threadIdx.x = thread; gridDim.x = blocks; blockDim.x = threads;
}
