// Shared macros for code compiled both by the host compiler and by nvcc.
#pragma once

#if defined(__CUDACC__)
#define SIAM_HD __host__ __device__
#define SIAM_HD_INLINE __host__ __device__ __forceinline__
#else
#define SIAM_HD
#define SIAM_HD_INLINE inline
#endif
