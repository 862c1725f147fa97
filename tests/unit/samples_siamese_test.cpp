// Gradient-check samples for the fused siamese losses (run by tests/unit/op_registry_test.cpp, f64).
#include "engine/ops/siamese.h"
#include "tests/unit/op_samples.h"

namespace siam::test {
namespace {

using In = std::vector<Tensor>;

SIAM_OP_SAMPLES("nt_xent") {
  return {
      {"N=3 D=4 t=0.5", {rnd({3, 4}), rnd({3, 4})}, [](const In& v) { return nt_xent(v[0], v[1], 0.5); }},
      {"N=4 D=4 t=0.1", {rnd({4, 4}), rnd({4, 4})}, [](const In& v) { return nt_xent(v[0], v[1], 0.1); }},
      {"N=5 D=3 unnormalized t=0.5", {rnd({5, 3}), rnd({5, 3})},
       [](const In& v) { return nt_xent(v[0], v[1], 0.5, /*normalize=*/false); }},
      {"non-contiguous N=4 D=3 t=0.2", {rnd_noncontig({4, 3}), rnd_noncontig({4, 3})},
       [](const In& v) { return nt_xent(v[0], v[1], 0.2); }},
  };
}

SIAM_OP_SAMPLES("moco_infonce") {
  // keys and queue carry no gradient by design (momentum encoder, queue): not differentiated
  const std::vector<bool> q_only = {false, true, true};
  auto f = [](double t, bool nrm) {
    return [t, nrm](const In& v) { return moco_infonce(v[0], v[1], v[2], t, nrm); };
  };
  return {
      {"N=3 K=5 D=4 t=0.2", {rnd({3, 4}), rnd({3, 4}), rnd({5, 4})}, f(0.2, true), 1e-6, 1e-5, q_only},
      {"N=4 K=7 D=4 t=0.07", {rnd({4, 4}), rnd({4, 4}), rnd({7, 4})}, f(0.07, true), 1e-6, 1e-5, q_only},
      {"N=5 K=3 D=3 unnormalized t=0.5", {rnd({5, 3}), rnd({5, 3}), rnd({3, 3})}, f(0.5, false), 1e-6, 1e-5, q_only},
  };
}

SIAM_OP_SAMPLES("barlow_twins_loss") {
  return {
      {"N=5 D=4 lambda=0.5", {rnd({5, 4}), rnd({5, 4})},
       [](const In& v) { return barlow_twins_loss(v[0], v[1], 0.5, 1e-5); }},
      {"N=6 D=3 lambda=5e-3", {rnd({6, 3}), rnd({6, 3})},
       [](const In& v) { return barlow_twins_loss(v[0], v[1], 5e-3, 1e-5); }},
      {"non-contiguous N=4 D=5 lambda=0.1", {rnd_noncontig({4, 5}), rnd_noncontig({4, 5})},
       [](const In& v) { return barlow_twins_loss(v[0], v[1], 0.1, 1e-3); }},
  };
}

SIAM_OP_SAMPLES("supcon") {
  auto f = [](double t, bool nrm) { return [t, nrm](const In& v) { return supcon(v[0], v[1], t, nrm); }; };
  return {
      // label 9 is alone: that row has no positive and is left out of the mean (its gradient still flows as a
      // negative of the others)
      {"M=7 D=4 3 classes + a singleton t=0.5",
       {rnd({7, 4}), from_vector_i64({0, 1, 0, 2, 1, 9, 2}, {7})},
       f(0.5, true)},
      {"M=6 D=3 one class t=0.2", {rnd({6, 3}), from_vector_i64({4, 4, 4, 4, 4, 4}, {6})}, f(0.2, true)},
      {"M=5 D=4 unnormalized t=0.5", {rnd({5, 4}), from_vector_i64({1, 0, 1, 0, 0}, {5})}, f(0.5, false)},
  };
}

SIAM_OP_SAMPLES("nt_xent_multi") {
  return {
      {"V=3 N=3 D=4 t=0.5", {rnd({3, 4}), rnd({3, 4}), rnd({3, 4})},
       [](const In& v) { return nt_xent_multi({v[0], v[1], v[2]}, 0.5); }},
      {"V=2 N=4 D=3 non-contiguous t=0.2", {rnd_noncontig({4, 3}), rnd_noncontig({4, 3})},
       [](const In& v) { return nt_xent_multi({v[0], v[1]}, 0.2); }},
      {"V=4 N=2 D=3 unnormalized t=0.5", {rnd({2, 3}), rnd({2, 3}), rnd({2, 3}), rnd({2, 3})},
       [](const In& v) { return nt_xent_multi({v[0], v[1], v[2], v[3]}, 0.5, /*normalize=*/false); }},
  };
}

SIAM_OP_SAMPLES("clip_loss") {
  return {
      {"N=4 D=3 t=0.2", {rnd({4, 3}), rnd({4, 3})}, [](const In& v) { return clip_loss(v[0], v[1], 0.2); }},
      {"N=5 D=4 unnormalized t=0.5", {rnd({5, 4}), rnd({5, 4})},
       [](const In& v) { return clip_loss(v[0], v[1], 0.5, /*normalize=*/false); }},
      {"N=1 D=2 t=0.1", {rnd({1, 2}), rnd({1, 2})}, [](const In& v) { return clip_loss(v[0], v[1], 0.1); }},
  };
}

SIAM_OP_SAMPLES("nt_xent_gathered") {
  // gathered columns as independent inputs: the row pass and the column pass are checked separately
  return {
      {"n=2 W=2 offset=2 D=3 t=0.5", {rnd({2, 3}), rnd({2, 3}), rnd({4, 3}), rnd({4, 3})},
       [](const In& v) { return nt_xent_gathered(v[0], v[1], v[2], v[3], 2, 0.5); }},
      {"n=2 W=3 offset=0 D=4 unnormalized t=0.5", {rnd({2, 4}), rnd({2, 4}), rnd({6, 4}), rnd({6, 4})},
       [](const In& v) { return nt_xent_gathered(v[0], v[1], v[2], v[3], 0, 0.5, /*normalize=*/false); }},
      {"n=3 W=1 g=z t=0.2", {rnd({3, 3}), rnd({3, 3})},
       [](const In& v) { return nt_xent_gathered(v[0], v[1], v[0], v[1], 0, 0.2); }},
  };
}

}  // namespace
}  // namespace siam::test
