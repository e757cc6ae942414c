#pragma once

// A TCP connection on a UvDispatcher's loop: zero-copy reads into slab slices, writes handed to the
// kernel at once when it takes them, else queued behind one write request in flight (everything
// queued behind it goes out in the next single writev), write watermarks for backpressure,
// half-close, and a connect timeout for client connections.
//
// Ownership: the creator owns the TcpConnection. libuv state that must outlive it (the handle, the
// in-flight write and its bytes) lives in a separately allocated block freed in the handle's close
// callback, so destroying a connection at any moment is safe. After Close() or destruction no
// callback runs. Callbacks run on the loop thread, never inline from the call that caused them,
// except OnWriteHighWatermark, which fires from Write() (the caller must be ready for it). A
// callback may destroy the connection, except OnWriteLowWatermark (which is followed by OnFlushed
// when the backlog is empty).

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "proxy/buffer/buffer.h"
#include "proxy/event/dispatcher.h"
#include "proxy/event/transport.h"

namespace remora::event {

class UvDispatcher;
struct TcpHandleBlock;

class TcpConnection {
 public:
  enum class Event {
    kConnected,          // client connections: the connect succeeded
    kConnectFailed,      // refused, unreachable, ...
    kConnectTimeout,     // no answer within the connect timeout
    kConnectLocalError,  // this process could not start the connect (EMFILE, no ephemeral port,
                         // ...): not the endpoint's fault
    kRemoteReset,  // read or write error (ECONNRESET, EPIPE, ...); the connection is now closed
  };

  class Callbacks {
   public:
    virtual ~Callbacks() = default;
    // Bytes were appended to `data` (the connection's read buffer). Take what you can (Move or
    // Drain); what is left stays for the next call.
    virtual void OnRead(buffer::Buffer& data) = 0;
    // The peer shut down its write side (FIN). Reading has stopped; writing still works.
    virtual void OnEndOfStream() = 0;
    // See Event. After every event but kConnected the connection is closed.
    virtual void OnEvent(Event event) = 0;
    // Server connections with a transport: its handshake has completed (a client's completion
    // is kConnected). Plaintext decrypted in the same read follows as OnRead.
    virtual void OnHandshakeDone() {}
    // The write backlog went above the high watermark / fell below the low one.
    virtual void OnWriteHighWatermark() {}
    virtual void OnWriteLowWatermark() {}
    // A backlog that had to wait has been handed to the kernel whole (the backlog is empty). A
    // Write() the kernel takes at once fires nothing: write_backlog() is 0 when it returns.
    virtual void OnFlushed() {}
  };

  // How Close() treats unsent bytes. To close after sending everything, close once
  // write_backlog() is 0: right after Write() if it is, else on OnFlushed().
  enum class CloseMode {
    kNow,    // drop what is queued and close (FIN)
    kReset,  // drop what is queued and send RST
  };

  // Adopts an accepted socket fd (non-blocking; TCP or Unix-domain). Null if libuv refuses it (fd
  // is then closed).
  static std::unique_ptr<TcpConnection> Adopt(UvDispatcher& dispatcher, int fd);
  // Starts a connect; the outcome arrives as Event::kConnected / kConnectFailed / kConnectTimeout /
  // kConnectLocalError, always on a later loop turn.
  // With `source`, the socket is bound to it first (port 0 in it: any).
  static std::unique_ptr<TcpConnection> Connect(UvDispatcher& dispatcher, const sockaddr* address,
                                                absl::Duration timeout,
                                                const sockaddr* source = nullptr);

  ~TcpConnection();
  TcpConnection(const TcpConnection&) = delete;
  TcpConnection& operator=(const TcpConnection&) = delete;

  void SetCallbacks(Callbacks* callbacks) { callbacks_ = callbacks; }

  // Puts `transport` (TLS) under the connection: a client's right after Connect(), a server's
  // right after Adopt() or once a protocol sniffer has read the first bytes (bytes already in the
  // read buffer go to the transport). The connection reads through the handshake whatever
  // ReadEnable says. A client reports kConnected once its handshake is done, within the connect
  // timeout, and kConnectFailed if it fails. A server connection whose handshake fails, or has
  // not completed within `handshake_timeout` (0: no limit), is closed with kRemoteReset (see
  // handshake_timed_out()). Reads and writes carry plaintext; bytes_read/written count the wire.
  void SetTransport(std::unique_ptr<Transport> transport, absl::Duration handshake_timeout);
  Transport* transport() const { return transport_.get(); }
  // The connection was closed because its handshake did not complete in time.
  bool handshake_timed_out() const { return handshake_timed_out_; }
  // Above `high` bytes queued OnWriteHighWatermark fires; below `low` (after draining) the low one.
  void SetWriteWatermarks(size_t low, size_t high) {
    low_watermark_ = low;
    high_watermark_ = high;
  }

  // Starts or stops reading. Reading starts disabled; a stop takes effect before the next read.
  void ReadEnable(bool enable);
  // Hands bytes already read but left in the read buffer (by callbacks since replaced: a
  // protocol sniffer's) to the current callbacks, then the peer's FIN if it came meanwhile.
  void RedeliverBuffered();
  bool reading() const { return reading_; }
  // Sends all of `data` (moved out): what the kernel takes now goes at once, the rest is queued.
  void Write(buffer::Buffer& data);
  // Half-closes the write side once everything queued has been sent.
  void Shutdown();
  void Close(CloseMode mode);
  bool closed() const { return block_ == nullptr; }

  size_t write_backlog() const;
  uint64_t bytes_read() const { return bytes_read_; }
  uint64_t bytes_written() const { return bytes_written_; }
  const std::string& peer() const { return peer_; }
  // Accepted on a Unix-domain socket (whose file permissions authenticate the peer).
  bool is_unix() const { return is_unix_; }

 private:
  friend struct TcpHandleBlock;
  TcpConnection(UvDispatcher& dispatcher, bool pipe);
  // Sends what is pending. With `try_now` the kernel gets it at once if it takes it; otherwise (or
  // for what it refuses) one write request is started, whose completion runs the watermark and
  // OnFlushed notifications.
  void Flush(bool try_now = true);
  void OnReadData(buffer::Slice slice);
  // Feeds wire_in_ to the transport, sends what it produced, and tells the callbacks.
  void RunTransport();
  // Reads while the owner wants to, or while a handshake is in progress.
  void ApplyReading();
  void OnReadEnd(int status);
  void OnWriteDone(int status, size_t bytes);
  void OnConnectDone(int status);
  void OnShutdownDone();
  void CloseHandle(bool reset);
  void FailAndClose(Event event);
  void DeferEvent(Event event);

  UvDispatcher& dispatcher_;
  TcpHandleBlock* block_ = nullptr;
  Callbacks* callbacks_ = nullptr;
  buffer::Buffer read_buffer_;
  buffer::Buffer pending_;  // queued, not yet handed to the kernel
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<Timer> transport_timer_;  // runs bytes read before SetTransport
  buffer::Buffer wire_in_;                  // read from the socket, not yet taken by the transport
  std::unique_ptr<Timer> event_timer_;      // connect timeout, or a deferred failure report
  Event deferred_event_ = Event::kConnectFailed;
  std::string peer_;
  size_t low_watermark_ = 128 * 1024;
  size_t high_watermark_ = 256 * 1024;
  uint64_t bytes_read_ = 0;
  uint64_t bytes_written_ = 0;
  bool connecting_ = false;
  bool is_unix_ = false;
  bool reading_ = false;
  bool want_read_ = false;
  bool eof_ = false;
  bool above_high_ = false;
  bool write_failed_ = false;  // a write failed; its kRemoteReset is on its way
  bool shutdown_wanted_ = false;
  bool shutdown_sent_ = false;
  bool is_client_ = false;
  bool handshaking_ = false;  // a transport's handshake is in progress
  bool handshake_timed_out_ = false;
  // event_timer_ holds the connect or handshake deadline (not a deferred failure report).
  bool deadline_armed_ = false;
};

}  // namespace remora::event
