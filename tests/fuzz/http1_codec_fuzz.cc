// libFuzzer target for the HTTP/1 codecs. The first byte picks the side (server: requests;
// client: responses to GET or HEAD) and a split point; the rest is the wire input. Parsed whole
// and parsed in two pieces, the input must give the same events and the same verdict; nothing
// may crash, hang or leak; an error status is one a server can send.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "proxy/http/http1_codec.h"

namespace {

using namespace remora::http;  // NOLINT: a fuzz target, one function

// Events as text; body bytes coalesced (read splits are not part of the contract).
struct Log : RequestDecoder, ResponseDecoder {
  std::string text, body;
  void Head(const HeaderMap& h, bool end) {
    for (size_t i = 0; i < h.size(); ++i) absl::StrAppend(&text, h.name(i), ":", h.value(i), ";");
    absl::StrAppend(&text, end, "\n");
  }
  void OnHeaders(RequestHead& h, bool end) override {
    absl::StrAppend(&text, "H ", h.method, " ", h.path, " ", h.authority, " ");
    Head(h.headers, end);
  }
  void OnInformational(ResponseHead& h) override { absl::StrAppend(&text, "I ", h.status, "\n"); }
  void OnHeaders(ResponseHead& h, bool end) override {
    absl::StrAppend(&text, "H ", h.status, " ");
    Head(h.headers, end);
  }
  void OnData(remora::buffer::Buffer& d, bool end) override {
    body += d.ToString();
    d.Clear();
    if (end) {
      absl::StrAppend(&text, "D ", body, "\n");
      body.clear();
    }
  }
  void OnTrailers(HeaderMap& t) override {
    absl::StrAppend(&text, "D ", body, "\nT ");
    body.clear();
    Head(t, true);
  }
};

template <typename Codec>
std::string Run(Codec& codec, Log& log, absl::string_view input, size_t cut, bool client) {
  remora::buffer::Buffer in;
  int messages = 0;  // a bound on pipelined messages, counted over both pieces
  for (absl::string_view piece : {input.substr(0, cut), input.substr(cut)}) {
    in.Append(piece);
    for (; !in.empty() && messages < 64; ++messages) {
      DispatchResult r = codec.Dispatch(in);
      if (r == DispatchResult::kError) return absl::StrCat(log.text, "E", codec.error_status());
      if (r == DispatchResult::kUpgrade) return log.text + "U";
      if (r != DispatchResult::kMessageComplete) break;
      log.text += "C\n";
      if (client) return log.text;  // one response per request
      codec.Resume();
    }
  }
  return log.text;
}

std::string Parse(uint8_t mode, absl::string_view input, size_t cut) {
  remora::buffer::Buffer out;
  Log log;
  if (mode % 3 == 0) {
    Http1ServerCodec codec({4096, 32}, out);
    codec.set_decoder(static_cast<RequestDecoder*>(&log));
    std::string s = Run(codec, log, input, cut, false);
    if (codec.error_status() != 0) {
      int e = codec.error_status();
      if (e != 400 && e != 405 && e != 431 && e != 501 && e != 505) std::abort();
    }
    return s;
  }
  Http1ClientCodec codec({4096, 32}, out);
  codec.set_decoder(static_cast<ResponseDecoder*>(&log));
  RequestHead req;
  req.method = mode % 3 == 1 ? "GET" : "HEAD";
  req.path = "/";
  req.authority = "a";
  codec.EncodeHeaders(req, true);
  std::string s = Run(codec, log, input, cut, true);
  if (!s.empty() && s.back() != 'U' && s.find('E') == std::string::npos) {
    s += codec.OnEndOfStream() ? "eof-ok" : "eof-cut";
  }
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  uint8_t mode = data[0];
  absl::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  size_t cut = (static_cast<size_t>(data[0]) * 131) % (input.size() + 1);
  std::string whole = Parse(mode, input, 0), split = Parse(mode, input, cut);
  if (whole != split) {
    std::fprintf(stderr, "whole:\n%s\nsplit at %zu:\n%s\n", whole.c_str(), cut, split.c_str());
    std::abort();
  }
  return 0;
}
