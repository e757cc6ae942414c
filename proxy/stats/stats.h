#pragma once

// Counters and gauges, written per worker without locks or shared cache lines, summed on scrape.
//
// A series (family + labels) is registered once on the main thread and gets a slot number. Every
// worker (and the main thread, as writer `main_writer()`) has its own array of slots; a writer adds
// to its own slots with relaxed loads and stores (single writer, so no read-modify-write), and a
// scrape sums the slot across writers. A scrape may therefore see a connection counted in one
// worker's
// `_total` before another worker's gauge moves: sums are exact per writer, not a global snapshot.
//
// Series are never removed (a removed listener's counters stay, as Prometheus expects of counters);
// the number of series is bounded by the config (labels are listener, cluster, result, reason).
// Reloads that keep inventing names could still add up, so the store holds at most kMaxSeries:
// past that, Register() hands out a sink slot that is never rendered, logs, and counts the refusal
// in remora_stats_series_dropped_total rather than stop the process.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace remora::stats {

enum class Type { kCounter, kGauge };

using Labels = std::vector<std::pair<std::string, std::string>>;

class Store;

// One writer's slots. Only its own thread writes; scrapes read.
class Writer {
 public:
  void Add(uint32_t slot, uint64_t n = 1) {
    std::atomic<uint64_t>& a = At(slot);
    a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  // Gauges: deltas may be negative (stored two's complement, summed as signed).
  void AddSigned(uint32_t slot, int64_t delta) { Add(slot, static_cast<uint64_t>(delta)); }
  void Set(uint32_t slot, uint64_t v) { At(slot).store(v, std::memory_order_relaxed); }
  uint64_t Get(uint32_t slot) const { return At(slot).load(std::memory_order_relaxed); }

 private:
  friend class Store;
  static constexpr uint32_t kBlockSlots = 1024;
  static constexpr uint32_t kMaxBlocks = 256;
  std::atomic<uint64_t>& At(uint32_t slot) const {
    return blocks_[slot / kBlockSlots].load(std::memory_order_acquire)[slot % kBlockSlots];
  }
  // Blocks are allocated by the main thread before any slot in them is handed out, and never move.
  mutable std::atomic<std::atomic<uint64_t>*> blocks_[kMaxBlocks] = {};
};

class Store {
 public:
  // Slots in all, the store's own two (the sink and the dropped counter) included.
  static constexpr uint32_t kMaxSeries = Writer::kBlockSlots * Writer::kMaxBlocks;

  // `workers` writers for the worker threads plus one for the main thread.
  explicit Store(int workers);
  ~Store();

  // Main thread only. Same family + labels -> same slot. `help` is kept from the first call.
  // `divisor`: the series counts 1/divisor of the family's unit (microseconds of a
  // `_seconds_total` family: 1000000), and is rendered divided, as a decimal.
  uint32_t Register(Type type, absl::string_view family, absl::string_view help,
                    const Labels& labels = {}, uint64_t divisor = 1);

  Writer& worker(int index) { return *writers_[static_cast<size_t>(index)]; }
  Writer& main_writer() { return *writers_.back(); }
  int workers() const { return static_cast<int>(writers_.size()) - 1; }

  // The sum over writers (counters) or the signed sum (gauges); 0 for a dropped series.
  int64_t Value(uint32_t slot) const;
  // Prometheus text exposition format 0.0.4, families in registration order.
  std::string RenderPrometheus() const;

 private:
  struct Series {
    uint32_t family;
    std::string labels;  // rendered: {a="b",c="d"} or ""
  };
  struct Family {
    std::string name;
    std::string help;
    Type type;
    std::vector<uint32_t> slots;
    uint64_t divisor = 1;
  };
  void EnsureBlock(uint32_t slot);

  static constexpr uint32_t kSinkSlot = 0;
  uint32_t dropped_slot_ = 0;
  bool warned_full_ = false;

  std::vector<std::unique_ptr<Writer>> writers_;
  std::vector<Family> families_;
  absl::flat_hash_map<std::string, uint32_t> family_index_;
  std::vector<Series> series_;
  absl::flat_hash_map<std::string, uint32_t> series_index_;  // name + labels -> slot
  std::vector<std::unique_ptr<std::atomic<uint64_t>[]>> owned_blocks_;
};

// Escapes a label value for the exposition format.
std::string EscapeLabelValue(absl::string_view v);

}  // namespace remora::stats
