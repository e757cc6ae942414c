#include "proxy/demo/sample_service.h"

#include "absl/strings/str_cat.h"
#include "proxy/network/address.h"

namespace remora::demo {

absl::StatusOr<std::unique_ptr<SampleService>> SampleService::Start(config::SocketAddress address) {
  absl::StatusOr<int> fd = network::CreateListenSocket(address, /*reuse_port=*/false, 128);
  if (!fd.ok()) return fd.status();
  std::unique_ptr<SampleService> svc(new SampleService());
  svc->port_ = network::BoundPort(*fd).value_or(0);
  svc->server_ = std::make_unique<admin::AdminServer>(svc->dispatcher_, "");
  SampleService* self = svc.get();
  auto hello = [self](const admin::Request& req) {
    ++self->requests_;
    return admin::Response::Text(200, absl::StrCat("hello from the sample service (request ",
                                                   self->requests_, ", path ", req.path, ")\n"));
  };
  svc->server_->AddRoute("GET", "/", false, hello);
  svc->server_->AddRoute("GET", "/hello", false, hello);
  svc->server_->AddRoute("GET", "/healthz", false,
                         [](const admin::Request&) { return admin::Response::Text(200, "ok\n"); });
  svc->server_->Serve(*fd);
  svc->thread_ = std::thread([self] {
    self->dispatcher_.Run();
    self->server_.reset();
  });
  return svc;
}

SampleService::~SampleService() {
  if (thread_.joinable()) {
    dispatcher_.Exit();
    thread_.join();
  }
}

}  // namespace remora::demo
