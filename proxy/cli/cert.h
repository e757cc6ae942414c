#pragma once

// `remora cert`: a development CA and workload certificates (tls/dev_ca.h) written to files a
// sidecar reads. `args` are the words after "cert"; the return value is the exit status.

#include <string>
#include <vector>

namespace remora::cli {

int RunCert(const std::vector<std::string>& args);

}  // namespace remora::cli
