// Host stand-ins for CUDA keywords and built-ins, so that a generated .cu file compiles
// as plain C++ (g++ -std=c++20 -x c++ -include host_shim.h) and its kernels run on the CPU.
// Element-wise kernels need no synchronisation: the tests call a kernel once per emulated
// (block, thread), one after another. Kernels with a block reduction (__shared__,
// __syncthreads) run one block at a time with every thread of the block on its own OS
// thread: the indices are thread-local, __shared__ memory is a static local shared by the
// block's threads, and __syncthreads is a barrier of the block's threads.
#pragma once
#include <barrier>
#include <math.h>
#include <memory>

#define __host__
#define __device__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct om_dim3 { unsigned x, y, z; };
inline thread_local om_dim3 blockIdx{0, 0, 0}, threadIdx{0, 0, 0}, blockDim{1, 1, 1}, gridDim{1, 1, 1};
inline std::unique_ptr<std::barrier<>> om_block_barrier;

extern "C" void om_set_thread(unsigned block, unsigned thread, unsigned blocks, unsigned threads) {
    blockIdx.x = block; threadIdx.x = thread; gridDim.x = blocks; blockDim.x = threads;
}

// Before running the threads of one block concurrently: a barrier for that many threads.
extern "C" void om_begin_block(unsigned threads) { om_block_barrier = std::make_unique<std::barrier<>>(threads); }

inline void __syncthreads() { om_block_barrier->arrive_and_wait(); }
