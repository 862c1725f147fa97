// Shared macros for code compiled both by the host compiler and by nvcc.
#pragma once

#if defined(__CUDACC__)
#define SIAM_HD __host__ __device__
#define SIAM_HD_INLINE __host__ __device__ __forceinline__
#else
#define SIAM_HD
#define SIAM_HD_INLINE inline
#endif

// Full unrolling of a fixed-count loop in device code (arrays indexed by the loop stay in registers); nothing on
// the host.
#if defined(__CUDA_ARCH__)
#define SIAM_UNROLL _Pragma("unroll")
#else
#define SIAM_UNROLL
#endif
