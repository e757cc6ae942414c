#include "proxy/stats/stats.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "proxy/common/log.h"

namespace remora::stats {

Store::Store(int workers) {
  for (int i = 0; i < workers + 1; ++i) writers_.push_back(std::make_unique<Writer>());
  // The sink belongs to no family, so it is never rendered.
  EnsureBlock(kSinkSlot);
  series_.push_back(Series{UINT32_MAX, ""});
  dropped_slot_ = Register(Type::kCounter, "remora_stats_series_dropped_total",
                           "Metric series not recorded because the store was full.");
}

Store::~Store() = default;

std::string EscapeLabelValue(absl::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void Store::EnsureBlock(uint32_t slot) {
  uint32_t block = slot / Writer::kBlockSlots;
  for (auto& w : writers_) {
    if (w->blocks_[block].load(std::memory_order_relaxed) != nullptr) continue;
    auto mem = std::make_unique<std::atomic<uint64_t>[]>(Writer::kBlockSlots);
    for (uint32_t i = 0; i < Writer::kBlockSlots; ++i) mem[i].store(0, std::memory_order_relaxed);
    w->blocks_[block].store(mem.get(), std::memory_order_release);
    owned_blocks_.push_back(std::move(mem));
  }
}

uint32_t Store::Register(Type type, absl::string_view family, absl::string_view help,
                         const Labels& labels, uint64_t divisor) {
  std::string rendered;
  if (!labels.empty()) {
    rendered = "{";
    for (size_t i = 0; i < labels.size(); ++i) {
      absl::StrAppend(&rendered, i ? "," : "", labels[i].first, "=\"",
                      EscapeLabelValue(labels[i].second), "\"");
    }
    rendered += "}";
  }
  std::string key = absl::StrCat(family, rendered);
  if (auto it = series_index_.find(key); it != series_index_.end()) return it->second;

  if (series_.size() >= kMaxSeries) {
    if (!warned_full_) {
      warned_full_ = true;
      LOG_ERROR("metrics: %u series stored, the most there can be; %s and later ones not recorded",
                kMaxSeries, key);
    }
    main_writer().Add(dropped_slot_);
    return kSinkSlot;
  }
  uint32_t fam;
  if (auto it = family_index_.find(family); it != family_index_.end()) {
    fam = it->second;
  } else {
    fam = static_cast<uint32_t>(families_.size());
    families_.push_back(Family{std::string(family), std::string(help), type, {}, divisor});
    family_index_.emplace(std::string(family), fam);
  }
  uint32_t slot = static_cast<uint32_t>(series_.size());
  EnsureBlock(slot);
  series_.push_back(Series{fam, std::move(rendered)});
  families_[fam].slots.push_back(slot);
  series_index_.emplace(std::move(key), slot);
  return slot;
}

int64_t Store::Value(uint32_t slot) const {
  if (slot == kSinkSlot) return 0;  // every dropped series at once: meaningless
  uint64_t sum = 0;
  for (const auto& w : writers_) sum += w->Get(slot);
  return static_cast<int64_t>(sum);
}

std::string Store::RenderPrometheus() const {
  std::string out;
  out.reserve(64 * series_.size() + 256);
  for (const Family& f : families_) {
    absl::StrAppend(&out, "# HELP ", f.name, " ", f.help, "\n# TYPE ", f.name, " ",
                    f.type == Type::kCounter ? "counter" : "gauge", "\n");
    for (uint32_t slot : f.slots) {
      int64_t v = Value(slot);
      if (f.divisor != 1) {
        absl::StrAppend(
            &out, f.name, series_[slot].labels, " ",
            absl::StrFormat("%.6f", static_cast<double>(v) / static_cast<double>(f.divisor)), "\n");
      } else if (f.type == Type::kCounter) {
        absl::StrAppend(&out, f.name, series_[slot].labels, " ", static_cast<uint64_t>(v), "\n");
      } else {
        absl::StrAppend(&out, f.name, series_[slot].labels, " ", v, "\n");
      }
    }
  }
  return out;
}

}  // namespace remora::stats
