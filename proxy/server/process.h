#pragma once

// Process-level setup a proxy needs and libuv does not do.

#include <string>

namespace remora::server {

// Ignores SIGPIPE (a write to a closed peer must be an error code, not death) and raises
// RLIMIT_NOFILE's soft limit to the hard limit. Returns the new soft limit.
long PrepareProcess();

// Workers for `workers: 0`: the cgroup v2 CPU limit (cpu.max "quota period", rounded up), else the
// cgroup v1 cfs quota, else 2. Never the host's core count: a sidecar on a 64-core node must not
// start 64 loops. `cgroup_root` is a parameter for tests.
int DefaultWorkerCount(const std::string& cgroup_root = "/sys/fs/cgroup");

// Parses the contents of a cgroup v2 cpu.max file; 0 when unlimited or malformed.
int WorkersFromCpuMax(const std::string& contents);

// Open descriptors and resident bytes of this process, for /metrics.
long OpenFdCount();
long ResidentBytes();

}  // namespace remora::server
