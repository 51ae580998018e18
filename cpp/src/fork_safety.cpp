#include <pthread.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "lstmcore/team.hpp"

namespace lstmcore {

namespace {

// Set in a forked child, on the thread that called fork (the only thread it has).
thread_local bool forked_thread = false;

// A thread that runs passes for the forked thread: new threads start with no OpenMP
// pool, so the first region this one starts builds a pool of live threads.
class CoreThread {
 public:
  void run(void (*call)(void*), void* context) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!thread_.joinable()) thread_ = std::thread([this] { serve(); });
    call_ = call;
    context_ = context;
    done_ = false;
    wake_.notify_one();
    finished_.wait(lock, [this] { return done_; });
  }

 private:
  void serve() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [this] { return call_ != nullptr; });
      void (*call)(void*) = call_;
      call_ = nullptr;
      lock.unlock();
      // run_team's region catches every exception of the pass.
      call(context_);
      lock.lock();
      done_ = true;
      finished_.notify_one();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_, finished_;
  void (*call_)(void*) = nullptr;
  void* context_ = nullptr;
  bool done_ = false;
  std::thread thread_;
};

// Never destroyed: its thread serves until the process ends. A child of a child leaves
// its parent's (whose thread it does not have) behind and starts its own.
CoreThread* core_thread = nullptr;

void after_fork_in_child() {
  forked_thread = true;
  core_thread = nullptr;
}

[[maybe_unused]] const int fork_handler_registered = pthread_atfork(nullptr, nullptr, after_fork_in_child);

}  // namespace

bool holds_parent_thread_pool() { return forked_thread; }

void run_on_core_thread(void (*call)(void*), void* context) {
  // Only the forked thread comes here, so it is never entered twice at once.
  if (core_thread == nullptr) core_thread = new CoreThread();
  core_thread->run(call, context);
}

}  // namespace lstmcore
