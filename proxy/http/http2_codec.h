#pragma once

// HTTP/2 codecs on nghttp2, behind the same decoder/encoder seam as HTTP/1 (codec.h).
//
// Bytes in: Dispatch() feeds nghttp2_session_mem_recv slice by slice; DATA payloads reach the
// decoder as sub-slices of the read slabs (no copy), delivered per frame with its END_STREAM.
// Bytes out: Send() runs nghttp2_session_send into the owner's output buffer; DATA goes with
// NGHTTP2_DATA_FLAG_NO_COPY, its payload moved as slices from the stream's queue. Send() stops
// (NGHTTP2_ERR_WOULDBLOCK) once the output holds `out_limit` bytes: the owner calls it again as
// the socket drains, and streams' queues back up behind the peer's window or the socket.
//
// Flow control follows backpressure: the connection window is returned as soon as bytes are
// handed to a decoder; a stream's window only while the stream is not read-disabled, so a stream
// whose destination is full stops its peer after one window, without stalling the others.
//
// Malformed messages (nghttp2's HTTP messaging checks: connection-specific fields, bad
// pseudo-headers, content-length mismatch) reset their stream with PROTOCOL_ERROR; connection
// errors (bad preface, frame errors, floods, too many resets) queue a GOAWAY and Dispatch returns
// false: the owner flushes and closes.
//
// Streams belong to the codec: they exist from their first HEADERS until closed, and after
// Callbacks::OnStreamClosed they are deleted (deferred, on the dispatcher), so an owner drops its
// pointer in that callback. Decoder and callback calls come from inside Dispatch() and Send();
// encoder calls only queue frames (they may be made from inside those callbacks).

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "proxy/buffer/buffer.h"
#include "proxy/common/block_cache.h"
#include "proxy/event/dispatcher.h"
#include "proxy/http/codec.h"

namespace remora::http {

struct Http2Settings {
  uint32_t max_concurrent_streams = 100;
  // What a peer may send on one stream before we consume it; bounds a stalled stream's memory.
  uint32_t initial_stream_window = 256 * 1024;
  uint32_t connection_window = 1024 * 1024;
  HeaderLimits header_limits;
  // Rapid reset (CVE-2023-44487): stream resets by the peer beyond this token bucket -> GOAWAY.
  uint32_t reset_burst = 1000;
  uint32_t reset_rate = 33;
  // A stream's queued body above this tells its owner to stop producing (below half: resume).
  uint32_t stream_buffer_limit = 256 * 1024;
};

class Http2Codec {
 private:
  struct Glue;  // the nghttp2 callbacks

 public:
  class Stream : public event::DeferredDeletable, public mem::Cached {
   public:
    int32_t id() const { return id_; }
    // Stop or resume returning window to the peer for this stream.
    void ReadDisable(bool disabled);
    // Body bytes queued for the peer (waiting for its window or the socket).
    size_t queued_bytes() const { return out_body_.length(); }
    // RST_STREAM with `error_code`; the stream closes when the frame is sent.
    void Reset(uint32_t error_code);
    bool closed() const { return closed_; }
    // The peer has sent its whole message (END_STREAM seen).
    bool remote_complete() const { return remote_complete_; }
    // Our whole message has been handed to nghttp2.
    bool local_complete() const { return out_end_ && out_body_.empty() && !out_trailers_pending_; }

   protected:
    friend class Http2Codec;
    friend struct Http2Codec::Glue;
    // A typical header block with what filters add (trace context, forwarding fields): one
    // allocation each for a stream's head instead of one per doubling.
    static constexpr size_t kHeadBytesGuess = 1024;
    static constexpr size_t kHeadFieldsGuess = 24;
    explicit Stream(Http2Codec& codec) : codec_(codec) {}
    // Queues body bytes (moved out of `data`); `trailers` non-null ends the message with them.
    void QueueBody(buffer::Buffer& data, bool end_stream);
    void QueueTrailers(const HeaderMap& trailers);
    // The data provider for a message that has a body (headers sent without END_STREAM).
    nghttp2_data_provider DataProvider();
    virtual MessageHead& head() = 0;
    virtual void OnPseudoHeader(absl::string_view name, absl::string_view value) = 0;
    // The head is complete (with `end_stream`), or trailers arrived.
    virtual void OnHeadersDone(bool end_stream) = 0;
    virtual void DeliverData(buffer::Buffer& data, bool end_stream) = 0;
    virtual void DeliverTrailers(HeaderMap& trailers) = 0;

    Http2Codec& codec_;
    int32_t id_ = -1;
    buffer::Buffer out_body_;
    HeaderMap out_trailers_;
    bool out_end_ = false;  // the last body byte is queued
    bool out_trailers_pending_ = false;
    bool data_deferred_ = false;  // the provider said DEFERRED: resume on new bytes
    bool above_limit_ = false;    // told the owner the queue is over the limit

    buffer::Buffer in_body_;  // this frame's payload, delivered at the frame's end
    HeaderMap in_trailers_;
    bool in_headers_done_ = false;  // the first (non-1xx) header block has been delivered
    bool in_trailers_block_ = false;
    bool remote_complete_ = false;
    uint32_t header_bytes_ = 0;
    uint32_t header_count_ = 0;
    bool headers_too_large_ = false;
    std::string cookies_;  // cookie crumbs, joined for HTTP/1 (RFC 9113 8.2.3)

    bool read_disabled_ = false;
    uint64_t unconsumed_ = 0;  // stream window held back while read-disabled
    bool closed_ = false;
    Stream* prev_ = nullptr;  // the codec's list of open streams
    Stream* next_ = nullptr;
  };

  class Callbacks {
   public:
    virtual ~Callbacks() = default;
    // The stream is over: complete both ways, reset by either side, or the connection ended.
    // `error_code` is NGHTTP2_NO_ERROR for a clean end.
    virtual void OnStreamClosed(Stream& s, uint32_t error_code) = 0;
    // A stream's queued body went over (true) or back under half of (false) the limit.
    virtual void OnStreamQueueLimit(Stream& s, bool above) = 0;
    // Frames were queued outside Dispatch()/Send() (an encoder call, a window returned): the
    // owner calls Send() soon, not from inside this call's caller's codec callback.
    virtual void OnWantsSend() = 0;
    // The peer answered our PING.
    virtual void OnPingAck() {}
  };

  Http2Codec(const Http2Codec&) = delete;
  Http2Codec& operator=(const Http2Codec&) = delete;
  virtual ~Http2Codec();

  // Feeds the peer's bytes (drains `in`). False on a connection error: a GOAWAY is queued; the
  // owner sends it and closes.
  bool Dispatch(buffer::Buffer& in);
  // Moves pending frames into the output buffer until it holds about `budget` more bytes.
  void Send(size_t budget);
  // Nothing more will be read or written (GOAWAY exchanged, or a fatal error).
  bool WantsClose() const;
  // nghttp2 still reads input: false once GOAWAY went either way with no stream left (it then
  // ignores whatever follows), or after a fatal error.
  bool WantsRead() const;
  // A header block has begun (a HEADERS frame header arrived) and has not been received whole:
  // its payload, or the CONTINUATION frames that must follow, are still to come. No other frame
  // may arrive meanwhile, so a peer that stops here holds the whole connection.
  bool ReadingHeaderBlock() const { return reading_header_block_; }
  // The connection is gone: every open stream closes (OnStreamClosed with `error_code`).
  void CloseAllStreams(uint32_t error_code);
  // First step of a graceful shutdown: tells a client that no new streams will be taken soon.
  void SubmitShutdownNotice();
  // The final GOAWAY; streams above the last one seen are not processed.
  void SubmitGoaway(uint32_t error_code);
  void SubmitPing();
  size_t active_streams() const { return active_streams_; }
  const std::string& error_detail() const { return error_detail_; }

 protected:
  Http2Codec(bool server, const Http2Settings& settings, buffer::Buffer& out,
             event::Dispatcher& dispatcher, Callbacks& callbacks);
  // The request or response head of a new stream begins (HEADERS from the peer). Null: refuse.
  virtual Stream* NewStream(int32_t stream_id) = 0;
  virtual void OnGoawayReceived(int32_t /*last_stream_id*/, uint32_t /*error_code*/) {}
  // Frames were queued: tell the owner, unless it will send anyway (inside Dispatch or Send).
  void Queued();
  void Link(Stream* s);
  // Marks `s` closed, tells the owner, and frees it at the end of the loop turn.
  void CloseStream(Stream* s, uint32_t error_code);
  // A header list for nghttp2, built in nv_storage_ (names lowercased): ResetNv, AddNv or
  // AppendFields (which leaves out what HTTP/2 forbids), then FinishNv for the submit call.
  void ResetNv();
  void AddNv(absl::string_view name, absl::string_view value);
  void AppendFields(const HeaderMap& fields, bool trailers);
  const nghttp2_nv* FinishNv();

  nghttp2_session* session_ = nullptr;
  Http2Settings settings_;
  buffer::Buffer& out_;
  event::Dispatcher& dispatcher_;
  Callbacks& callbacks_;
  std::vector<nghttp2_nv> nva_;
  std::string nv_storage_;          // lowercased names and built values that nva_ points into
  std::vector<size_t> nv_offsets_;  // where each field starts in nv_storage_
  size_t active_streams_ = 0;
  std::string error_detail_;
  bool server_;
  bool reading_header_block_ = false;

 private:
  Stream* streams_ = nullptr;               // open streams (opened by either side)
  std::vector<int32_t> budget_deferred_;    // streams whose DATA waits for output budget
  const buffer::Slice* current_ = nullptr;  // the slice being fed to nghttp2
  size_t send_limit_ = 0;                   // out_ length at which Send stops
  bool in_codec_ = false;                   // inside Dispatch or Send
  bool fatal_ = false;
};

// The server side: requests in, responses out.
class Http2ServerCodec final : public Http2Codec {
 public:
  static constexpr absl::string_view kClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

  class ServerStream final : public Stream, public ResponseEncoder {
   public:
    RequestHead& request() { return request_; }
    void set_decoder(RequestDecoder* decoder) { decoder_ = decoder; }
    // The status to answer without running the request (431), or 0.
    int reject_status() const { return reject_status_; }

    // ResponseEncoder
    void EncodeInformational(const ResponseHead& head) override;
    void EncodeHeaders(const ResponseHead& head, bool end_stream) override;
    void EncodeData(buffer::Buffer& data, bool end_stream) override;
    void EncodeTrailers(const HeaderMap& trailers) override;

   private:
    friend class Http2ServerCodec;
    explicit ServerStream(Http2ServerCodec& codec) : Stream(codec), server_(codec) {
      request_.headers.Reserve(kHeadBytesGuess, kHeadFieldsGuess);
    }
    MessageHead& head() override { return request_; }
    void OnPseudoHeader(absl::string_view name, absl::string_view value) override;
    void OnHeadersDone(bool end_stream) override;
    void DeliverData(buffer::Buffer& data, bool end_stream) override;
    void DeliverTrailers(HeaderMap& trailers) override;

    Http2ServerCodec& server_;
    RequestHead request_;
    RequestDecoder* decoder_ = nullptr;
    int reject_status_ = 0;
    bool response_headers_sent_ = false;
    bool bodyless_ = false;  // a HEAD request's response
  };

  class ServerCallbacks : public Callbacks {
   public:
    // A request head is complete: set the stream's decoder (OnHeaders follows at once), or answer
    // it when reject_status() is set.
    virtual void OnNewStream(ServerStream& s) = 0;
  };

  // Queues our SETTINGS; the client's preface is expected first in Dispatch's input.
  Http2ServerCodec(const Http2Settings& settings, buffer::Buffer& out,
                   event::Dispatcher& dispatcher, ServerCallbacks& callbacks);

 private:
  Stream* NewStream(int32_t stream_id) override;
  ServerCallbacks& server_callbacks_;
};

// The client side: requests out, responses in.
class Http2ClientCodec final : public Http2Codec {
 public:
  class ClientStream final : public Stream, public RequestEncoder {
   public:
    void set_decoder(ResponseDecoder* decoder) { decoder_ = decoder; }
    // Response bytes have arrived (a stream refused before any may be retried).
    bool response_started() const { return response_started_; }

    // RequestEncoder. EncodeHeaders opens the stream.
    void EncodeHeaders(const RequestHead& head, bool end_stream) override;
    void EncodeData(buffer::Buffer& data, bool end_stream) override;
    void EncodeTrailers(const HeaderMap& trailers) override;

   private:
    friend class Http2ClientCodec;
    explicit ClientStream(Http2ClientCodec& codec) : Stream(codec), client_(codec) {
      response_.headers.Reserve(kHeadBytesGuess, kHeadFieldsGuess);
    }
    MessageHead& head() override { return response_; }
    void OnPseudoHeader(absl::string_view name, absl::string_view value) override;
    void OnHeadersDone(bool end_stream) override;
    void DeliverData(buffer::Buffer& data, bool end_stream) override;
    void DeliverTrailers(HeaderMap& trailers) override;

    Http2ClientCodec& client_;
    ResponseHead response_;
    ResponseDecoder* decoder_ = nullptr;
    bool response_started_ = false;
  };

  class ClientCallbacks : public Callbacks {
   public:
    // The server sent GOAWAY: no new streams on this connection (streams above
    // `last_stream_id` close with REFUSED_STREAM: never processed, safe to retry).
    virtual void OnGoaway(int32_t last_stream_id, uint32_t error_code) = 0;
  };

  // Queues the client preface and our SETTINGS.
  Http2ClientCodec(const Http2Settings& settings, buffer::Buffer& out,
                   event::Dispatcher& dispatcher, ClientCallbacks& callbacks);

  // A new stream, opened by its EncodeHeaders (which must follow at once). The codec owns it
  // from then on; if the stream cannot be opened, OnStreamClosed(REFUSED_STREAM) follows from
  // inside EncodeHeaders.
  ClientStream* NewClientStream();
  // How many more streams the server allows now.
  uint32_t available_streams() const;

 private:
  Stream* NewStream(int32_t) override { return nullptr; }  // servers do not push here
  void OnGoawayReceived(int32_t last_stream_id, uint32_t error_code) override {
    client_callbacks_.OnGoaway(last_stream_id, error_code);
  }
  ClientCallbacks& client_callbacks_;
};

}  // namespace remora::http
