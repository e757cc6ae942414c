#include "proxy/server/worker.h"

#include "proxy/network/address.h"
#include "proxy/server/protocol_sniffer.h"

#include <unistd.h>

#include <algorithm>

#include "proxy/buffer/buffer.h"
#include "proxy/common/block_cache.h"
#include "proxy/common/log.h"
#include "proxy/event/tcp_connection.h"
#include "proxy/http/connection_manager.h"
#include "proxy/server/tls_setup.h"
#include "proxy/tcp/tcp_proxy.h"

namespace remora::server {

Worker::Worker(int index, stats::Store& stats)
    : ctx_{dispatcher_, stats.worker(index), connections_, index} {
  ctx_.local_resource_pressure = [this] {
    for (auto& slot : listeners_) slot->listener->PauseForPressure();
  };
}

Worker::~Worker() { Stop(); }

void Worker::Start() {
  thread_ = std::thread([this] {
    timeouts_ = std::make_unique<event::TimeoutLists>(dispatcher_);
    ctx_.timeouts = timeouts_.get();
    http1_pool_ = std::make_unique<upstream::Http1Pool>(ctx_);
    ctx_.http1_pool = http1_pool_.get();
    http2_pool_ = std::make_unique<upstream::Http2Pool>(ctx_);
    ctx_.http2_pool = http2_pool_.get();
    ctx_.original_dst = &original_dst_;
    // Let the slab pool give back what a past burst left behind, a bit at a time.
    trim_timer_ = dispatcher_.CreateTimer([this] {
      buffer::SlabPool::ForThisThread().Trim();
      mem::TrimThisThread();
      trim_timer_->Enable(kSlabTrimInterval);
    });
    trim_timer_->Enable(kSlabTrimInterval);
    dispatcher_.Run();
    // The loop has stopped: tear down on this thread, which owns every handle.
    trim_timer_.reset();
    listeners_.clear();
    connections_.ForEach([](ActiveConnection* c) { c->CloseNow(); });
    http1_pool_.reset();
    ctx_.http1_pool = nullptr;
    http2_pool_.reset();
    ctx_.http2_pool = nullptr;
    snapshot_.reset();
    // After every connection: their streams' entries unlink from the lists as they go.
    timeouts_.reset();
    ctx_.timeouts = nullptr;
    // Finish every close here, while this thread's slab pool still exists.
    dispatcher_.Quiesce();
  });
}

void Worker::Stop() {
  if (!thread_.joinable()) return;
  dispatcher_.Exit();
  thread_.join();
}

void Worker::ApplySnapshot(std::shared_ptr<const Snapshot> snapshot,
                           std::vector<ListenerSocket> added, std::vector<std::string> removed) {
  dispatcher_.Post([this, snapshot = std::move(snapshot), added = std::move(added),
                    removed = std::move(removed)]() mutable {
    snapshot_ = std::move(snapshot);
    for (const std::string& name : removed) {
      std::erase_if(listeners_, [&](const auto& slot) { return slot->name == name; });
    }
    for (ListenerSocket& s : added) {
      if (draining_) {
        ::close(s.fd);
        continue;
      }
      auto slot = std::make_unique<ListenerSlot>();
      slot->name = s.listener;
      ListenerSlot* raw = slot.get();
      slot->listener = std::make_unique<event::TcpListener>(
          dispatcher_, s.fd, [this, raw](int fd) { OnAccept(raw, fd); },
          [this, raw](int) {
            if (raw->runtime != nullptr) ctx_.stats.Add(raw->runtime->stats.accept_errors);
          });
      listeners_.push_back(std::move(slot));
    }
    for (auto& slot : listeners_) slot->runtime = snapshot_->FindListener(slot->name);
  });
}

void Worker::OnAccept(ListenerSlot* slot, int fd) {
  const ListenerRuntime* rt = slot->runtime;
  if (rt == nullptr) {
    ::close(fd);
    return;
  }
  auto conn = event::TcpConnection::Adopt(dispatcher_, fd);
  if (conn == nullptr) {
    ctx_.stats.Add(rt->stats.accept_errors);
    return;
  }
  // A transparent listener's TLS is the sniffer's to put on, once the first bytes say it is TLS.
  if (rt->tls != nullptr && !config::IsTransparent(rt->config->kind)) {
    AttachTls(ctx_, *conn, rt->tls, rt->tls_stats, "listener " + rt->config->name, {}, {},
              rt->config->tls.handshake_timeout);
  }
  if (rt->config->kind == config::ListenerKind::kHttp) {
    http::HttpConnectionManager::Start(ctx_, snapshot_, *rt, std::move(conn));
  } else if (config::IsTransparent(rt->config->kind)) {
    network::OriginalDestination dst;
    if (!network::GetOriginalDestination(fd, &dst)) {
      ctx_.stats.Add(rt->stats.accept_errors);  // the socket went away under us
      return;
    }
    ProtocolSniffer::Start(ctx_, snapshot_, *rt, std::move(conn), dst);
  } else {
    tcp::TcpProxySession::Start(ctx_, snapshot_, *rt, std::move(conn));
  }
}

void Worker::StartDrain() {
  dispatcher_.Post([this] {
    draining_ = true;
    ctx_.draining = true;
    listeners_.clear();
    listeners_closed_.store(true, std::memory_order_release);
    connections_.ForEach([](ActiveConnection* c) { c->StartDrain(); });
    if (http1_pool_ != nullptr) http1_pool_->CloseIdle();
    if (http2_pool_ != nullptr) http2_pool_->CloseIdle();
  });
}

void Worker::CloseAll() {
  dispatcher_.Post([this] { connections_.ForEach([](ActiveConnection* c) { c->CloseNow(); }); });
}

}  // namespace remora::server
