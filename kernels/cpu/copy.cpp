#include "kernels/cpu/copy.h"

#include <cstring>

#include "kernels/cpu/strided.h"

namespace siam::kernels::cpu {

namespace {

template <class T> inline float to_f(T v) { return static_cast<float>(v); }

template <class D, class S> inline D convert(S v) {
  if constexpr (std::is_same_v<D, S>) {
    return v;
  } else if constexpr (std::is_same_v<S, bf16> || std::is_same_v<S, f16>) {
    return convert<D>(static_cast<float>(v));
  } else if constexpr (std::is_same_v<D, bf16> || std::is_same_v<D, f16>) {
    return D(static_cast<float>(v));
  } else {
    return static_cast<D>(v);
  }
}

template <class F>
void dispatch_all(DType t, F&& f) {
  switch (t) {
    case DType::f32: f(float{}); break;
    case DType::f64: f(double{}); break;
    case DType::bf16: f(bf16{}); break;
    case DType::f16: f(f16{}); break;
    case DType::i32: f(int32_t{}); break;
    case DType::i64: f(int64_t{}); break;
    case DType::u8: f(uint8_t{}); break;
  }
}

}  // namespace

void copy_strided(int ndim, const int64_t* shape, const void* src, const int64_t* src_strides, DType src_dtype,
                  void* dst, const int64_t* dst_strides, DType dst_dtype) {
  const int64_t* strides[2] = {dst_strides, src_strides};
  StridedLoop L = make_loop(ndim, shape, 2, strides);
  dispatch_all(dst_dtype, [&](auto d0) {
    using D = decltype(d0);
    dispatch_all(src_dtype, [&](auto s0) {
      using S = decltype(s0);
      D* out = static_cast<D*>(dst);
      const S* in = static_cast<const S*>(src);
      for_each_row(L, [&](const int64_t* off, int64_t n, const int64_t* st) {
        D* o = out + off[0];
        const S* i = in + off[1];
        if constexpr (std::is_same_v<D, S>) {
          if (st[0] == 1 && st[1] == 1) {
            std::memcpy(o, i, static_cast<size_t>(n) * sizeof(D));
            return;
          }
        }
        if (st[0] == 1 && st[1] == 1) {
          for (int64_t j = 0; j < n; ++j) o[j] = convert<D>(i[j]);
        } else {
          for (int64_t j = 0; j < n; ++j) o[j * st[0]] = convert<D>(i[j * st[1]]);
        }
      });
    });
  });
}

void fill(void* dst, int64_t n, DType dtype, double value) {
  dispatch_all(dtype, [&](auto d0) {
    using D = decltype(d0);
    D v = convert<D>(value);
    D* o = static_cast<D*>(dst);
#pragma omp parallel for if (n >= 65536)
    for (int64_t j = 0; j < n; ++j) o[j] = v;
  });
}

}  // namespace siam::kernels::cpu
