// Where a tensor lives: the CPU or CUDA device N.
#pragma once
#include <string>

namespace siam {

enum class DeviceType : uint8_t { cpu, cuda };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;

  constexpr Device() = default;
  constexpr Device(DeviceType t, int i = 0) : type(t), index(i) {}
  Device(const std::string& spec);  // "cpu", "cuda", "cuda:1"; throws siam::Error on anything else
  Device(const char* spec) : Device(std::string(spec)) {}

  bool is_cpu() const { return type == DeviceType::cpu; }
  bool is_cuda() const { return type == DeviceType::cuda; }
  std::string str() const;
  friend bool operator==(const Device& a, const Device& b) { return a.type == b.type && a.index == b.index; }
};

inline constexpr Device kCPU{DeviceType::cpu, 0};

// True when this build has the CUDA backend and a device is present.
bool cuda_available();
int cuda_device_count();

}  // namespace siam
