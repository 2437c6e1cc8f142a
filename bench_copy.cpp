// The CPU benchmark's streaming roofline (bench.py `streaming_gbs`): a float32 copy, read +
// write, on the OpenMP threads and with the split of the native kernels (om::split of
// optforge_cpu.h: contiguous ranges per thread), built and cached by native_build like
// them (`native_build.load`).
//
// Two kinds of store: ordinary ones (the destination's lines are read into the cache
// before they are written, as they are for a kernel's written arrays, which it has just
// read) and non-temporal ones (written to memory directly, no read of the destination),
// so the benchmark can take the faster of the two. Vector loads and stores are written out
// (not a loop the compiler may turn into a call of memcpy, which picks its own stores).
#include "optforge_cpu.h"
#if defined(__SSE2__)
#include <immintrin.h>
#endif

template <bool STREAM>
static void copy_span(const float* __restrict__ src, float* __restrict__ dst, om::index_t i, const om::index_t hi)
{
#if defined(__AVX512F__)
    constexpr om::index_t lanes = 16;
#elif defined(__AVX__)
    constexpr om::index_t lanes = 8;
#elif defined(__SSE2__)
    constexpr om::index_t lanes = 4;
#else
    constexpr om::index_t lanes = 1;
#endif
    for (; i < hi && reinterpret_cast<unsigned long long>(dst + i) % (lanes * sizeof(float)) != 0; ++i)
        dst[i] = src[i];            // up to the first aligned destination vector
#if defined(__SSE2__)
    for (; i + lanes <= hi; i += lanes) {
#if defined(__AVX512F__)
        const __m512 x = _mm512_loadu_ps(src + i);
        if constexpr (STREAM) _mm512_stream_ps(dst + i, x); else _mm512_store_ps(dst + i, x);
#elif defined(__AVX__)
        const __m256 x = _mm256_loadu_ps(src + i);
        if constexpr (STREAM) _mm256_stream_ps(dst + i, x); else _mm256_store_ps(dst + i, x);
#else
        const __m128 x = _mm_loadu_ps(src + i);
        if constexpr (STREAM) _mm_stream_ps(dst + i, x); else _mm_store_ps(dst + i, x);
#endif
    }
    if constexpr (STREAM) _mm_sfence();     // the streamed stores are ordered before the return
#endif
    for (; i < hi; ++i) dst[i] = src[i];
}

// dst[i] = src[i] for i in [0, n), on up to `threads` threads.
extern "C" void stream_copy(const float* src, float* dst, const om::index_t n, const int threads)
{
    om::split(n, threads, [&](const om::index_t lo, const om::index_t hi) { copy_span<false>(src, dst, lo, hi); });
}

// The same with non-temporal stores.
extern "C" void stream_copy_nt(const float* src, float* dst, const om::index_t n, const int threads)
{
    om::split(n, threads, [&](const om::index_t lo, const om::index_t hi) { copy_span<true>(src, dst, lo, hi); });
}
