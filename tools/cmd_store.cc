// `weightsync store`: run the control-plane store, or talk to one.
//
//   weightsync store serve --listen 127.0.0.1:PORT --token-file FILE
//   weightsync store set KEY VALUE --addr HOST:PORT --token-file FILE [--timeout SECONDS]
//   weightsync store get KEY [--timeout SECONDS] --addr HOST:PORT --token-file FILE
//   weightsync store list PREFIX --addr HOST:PORT --token-file FILE [--full] [--timeout SECONDS]
// Without --token-file the token comes from $WEIGHTSYNC_STORE_TOKEN. --timeout bounds the whole
// command: reaching the store (retries included), then the operation (for get: the wait for the
// key). Exit codes: 0 done, 1 the operation failed (key not set in time, store unreachable,
// authentication failed), 2 bad usage.
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <iostream>
#include <memory>

#include "commands.h"
#include "control/auth.h"
#include "control/socket.h"
#include "control/store_client.h"
#include "control/store_server.h"
#include "core/config.h"

namespace weightsync::cli {
namespace {

using control::DeadlineIn;

// A value longer than this is shown as its first bytes and its size unless --full is given.
constexpr size_t kSummaryBytes = 48;

struct StoreFlags {
  std::string addr = "127.0.0.1:29400";
  std::string token_file;
  std::string timeout = "10s";
};

void AddConnectionFlags(CLI::App* cmd, StoreFlags& flags, const std::string& timeout_help) {
  cmd->add_option("--addr", flags.addr, "Store address HOST:PORT")->capture_default_str();
  cmd->add_option("--token-file", flags.token_file,
                  "File holding the store token (else $WEIGHTSYNC_STORE_TOKEN)");
  cmd->add_option("--timeout", flags.timeout, timeout_help)->capture_default_str();
}

// Prints `status` and sets the exit code: 2 for bad input, 1 for everything else.
void Fail(std::string_view what, const Status& status, int& exit_code) {
  std::cerr << "weightsync store " << what << ": " << status.ToString() << "\n";
  exit_code = status.code() == StatusCode::kInvalidArgument ? 2 : 1;
}

// The client, connected within the command's deadline (control.connect_timeout at most).
Result<std::unique_ptr<control::StoreClient>> ConnectFromFlags(const StoreFlags& flags,
                                                               control::Deadline deadline) {
  WS_ASSIGN_OR_RETURN(Config config, Config::FromEnvironment());
  WS_ASSIGN_OR_RETURN(auto options, control::StoreClientOptions::FromConfig(config));
  WS_ASSIGN_OR_RETURN(double connect_timeout, config.GetSeconds("control.connect_timeout"));
  options.address = flags.addr;
  WS_ASSIGN_OR_RETURN(options.token, control::LoadStoreToken(flags.token_file));
  return control::StoreClient::Connect(options, std::min(deadline, DeadlineIn(connect_timeout)));
}

// Parses --timeout and connects before it passes; the deadline is the command's.
Result<std::pair<std::unique_ptr<control::StoreClient>, control::Deadline>> ConnectWithinTimeout(
    const StoreFlags& flags) {
  auto seconds = ParseSeconds(flags.timeout);
  if (!seconds.ok()) return seconds.status().WithContext("--timeout");
  const control::Deadline deadline = DeadlineIn(*seconds);
  WS_ASSIGN_OR_RETURN(auto client, ConnectFromFlags(flags, deadline));
  return std::make_pair(std::move(client), deadline);
}

// Values are bytes; escape what a terminal would mangle.
std::string Printable(std::string_view value) {
  std::string out;
  for (unsigned char c : value) {
    if (std::isprint(c) || c == ' ') {
      out.push_back(static_cast<char>(c));
    } else {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", c);
      out += hex;
    }
  }
  return out;
}

// The value as it is with --full or when short; else its first bytes and its size.
std::string Summary(std::string_view value, bool full) {
  if (full || value.size() <= kSummaryBytes) return Printable(value);
  return StrCat(Printable(value.substr(0, kSummaryBytes)), "... (", value.size(), " bytes)");
}

Status Serve(const std::string& listen, const std::string& token_file) {
  WS_ASSIGN_OR_RETURN(Config config, Config::FromEnvironment());
  WS_ASSIGN_OR_RETURN(auto options, control::StoreServerOptions::FromConfig(config));
  WS_ASSIGN_OR_RETURN(control::HostPort where, control::ParseHostPort(listen));
  options.host = where.host;
  options.port = where.port;
  WS_ASSIGN_OR_RETURN(options.token, control::LoadStoreToken(token_file));
  // Block the stop signals before any thread starts, so every server thread inherits the mask and
  // only sigwait below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  WS_ASSIGN_OR_RETURN(auto server, control::StoreServer::Start(options));
  std::cout << "weightsync store: listening on " << server->address() << std::endl;
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  std::cout << "weightsync store: stopping (signal " << signal_number << ")" << std::endl;
  server->Stop();
  return Status::Ok();
}

}  // namespace

void AddStoreCommand(CLI::App& app, int& exit_code) {
  auto* store = app.add_subcommand("store", "Run the control-plane key-value store or query one");
  store->require_subcommand(1);

  auto* serve = store->add_subcommand("serve", "Run a store until SIGINT/SIGTERM");
  auto listen = std::make_shared<std::string>("127.0.0.1:29400");
  auto serve_token = std::make_shared<std::string>();
  serve->add_option("--listen", *listen, "HOST:PORT to bind (port 0: any free port)")
      ->capture_default_str();
  serve->add_option("--token-file", *serve_token,
                    "File holding the store token (else $WEIGHTSYNC_STORE_TOKEN)");
  serve->callback([listen, serve_token, &exit_code] {
    Status status = Serve(*listen, *serve_token);
    if (!status.ok()) Fail("serve", status, exit_code);
  });

  auto flags = std::make_shared<StoreFlags>();
  auto key = std::make_shared<std::string>();
  auto value = std::make_shared<std::string>();
  const std::string bound = "How long the command may take, reaching the store included";

  auto* set = store->add_subcommand("set", "Set KEY to VALUE");
  set->add_option("KEY", *key, "Key")->required();
  set->add_option("VALUE", *value, "Value")->required();
  AddConnectionFlags(set, *flags, bound + " (\"30\", \"250ms\")");
  set->callback([flags, key, value, &exit_code] {
    auto client = ConnectWithinTimeout(*flags);
    Status status =
        client.ok() ? client->first->Set(*key, *value, client->second) : client.status();
    if (!status.ok()) Fail("set", status, exit_code);
  });

  auto* get = store->add_subcommand("get", "Print KEY's value, waiting up to --timeout for it");
  get->add_option("KEY", *key, "Key")->required();
  AddConnectionFlags(get, *flags, bound + ", waiting for the key included");
  get->callback([flags, key, &exit_code] {
    auto client = ConnectWithinTimeout(*flags);
    if (!client.ok()) return Fail("get", client.status(), exit_code);
    auto got = client->first->Wait(*key, client->second);
    if (!got.ok()) return Fail("get", got.status(), exit_code);
    std::cout << Printable(*got) << "\n";
  });

  auto* list = store->add_subcommand("list", "Print every key under PREFIX with its value");
  auto full = std::make_shared<bool>(false);
  list->add_option("PREFIX", *key, "Key prefix (\"\" lists everything)")->required();
  list->add_flag("--full", *full,
                 StrCat("Print whole values (default: values over ", kSummaryBytes,
                        " bytes as their first bytes and their size)"));
  AddConnectionFlags(list, *flags, bound);
  list->callback([flags, key, full, &exit_code] {
    auto client = ConnectWithinTimeout(*flags);
    if (!client.ok()) return Fail("list", client.status(), exit_code);
    auto entries = client->first->List(*key, client->second);
    if (!entries.ok()) return Fail("list", entries.status(), exit_code);
    for (const auto& entry : *entries) {
      std::cout << Printable(entry.key) << "\t" << Summary(entry.value, *full) << "\n";
    }
  });
}

}  // namespace weightsync::cli
