// libFuzzer target for the HTTP/2 server codec (the h2c side every client reaches). The input
// follows the client preface (prepended unless the first byte says not to); each request
// stream is answered at once (head, a body piece, trailers, or a reset, chosen by the stream id)
// so the encoders and the data provider run too. Parsed whole and parsed in two pieces, the
// input must give the same decoder events and the same verdict; nothing may crash, hang or leak.
// Except when nghttp2 stops reading at the cut (GOAWAY received, no stream open): it ignores the
// rest of that call's input, and the connection manager closes the connection there, so the
// pieces are not comparable with the whole (which nghttp2 took in one call).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "proxy/event/sim_dispatcher.h"
#include "proxy/http/http2_codec.h"

namespace {

using namespace remora::http;  // NOLINT: a fuzz target, one function

struct Peer : Http2ServerCodec::ServerCallbacks, RequestDecoder {
  std::string log;
  Http2ServerCodec::ServerStream* current = nullptr;

  void OnNewStream(Http2ServerCodec::ServerStream& s) override {
    absl::StrAppend(&log, "N", s.id(), " ", s.reject_status(), "\n");
    if (s.reject_status() != 0) {
      ResponseHead h;
      h.status = s.reject_status();
      s.EncodeHeaders(h, true);
      return;
    }
    current = &s;
    s.set_decoder(this);
  }
  void OnHeaders(RequestHead& h, bool end) override {
    absl::StrAppend(&log, "H ", h.method, " ", h.path, " ", h.authority, " ", end, " ",
                    static_cast<int>(h.framing), ";");
    for (size_t i = 0; i < h.headers.size(); ++i) {
      absl::StrAppend(&log, h.headers.name(i), ":", h.headers.value(i), ";");
    }
    log += "\n";
    Http2ServerCodec::ServerStream& s = *current;
    ResponseHead r;
    r.status = 200;
    r.headers.Add("x-id", absl::StrCat(s.id()));
    switch (s.id() % 4) {
      case 1: {
        s.EncodeHeaders(r, false);
        remora::buffer::Buffer body;
        body.Append(std::string(static_cast<size_t>(s.id()) * 37 % 70000, 'b'));
        s.EncodeData(body, false);
        HeaderMap t;
        t.Add("grpc-status", "0");
        s.EncodeTrailers(t);
        break;
      }
      case 3:
        s.Reset(NGHTTP2_CANCEL);
        break;
      default:
        s.EncodeHeaders(r, end);
        break;
    }
  }
  void OnData(remora::buffer::Buffer& d, bool end) override {
    absl::StrAppend(&log, "D ", d.length(), " ", end, "\n");
    d.Clear();
  }
  void OnTrailers(HeaderMap& t) override { absl::StrAppend(&log, "T ", t.size(), "\n"); }
  void OnStreamClosed(Http2Codec::Stream& s, uint32_t code) override {
    absl::StrAppend(&log, "C", s.id(), " ", code, "\n");
  }
  void OnStreamQueueLimit(Http2Codec::Stream&, bool) override {}
  void OnWantsSend() override {}
};

// The decoder events and verdict; `stopped` says nghttp2 stopped reading before the last piece.
std::string Parse(absl::string_view input, size_t cut, bool* stopped) {
  remora::event::SimDispatcher dispatcher;
  remora::buffer::Buffer out;
  Peer peer;
  Http2Settings settings;
  settings.max_concurrent_streams = 16;
  settings.header_limits = HeaderLimits{4096, 32};
  settings.stream_buffer_limit = 16 * 1024;
  {
    Http2ServerCodec codec(settings, out, dispatcher, peer);
    // Nothing is sent between the pieces: a stream our answers would close mid-input would
    // change how later frames on it are judged, which is not a property of the split.
    bool ok = true;
    *stopped = false;
    for (absl::string_view piece : {input.substr(0, cut), input.substr(cut)}) {
      if (ok && !piece.empty() && !codec.WantsRead()) {
        *stopped = true;
        break;
      }
      remora::buffer::Buffer in;
      in.Append(piece);
      if (ok) ok = codec.Dispatch(in);
    }
    absl::StrAppend(&peer.log, ok ? "ok" : "error");
    codec.Send(1 << 20);
    out.Clear();
    dispatcher.RunPending();
    codec.CloseAllStreams(NGHTTP2_CANCEL);
    dispatcher.RunPending();
  }
  dispatcher.RunPending();
  return peer.log;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  std::string input;
  if ((data[0] & 0x80) == 0) {
    input.assign(Http2ServerCodec::kClientPreface.data(), Http2ServerCodec::kClientPreface.size());
  }
  input.append(reinterpret_cast<const char*>(data + 1), size - 1);
  size_t cut = (static_cast<size_t>(data[0]) * 131) % (input.size() + 1);
  bool whole_stopped = false, split_stopped = false;
  std::string whole = Parse(input, 0, &whole_stopped), split = Parse(input, cut, &split_stopped);
  if (!split_stopped && whole != split) {
    std::fprintf(stderr, "whole:\n%s\nsplit at %zu:\n%s\n", whole.c_str(), cut, split.c_str());
    std::abort();
  }
  return 0;
}
