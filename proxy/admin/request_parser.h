#pragma once

// Parses one admin HTTP/1.1 request (llhttp, strict mode) with bounded header and body sizes.
// Separate from the socket so unit tests and the fuzzer can drive it with raw bytes.
//
// Contract: Feed() may be called with any split of the bytes; once it returns kComplete or kError
// the parser is finished and further input is ignored. On kError, error_status() is the HTTP status
// to answer with (400, 413 or 431).

#include <llhttp.h>

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace remora::admin {

struct Request {
  std::string method;
  std::string path;   // without the query
  std::string query;  // after '?', undecoded
  std::string authorization;
  std::string body;
  bool trusted = false;  // arrived on the Unix socket

  // The value of `name` in the query ("" if absent); percent-decoding is not needed for our params.
  std::string QueryParam(absl::string_view name) const;
};

class RequestParser {
 public:
  enum class State { kIncomplete, kComplete, kError };

  static constexpr size_t kMaxHeaderBytes = 16 * 1024;
  static constexpr size_t kMaxBodyBytes = 64 * 1024;

  RequestParser();
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  State Feed(absl::string_view bytes);
  State state() const { return state_; }
  int error_status() const { return error_status_; }
  const char* error_reason() const;
  // Valid once state() is kComplete.
  Request& request() { return request_; }

 private:
  static RequestParser* Self(llhttp_t* p) { return static_cast<RequestParser*>(p->data); }
  int Append(std::string* to, const char* at, size_t n);
  void FinishHeader();

  llhttp_t parser_;
  llhttp_settings_t settings_;
  Request request_;
  std::string url_, field_, value_;
  size_t header_bytes_ = 0;
  int error_status_ = 0;
  bool in_value_ = false;
  bool message_complete_ = false;
  State state_ = State::kIncomplete;
};

}  // namespace remora::admin
