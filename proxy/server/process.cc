#include "proxy/server/process.h"

#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "proxy/common/file.h"

namespace remora::server {
namespace {

// The file's contents, or "" if it cannot be read.
std::string ReadOrEmpty(const std::string& path) {
  std::string s;
  return ReadFile(path, &s) ? s : std::string();
}

}  // namespace

long PrepareProcess() {
  signal(SIGPIPE, SIG_IGN);
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    if (rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    return static_cast<long>(rl.rlim_cur);
  }
  return -1;
}

int WorkersFromCpuMax(const std::string& contents) {
  std::vector<absl::string_view> parts =
      absl::StrSplit(absl::StripAsciiWhitespace(contents), ' ', absl::SkipEmpty());
  if (parts.size() != 2 || parts[0] == "max") return 0;
  int64_t quota, period;
  if (!absl::SimpleAtoi(parts[0], &quota) || !absl::SimpleAtoi(parts[1], &period) || quota <= 0 ||
      period <= 0) {
    return 0;
  }
  return static_cast<int>((quota + period - 1) / period);
}

int DefaultWorkerCount(const std::string& cgroup_root) {
  // cgroup v2: the process's own cgroup first, then the root of the mount.
  std::string self = ReadOrEmpty("/proc/self/cgroup");
  for (absl::string_view line : absl::StrSplit(self, '\n')) {
    if (absl::ConsumePrefix(&line, "0::")) {
      int n = WorkersFromCpuMax(ReadOrEmpty(cgroup_root + std::string(line) + "/cpu.max"));
      if (n > 0) return n;
    }
  }
  if (int n = WorkersFromCpuMax(ReadOrEmpty(cgroup_root + "/cpu.max")); n > 0) return n;
  // cgroup v1.
  int64_t quota, period;
  if (absl::SimpleAtoi(
          absl::StripAsciiWhitespace(ReadOrEmpty(cgroup_root + "/cpu/cpu.cfs_quota_us")), &quota) &&
      absl::SimpleAtoi(
          absl::StripAsciiWhitespace(ReadOrEmpty(cgroup_root + "/cpu/cpu.cfs_period_us")),
          &period) &&
      quota > 0 && period > 0) {
    return static_cast<int>((quota + period - 1) / period);
  }
  return 2;
}

long OpenFdCount() {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  long n = 0;
  while (readdir(d) != nullptr) ++n;
  closedir(d);
  return n - 3;  // ".", ".." and the directory's own descriptor
}

long ResidentBytes() {
  std::string statm = ReadOrEmpty("/proc/self/statm");
  std::vector<absl::string_view> parts = absl::StrSplit(statm, ' ');
  long pages = 0;
  if (parts.size() < 2 || !absl::SimpleAtoi(parts[1], &pages)) return -1;
  return pages * sysconf(_SC_PAGESIZE);
}

}  // namespace remora::server
