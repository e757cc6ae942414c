#include "proxy/server/process.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace remora::server {
namespace {

TEST(ProcessTest, WorkersFromCpuMax) {
  EXPECT_EQ(WorkersFromCpuMax("max 100000\n"), 0);
  EXPECT_EQ(WorkersFromCpuMax("200000 100000\n"), 2);
  EXPECT_EQ(WorkersFromCpuMax("150000 100000"), 2);  // 1.5 CPUs round up
  EXPECT_EQ(WorkersFromCpuMax("50000 100000"), 1);
  EXPECT_EQ(WorkersFromCpuMax("garbage"), 0);
  EXPECT_EQ(WorkersFromCpuMax(""), 0);
  EXPECT_EQ(WorkersFromCpuMax("-1 100000"), 0);
}

TEST(ProcessTest, DefaultWorkerCountReadsTheCgroupAndFallsBackToTwo) {
  auto root = std::filesystem::temp_directory_path() / ("remora-cg-" + std::to_string(getpid()));
  std::filesystem::create_directories(root);
  EXPECT_EQ(DefaultWorkerCount(root.string()), 2);  // nothing there: never the host's cores
  std::ofstream(root / "cpu.max") << "400000 100000\n";
  EXPECT_EQ(DefaultWorkerCount(root.string()), 4);
  std::filesystem::remove_all(root);
}

TEST(ProcessTest, PrepareProcessRaisesTheFdLimit) {
  EXPECT_GT(PrepareProcess(), 0);
  EXPECT_GT(OpenFdCount(), 0);
  EXPECT_GT(ResidentBytes(), 0);
}

}  // namespace
}  // namespace remora::server
