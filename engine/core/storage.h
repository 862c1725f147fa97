// Reference-counted memory block. CPU blocks are 64-byte aligned; CUDA blocks come from the CUDA backend.
#pragma once
#include <cstddef>
#include <memory>

#include "engine/core/device.h"

namespace siam {

class Storage {
 public:
  Storage(size_t nbytes, Device device);  // allocates; throws siam::Error when the device is unusable
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

  static std::shared_ptr<Storage> make(size_t nbytes, Device device) {
    return std::make_shared<Storage>(nbytes, device);
  }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
};

// Byte copies between any two devices (host<->device when the CUDA backend is built).
void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes);

// 64-byte aligned host allocation (what CPU storages use).
void* cpu_alloc(size_t nbytes);
void cpu_free(void* p);

}  // namespace siam
