#include "proxy/event/signal.h"

#include "proxy/event/uv_dispatcher.h"

namespace remora::event {

SignalHandler::SignalHandler(UvDispatcher& dispatcher, int signum, absl::AnyInvocable<void()> cb)
    : cb_(std::move(cb)) {
  handle_ = new uv_signal_t;
  uv_signal_init(dispatcher.loop(), handle_);
  handle_->data = this;
  uv_signal_start(
      handle_,
      [](uv_signal_t* h, int) {
        auto* self = static_cast<SignalHandler*>(h->data);
        if (self != nullptr) self->cb_();
      },
      signum);
}

SignalHandler::~SignalHandler() {
  uv_signal_stop(handle_);
  handle_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(handle_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_signal_t*>(h); });
}

}  // namespace remora::event
