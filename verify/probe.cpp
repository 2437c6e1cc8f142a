// Entry points into generated/cuda/optforge.cuh for the host (tests and the verifier): the
// 16-bit conversions, Philox4x32-10 and the standard normal numbers the kernels draw.
#include "optforge.cuh"

extern "C" void om_float_to_half(const float* in, om::u16* out, long long n) {
    for (long long i = 0; i < n; ++i) out[i] = om::float_to_half(in[i]);
}
extern "C" void om_half_to_float(const om::u16* in, float* out, long long n) {
    for (long long i = 0; i < n; ++i) out[i] = om::half_to_float(in[i]);
}
extern "C" void om_float_to_bfloat16(const float* in, om::u16* out, long long n) {
    for (long long i = 0; i < n; ++i) out[i] = om::float_to_bfloat16(in[i]);
}
extern "C" void om_philox(om::u32* counter, om::u32 k0, om::u32 k1) {
    om::u32 c[4] = {counter[0], counter[1], counter[2], counter[3]};
    om::philox4x32_10(c, k0, k1);
    for (int k = 0; k < 4; ++k) counter[k] = c[k];
}
extern "C" void om_normal_f32(float* out, long long n, om::u64 key, om::u64 t, int tag) {
    const om::Noise noise{key, t};
    for (long long i = 0; i < n; ++i) out[i] = om::normal<float>(noise, i, tag);
}
extern "C" void om_normal_f64(double* out, long long n, om::u64 key, om::u64 t, int tag) {
    const om::Noise noise{key, t};
    for (long long i = 0; i < n; ++i) out[i] = om::normal<double>(noise, i, tag);
}
