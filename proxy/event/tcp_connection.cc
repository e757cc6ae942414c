#include "proxy/event/tcp_connection.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <vector>

#include "proxy/common/log.h"
#include "proxy/event/uv_dispatcher.h"
#include "proxy/network/address.h"

namespace remora::event {

namespace {

// Binds a connecting socket to `source` (port 0) with IP_BIND_ADDRESS_NO_PORT, so the port is
// chosen at connect() for the whole 4-tuple. A plain bind() would reserve a port per source
// address, and every connection from one source (127.0.0.6, the inbound delivery) would draw
// from the same ~28k ports whatever its destination. libuv's uv_tcp_bind cannot set the option
// between socket() and bind(), so the socket is made here and handed over.
int BindSource(uv_tcp_t* tcp, const sockaddr* source) {
  int fd = socket(source->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  // A kernel without it (< 4.2) still binds, only less frugally.
  (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
  socklen_t len = source->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (bind(fd, source, len) != 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  int rc = uv_tcp_open(tcp, fd);
  if (rc != 0) close(fd);
  return rc;
}

}  // namespace

// libuv state that may outlive the TcpConnection: freed only in the handle's close callback.
struct TcpHandleBlock {
  union {
    uv_tcp_t tcp;
    uv_pipe_t pipe;  // Unix-domain sockets (the admin socket)
  };
  bool is_pipe = false;
  uv_write_t write_req;
  uv_connect_t connect_req;
  uv_shutdown_t shutdown_req;
  TcpConnection* owner = nullptr;
  buffer::Buffer inflight;  // bytes handed to uv_write, kept alive until its callback
  bool write_in_flight = false;

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp); }
  uv_handle_t* handle() { return reinterpret_cast<uv_handle_t*>(&tcp); }
  TcpHandleBlock() {}
  ~TcpHandleBlock() {}

  static void OnAlloc(uv_handle_t*, size_t, uv_buf_t* buf) {
    auto [mem, len] = buffer::ReadArena::ForThisThread().Alloc();
    buf->base = mem;
    buf->len = len;
  }
  static void OnRead(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
    auto* block = static_cast<TcpHandleBlock*>(s->data);
    if (nread > 0) {
      // Claim the bytes before anything else can use the arena.
      buffer::Slice slice = buffer::ReadArena::ForThisThread().Commit(static_cast<size_t>(nread));
      if (block->owner != nullptr) block->owner->OnReadData(std::move(slice));
    } else if (nread < 0 && block->owner != nullptr) {
      block->owner->OnReadEnd(static_cast<int>(nread));
    }
  }
  static void OnWrite(uv_write_t* req, int status) {
    auto* block = static_cast<TcpHandleBlock*>(req->data);
    size_t bytes = block->inflight.length();
    block->inflight.Clear();
    block->write_in_flight = false;
    if (block->owner != nullptr) block->owner->OnWriteDone(status, bytes);
  }
  static void OnConnect(uv_connect_t* req, int status) {
    auto* block = static_cast<TcpHandleBlock*>(req->data);
    if (block->owner != nullptr) block->owner->OnConnectDone(status);
  }
  static void OnShutdown(uv_shutdown_t* req, int status) {
    auto* block = static_cast<TcpHandleBlock*>(req->data);
    if (block->owner != nullptr && status == 0) block->owner->OnShutdownDone();
  }
  static void OnClosed(uv_handle_t* h) { delete static_cast<TcpHandleBlock*>(h->data); }
};

TcpConnection::TcpConnection(UvDispatcher& dispatcher, bool pipe) : dispatcher_(dispatcher) {
  block_ = new TcpHandleBlock;
  block_->owner = this;
  block_->is_pipe = pipe;
  if (pipe) {
    uv_pipe_init(dispatcher.loop(), &block_->pipe, 0);
  } else {
    uv_tcp_init(dispatcher.loop(), &block_->tcp);
  }
  block_->handle()->data = block_;
  block_->write_req.data = block_;
  block_->connect_req.data = block_;
  block_->shutdown_req.data = block_;
  event_timer_ = dispatcher.CreateTimer([this] {
    if (deadline_armed_ && handshaking_) handshake_timed_out_ = true;
    FailAndClose(deferred_event_);
  });
}

TcpConnection::~TcpConnection() { CloseHandle(false); }

std::unique_ptr<TcpConnection> TcpConnection::Adopt(UvDispatcher& dispatcher, int fd) {
  sockaddr_storage local;
  socklen_t local_len = sizeof(local);
  bool pipe = ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) == 0 &&
              local.ss_family == AF_UNIX;
  std::unique_ptr<TcpConnection> conn(new TcpConnection(dispatcher, pipe));
  int rc = pipe ? uv_pipe_open(&conn->block_->pipe, fd) : uv_tcp_open(&conn->block_->tcp, fd);
  if (rc != 0) {
    LOG_WARN("adopting accepted socket failed: %s", uv_strerror(rc));
    ::close(fd);
    return nullptr;
  }
  conn->is_unix_ = pipe;
  if (pipe) {
    conn->peer_ = "unix";
    return conn;
  }
  uv_tcp_nodelay(&conn->block_->tcp, 1);
  sockaddr_storage ss;
  int len = sizeof(ss);
  if (uv_tcp_getpeername(&conn->block_->tcp, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    conn->peer_ = network::FormatSockaddr(reinterpret_cast<sockaddr*>(&ss));
  }
  return conn;
}

std::unique_ptr<TcpConnection> TcpConnection::Connect(UvDispatcher& dispatcher,
                                                      const sockaddr* address,
                                                      absl::Duration timeout,
                                                      const sockaddr* source) {
  std::unique_ptr<TcpConnection> conn(new TcpConnection(dispatcher, false));
  TcpConnection* self = conn.get();
  self->peer_ = network::FormatSockaddr(address);
  self->connecting_ = true;
  self->is_client_ = true;
  int rc = source != nullptr ? BindSource(&self->block_->tcp, source) : 0;
  if (rc == 0)
    rc = uv_tcp_connect(&self->block_->connect_req, &self->block_->tcp, address,
                        &TcpHandleBlock::OnConnect);
  if (rc != 0) {
    LOG_DEBUG("connect to %s failed: %s", self->peer_, uv_strerror(rc));
    // libuv's error codes are negated errno values on Unix.
    self->DeferEvent(network::IsLocalResourceShortage(-rc) ? Event::kConnectLocalError
                                                           : Event::kConnectFailed);
    return conn;
  }
  self->deferred_event_ = Event::kConnectTimeout;
  self->deadline_armed_ = true;
  self->event_timer_->Enable(timeout);
  return conn;
}

void TcpConnection::OnConnectDone(int status) {
  connecting_ = false;
  if (status != 0) {
    event_timer_->Disable();
    deadline_armed_ = false;
    LOG_DEBUG("connect to %s failed: %s", peer_, uv_strerror(status));
    FailAndClose(Event::kConnectFailed);
    return;
  }
  uv_tcp_nodelay(&block_->tcp, 1);
  if (transport_ != nullptr) {
    // Connected is reported once the handshake is done; the connect timeout still runs.
    Transport::Status st = transport_->Start(pending_);
    if (st == Transport::Status::kError) {
      FailAndClose(Event::kConnectFailed);
      return;
    }
    Flush(/*try_now=*/true);
    ApplyReading();
    return;
  }
  event_timer_->Disable();
  deadline_armed_ = false;
  // Bytes written while connecting go through a write request even if the kernel would take them
  // whole: the caller may be past the high watermark or waiting for OnFlushed, and only the
  // request's completion tells it.
  Flush(/*try_now=*/false);
  if (want_read_) ReadEnable(true);
  if (callbacks_ != nullptr) callbacks_->OnEvent(Event::kConnected);
}

void TcpConnection::ReadEnable(bool enable) {
  want_read_ = enable;  // applied once a pending connect completes
  ApplyReading();
}

void TcpConnection::ApplyReading() {
  bool enable = want_read_ || handshaking_;
  if (closed() || eof_ || connecting_ || enable == reading_) return;
  if (enable) {
    uv_read_start(block_->stream(), &TcpHandleBlock::OnAlloc, &TcpHandleBlock::OnRead);
  } else {
    uv_read_stop(block_->stream());
  }
  reading_ = enable;
}

void TcpConnection::SetTransport(std::unique_ptr<Transport> transport,
                                 absl::Duration handshake_timeout) {
  transport_ = std::move(transport);
  handshaking_ = true;
  if (is_client_) return;  // started by OnConnectDone, timed by the connect timeout
  if (handshake_timeout > absl::ZeroDuration()) {
    deferred_event_ = Event::kRemoteReset;
    deadline_armed_ = true;
    event_timer_->Enable(handshake_timeout);
  }
  // Bytes a protocol sniffer read are the start of the handshake.
  wire_in_.Move(read_buffer_);
  if (!wire_in_.empty()) {
    // On a later turn, as every callback: the owner is still setting itself up.
    transport_timer_ = dispatcher_.CreateTimer([this] {
      if (!closed()) RunTransport();
    });
    transport_timer_->Enable(absl::ZeroDuration());
  }
  ApplyReading();
}

void TcpConnection::RedeliverBuffered() {
  // Owners free their connections deferred (never inside a callback), so this outlives OnRead;
  // a connection its owner closed there gets no FIN.
  if (!read_buffer_.empty() && callbacks_ != nullptr) callbacks_->OnRead(read_buffer_);
  if (eof_ && !closed() && callbacks_ != nullptr) callbacks_->OnEndOfStream();
}

void TcpConnection::OnReadData(buffer::Slice slice) {
  bytes_read_ += slice.size();
  if (transport_ != nullptr) {
    wire_in_.Append(std::move(slice));
    RunTransport();
    return;
  }
  read_buffer_.Append(std::move(slice));
  if (callbacks_ != nullptr) callbacks_->OnRead(read_buffer_);  // may destroy this
}

void TcpConnection::RunTransport() {
  Transport::Status st = transport_->Read(wire_in_, read_buffer_, pending_);
  // The handshake may complete in a call that also reports the peer's close or an error: its
  // completion is read from the transport, not from the status.
  bool became_ready = handshaking_ && transport_->ready();
  // Writes held through the handshake go out through a write request, whose completion tells
  // an owner waiting on the watermarks or OnFlushed (as after a plain connect).
  if (!pending_.empty()) Flush(/*try_now=*/!became_ready);
  // Owners free their connections deferred, so `this` outlives each callback below; a callback
  // may close it, which every step checks.
  if (became_ready) {
    handshaking_ = false;
    if (deadline_armed_) {  // else the timer carries a deferred failure, which must still fire
      deadline_armed_ = false;
      event_timer_->Disable();
    }
    ApplyReading();
    if (shutdown_wanted_) Flush();
    if (st == Transport::Status::kError) {
      // A client's owner never heard it was connected.
      FailAndClose(is_client_ ? Event::kConnectFailed : Event::kRemoteReset);
      return;
    }
    if (callbacks_ != nullptr) {
      if (is_client_) {
        callbacks_->OnEvent(Event::kConnected);
      } else {
        callbacks_->OnHandshakeDone();
      }
    }
    if (closed()) return;
  }
  if (st == Transport::Status::kError) {
    FailAndClose(Event::kRemoteReset);  // during a client's handshake: kConnectFailed
    return;
  }
  if (!read_buffer_.empty() && callbacks_ != nullptr) callbacks_->OnRead(read_buffer_);
  if (st == Transport::Status::kClosed && !closed() && !eof_) OnReadEnd(UV_EOF);
}

void TcpConnection::OnReadEnd(int status) {
  if (status == UV_EOF && handshaking_) {
    FailAndClose(Event::kRemoteReset);  // the peer left mid-handshake (see FailAndClose)
    return;
  }
  if (status == UV_EOF) {
    eof_ = true;
    reading_ = false;
    uv_read_stop(block_->stream());
    if (callbacks_ != nullptr) callbacks_->OnEndOfStream();  // may destroy this
    return;
  }
  LOG_DEBUG("read from %s failed: %s", peer_, uv_strerror(status));
  FailAndClose(Event::kRemoteReset);
}

void TcpConnection::Write(buffer::Buffer& data) {
  if (closed() || shutdown_wanted_ || write_failed_) {
    data.Clear();
    return;
  }
  if (transport_ != nullptr) {
    // Encrypted into fresh slices (or held until the handshake completes).
    if (transport_->Write(data, pending_) == Transport::Status::kError) {
      write_failed_ = true;
      pending_.Clear();
      DeferEvent(Event::kRemoteReset);
      return;
    }
  } else if (pending_.empty()) {
    // Bytes joining a backlog will wait: keep them compact (see Buffer::MoveCompacting). An
    // empty backlog, the usual case, takes the slices as they are.
    pending_.Move(data);
  } else {
    pending_.MoveCompacting(data);
  }
  if (!connecting_) Flush();
  if (!above_high_ && write_backlog() > high_watermark_) {
    above_high_ = true;
    if (callbacks_ != nullptr) callbacks_->OnWriteHighWatermark();
  }
}

void TcpConnection::Flush(bool try_now) {
  if (closed() || block_->write_in_flight || write_failed_) return;
  constexpr size_t kMaxIovecs = 256;
  static_assert(sizeof(uv_buf_t) == sizeof(iovec), "uv_buf_t is iovec-compatible on unix");
  iovec iov[kMaxIovecs];
  if (try_now && !pending_.empty()) {
    // Hand the kernel what it takes right now. Bytes that leave while they are still in cache
    // cost far less than a backlog gathered over a whole loop turn, and a write taken whole needs
    // no request, no callback, and never stops the reader through the watermarks.
    size_t n = pending_.FillIovecs(iov, kMaxIovecs);
    int rc =
        uv_try_write(block_->stream(), reinterpret_cast<uv_buf_t*>(iov), static_cast<unsigned>(n));
    if (rc > 0) {
      pending_.Drain(static_cast<size_t>(rc));
      bytes_written_ += static_cast<uint64_t>(rc);
    } else if (rc != UV_EAGAIN) {
      write_failed_ = true;
      pending_.Clear();
      LOG_DEBUG("write to %s failed: %s", peer_, uv_strerror(rc));
      DeferEvent(Event::kRemoteReset);
      return;
    }
  }
  if (pending_.empty()) {
    if (shutdown_wanted_ && !shutdown_sent_ && transport_ != nullptr) {
      // The session ends first (close_notify), once the handshake has let held writes out.
      if (handshaking_) return;
      transport_->Shutdown(pending_);
      if (!pending_.empty()) return Flush(try_now);
    }
    if (shutdown_wanted_ && !shutdown_sent_) {
      shutdown_sent_ = true;
      uv_shutdown(&block_->shutdown_req, block_->stream(), &TcpHandleBlock::OnShutdown);
    }
    return;
  }
  // The kernel is full, or we just connected: one gathered write request of what is left (bounded
  // by the iovec count); the rest follows when it completes. The slices move to the handle block
  // so they outlive this object if it is destroyed.
  pending_.MoveSlices(block_->inflight, kMaxIovecs);
  size_t n = block_->inflight.FillIovecs(iov, kMaxIovecs);
  block_->write_in_flight = true;
  int rc = uv_write(&block_->write_req, block_->stream(), reinterpret_cast<uv_buf_t*>(iov),
                    static_cast<unsigned>(n), &TcpHandleBlock::OnWrite);
  if (rc != 0) {
    write_failed_ = true;
    block_->write_in_flight = false;
    block_->inflight.Clear();
    LOG_DEBUG("write to %s failed: %s", peer_, uv_strerror(rc));
    DeferEvent(Event::kRemoteReset);
  }
}

void TcpConnection::DeferEvent(Event event) {
  // Reported on a later turn: callbacks never run inline from the call that caused them.
  deadline_armed_ = false;  // the timer now reports this instead
  deferred_event_ = event;
  event_timer_->Enable(absl::ZeroDuration());
}

void TcpConnection::OnWriteDone(int status, size_t bytes) {
  if (status != 0) {
    LOG_DEBUG("write to %s failed: %s", peer_, uv_strerror(status));
    FailAndClose(Event::kRemoteReset);
    return;
  }
  bytes_written_ += bytes;
  Flush();
  if (write_failed_) return;  // not drained: failed, and kRemoteReset follows
  // Each callback below may destroy this: check closed() through a flag the callback cannot free.
  if (above_high_ && write_backlog() < low_watermark_) {
    above_high_ = false;
    if (callbacks_ != nullptr) {
      bool flushed = write_backlog() == 0;
      Callbacks* cb = callbacks_;
      cb->OnWriteLowWatermark();
      // OnWriteLowWatermark only re-enables reading on the peer; it does not destroy us.
      if (flushed && callbacks_ != nullptr) callbacks_->OnFlushed();
      return;
    }
  }
  if (write_backlog() == 0 && callbacks_ != nullptr) callbacks_->OnFlushed();
}

void TcpConnection::OnShutdownDone() {}

void TcpConnection::Shutdown() {
  if (closed() || shutdown_wanted_) return;
  shutdown_wanted_ = true;
  if (!connecting_) Flush();
}

size_t TcpConnection::write_backlog() const {
  return pending_.length() + (block_ != nullptr ? block_->inflight.length() : 0) +
         (transport_ != nullptr ? transport_->buffered() : 0);
}

void TcpConnection::Close(CloseMode mode) { CloseHandle(mode == CloseMode::kReset); }

void TcpConnection::FailAndClose(Event event) {
  if (handshaking_ && transport_ != nullptr) {
    // The handshake never completed: a client's owner was never connected, so whatever ended it
    // is a failed connect; the transport says why (for its metrics and log line).
    handshaking_ = false;
    if (is_client_ && event == Event::kRemoteReset) event = Event::kConnectFailed;
    transport_->OnHandshakeAbandoned(handshake_timed_out_ || event == Event::kConnectTimeout);
  }
  Callbacks* cb = callbacks_;
  CloseHandle(false);
  if (cb != nullptr) cb->OnEvent(event);  // may destroy this
}

void TcpConnection::CloseHandle(bool reset) {
  if (block_ == nullptr) return;
  event_timer_->Disable();
  if (transport_timer_ != nullptr) transport_timer_->Disable();
  pending_.Clear();
  read_buffer_.Clear();
  wire_in_.Clear();
  block_->owner = nullptr;
  TcpHandleBlock* block = block_;
  block_ = nullptr;
  reading_ = false;
  if (reset && !block->is_pipe && uv_tcp_close_reset(&block->tcp, &TcpHandleBlock::OnClosed) == 0)
    return;
  uv_close(block->handle(), &TcpHandleBlock::OnClosed);
}

}  // namespace remora::event
