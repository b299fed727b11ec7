// `weightsync orchestrate`: an external orchestrator for a job's pushes, over the store.
//
//   weightsync orchestrate --addr HOST:PORT --token-file FILE --job ID [--steps N]
//                          [--offer-timeout 1h] [--outcome-timeout SECONDS]
// The trainers run with push.orchestrator = external: trainer rank 0 offers each step when its
// weights are ready; this command requests the push (every inference rank pauses, the trainers
// write, every rank commits, the engines resume) and prints its outcome, for --steps pushes (0:
// until no offer arrives within --offer-timeout, which then ends it normally). --addr names the
// store as every client command does (--store, its old name, still works). Any store client can
// do the same with the keys listed in docs/control-plane.md. Exit codes: 0 every push committed, 1
// a push failed or the store could not be reached, 2 bad usage.
#include <iostream>
#include <memory>

#include "commands.h"
#include "control/auth.h"
#include "control/store_client.h"
#include "core/config.h"
#include "push/orchestrator.h"
#include "push/push_requests.h"
#include "push/push_types.h"

namespace weightsync::cli {
namespace {

using control::DeadlineIn;

struct OrchestrateFlags {
  std::string addr = "127.0.0.1:29400";
  std::string token_file;
  std::string job;
  int steps = 1;
  std::string offer_timeout = "1h";
  std::string outcome_timeout;  // default: the push.* timeouts added up, plus slack
};

Result<int> Orchestrate(const OrchestrateFlags& flags) {
  WS_ASSIGN_OR_RETURN(Config config, Config::FromEnvironment());
  WS_RETURN_IF_ERROR(control::ValidateName("job id", flags.job));
  WS_ASSIGN_OR_RETURN(auto client_options, control::StoreClientOptions::FromConfig(config));
  client_options.address = flags.addr;
  WS_ASSIGN_OR_RETURN(client_options.token, control::LoadStoreToken(flags.token_file));
  WS_ASSIGN_OR_RETURN(double connect_timeout, config.GetSeconds("control.connect_timeout"));
  WS_ASSIGN_OR_RETURN(push::PushOptions push_options, push::PushOptions::FromConfig(config));

  push::OrchestrateOptions options;
  options.job = flags.job;
  auto offer_timeout = ParseSeconds(flags.offer_timeout);
  if (!offer_timeout.ok()) return offer_timeout.status().WithContext("--offer-timeout");
  options.offer_timeout_s = *offer_timeout;
  if (flags.outcome_timeout.empty()) {
    options.outcome_timeout_s = push_options.pause_timeout_s + push_options.transfer_timeout_s +
                                push_options.commit_timeout_s + 10;
  } else {
    auto seconds = ParseSeconds(flags.outcome_timeout);
    if (!seconds.ok()) return seconds.status().WithContext("--outcome-timeout");
    options.outcome_timeout_s = *seconds;
  }

  WS_ASSIGN_OR_RETURN(auto client,
                      control::StoreClient::Connect(client_options, DeadlineIn(connect_timeout)));
  // Continue from wherever the job's request chain ends (a restarted orchestrator resumes there).
  WS_ASSIGN_OR_RETURN(std::optional<uint64_t> after,
                      push::LastRequestedStep(*client, flags.job, DeadlineIn(connect_timeout)));
  int failed = 0;
  for (int done = 0; flags.steps == 0 || done < flags.steps; ++done) {
    if (flags.steps == 0) {
      // Open-ended: a trainer that stops offering (the run ended) ends the loop, not in error.
      auto offered =
          push::WaitForOffer(*client, flags.job, after, DeadlineIn(options.offer_timeout_s));
      if (!offered.ok() && offered.status().code() == StatusCode::kDeadlineExceeded) {
        std::cout << "no offer after step " << (after ? std::to_string(*after) : "none")
                  << " within " << options.offer_timeout_s << " s; stopping" << std::endl;
        break;
      }
      WS_RETURN_IF_ERROR(offered.status());
    }
    WS_ASSIGN_OR_RETURN(push::OrchestratedPush pushed,
                        push::OrchestrateOnePush(*client, options, after));
    after = pushed.step;
    if (pushed.committed) {
      std::cout << "push step " << pushed.step << ": committed in " << pushed.seconds << " s"
                << std::endl;
    } else {
      ++failed;
      std::cout << "push step " << pushed.step << ": " << pushed.outcome << std::endl;
    }
  }
  return failed == 0 ? 0 : 1;
}

}  // namespace

void AddOrchestrateCommand(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<OrchestrateFlags>();
  auto* cmd = app.add_subcommand("orchestrate",
                                 "Request each push a job's trainers offer and report its outcome "
                                 "(trainers run with push.orchestrator=external)");
  cmd->add_option("--addr,--store", flags->addr, "Store address HOST:PORT (--store: old name)")
      ->capture_default_str();
  cmd->add_option("--token-file", flags->token_file,
                  "File holding the store token (else $WEIGHTSYNC_STORE_TOKEN)");
  cmd->add_option("--job", flags->job, "Job id")->required();
  cmd->add_option("--steps", flags->steps,
                  "Pushes to drive (0: until no offer comes within --offer-timeout)")
      ->capture_default_str();
  cmd->add_option("--offer-timeout", flags->offer_timeout,
                  "How long to wait for the trainer's next offer")
      ->capture_default_str();
  cmd->add_option("--outcome-timeout", flags->outcome_timeout,
                  "How long one push may take once requested (default: the push.* timeouts "
                  "added up, plus 10 s)");
  cmd->callback([flags, &exit_code] {
    auto result = Orchestrate(*flags);
    if (!result.ok()) {
      std::cerr << "weightsync orchestrate: " << result.status().ToString() << "\n";
      exit_code = result.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
      return;
    }
    exit_code = *result;
  });
}

}  // namespace weightsync::cli
