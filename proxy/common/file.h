#pragma once

// Reading a small file whole (certificates, keys, /proc and cgroup files).

#include <string>

namespace remora {

// The whole of `path` into `out`; false if it cannot be opened or read.
bool ReadFile(const std::string& path, std::string* out);

}  // namespace remora
