#include "proxy/admin/request_parser.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"

namespace remora::admin {

std::string Request::QueryParam(absl::string_view name) const {
  for (absl::string_view kv : absl::StrSplit(query, '&')) {
    std::pair<absl::string_view, absl::string_view> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    if (p.first == name) return std::string(p.second);
  }
  return "";
}

RequestParser::RequestParser() {
  llhttp_settings_init(&settings_);
  settings_.on_url = [](llhttp_t* p, const char* at, size_t n) {
    return Self(p)->Append(&Self(p)->url_, at, n);
  };
  settings_.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
    RequestParser* s = Self(p);
    if (s->in_value_) s->FinishHeader();
    return s->Append(&s->field_, at, n);
  };
  settings_.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
    RequestParser* s = Self(p);
    s->in_value_ = true;
    return s->Append(&s->value_, at, n);
  };
  settings_.on_headers_complete = [](llhttp_t* p) {
    if (Self(p)->in_value_) Self(p)->FinishHeader();
    return 0;
  };
  settings_.on_body = [](llhttp_t* p, const char* at, size_t n) {
    RequestParser* s = Self(p);
    if (s->request_.body.size() + n > kMaxBodyBytes) {
      s->error_status_ = 413;
      return -1;
    }
    s->request_.body.append(at, n);
    return 0;
  };
  settings_.on_message_complete = [](llhttp_t* p) {
    Self(p)->message_complete_ = true;
    // Pause so bytes after the request (a pipelined second one) are left unparsed.
    return static_cast<int>(HPE_PAUSED);
  };
  llhttp_init(&parser_, HTTP_REQUEST, &settings_);
  parser_.data = this;
}

RequestParser::State RequestParser::Feed(absl::string_view bytes) {
  if (state_ != State::kIncomplete) return state_;
  llhttp_errno_t err = llhttp_execute(&parser_, bytes.data(), bytes.size());
  if (message_complete_) {
    request_.method = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
    std::pair<std::string, std::string> pq = absl::StrSplit(url_, absl::MaxSplits('?', 1));
    request_.path = std::move(pq.first);
    request_.query = std::move(pq.second);
    state_ = State::kComplete;
  } else if (err != HPE_OK) {
    if (error_status_ == 0) error_status_ = 400;
    state_ = State::kError;
  }
  return state_;
}

const char* RequestParser::error_reason() const {
  if (error_status_ == 413) return "body too large";
  if (error_status_ == 431) return "headers too large";
  return llhttp_get_error_reason(&parser_);
}

int RequestParser::Append(std::string* to, const char* at, size_t n) {
  header_bytes_ += n;
  if (header_bytes_ > kMaxHeaderBytes) {
    error_status_ = 431;
    return -1;
  }
  to->append(at, n);
  return 0;
}

void RequestParser::FinishHeader() {
  if (absl::EqualsIgnoreCase(field_, "authorization")) request_.authorization = value_;
  field_.clear();
  value_.clear();
  in_value_ = false;
}

}  // namespace remora::admin
