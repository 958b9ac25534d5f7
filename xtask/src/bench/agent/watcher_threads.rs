//! The watchers' own threads, at idle priority.
//!
//! The watchers stand in for browsers on other machines, but here they share the two
//! cores with the servers they measure: reading 1,000 sockets per burst takes about as
//! much CPU as the servers take to write them, and at normal priority the reading
//! threads queued for the cores with the server threads still writing the burst, which
//! remote clients would not. On threads of their own under `SCHED_IDLE`, the watchers
//! read only when no server thread wants a core. Their figure does not depend on when
//! they read: it is the kernel's arrival stamp of each frame ([`super::arrival`]), taken
//! while the server writes (a read a whole burst late can only make a delay longer). The
//! fake LLM and the requests that drive the task stay on the bench's normal-priority
//! runtime, so the pace of events is not slowed with the watchers.

use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::JoinHandle;

/// Worker threads of the watchers' runtime: one per core of the bench machine, so
/// they can catch up on both cores between bursts.
const THREADS: usize = 2;

/// A multi-threaded runtime whose threads run under `SCHED_IDLE`.
pub struct WatcherThreads {
    runtime: Option<Runtime>,
    /// Why a thread could not lower its priority, if one could not.
    failure: Arc<Mutex<Option<String>>>,
}

impl WatcherThreads {
    pub fn start() -> Result<Self> {
        let failure: Arc<Mutex<Option<String>>> = Arc::default();
        let on_start = Arc::clone(&failure);
        let runtime = Builder::new_multi_thread()
            .worker_threads(THREADS)
            .thread_name("bench-watcher")
            .enable_all()
            .on_thread_start(move || {
                if let Err(err) = lower_to_idle_priority()
                    && let Ok(mut slot) = on_start.lock()
                {
                    slot.get_or_insert(err);
                }
            })
            .build()
            .context("building the watchers' runtime")?;
        Ok(Self {
            runtime: Some(runtime),
            failure,
        })
    }

    /// Runs `future` on the watchers' threads.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle().spawn(future)
    }

    pub fn handle(&self) -> &Handle {
        match &self.runtime {
            Some(runtime) => runtime.handle(),
            None => unreachable!("the runtime is only taken when dropped"),
        }
    }

    /// Fails if a thread that has run so far kept its normal priority: the figures
    /// of such a run would not be comparable.
    pub fn check(&self) -> Result<()> {
        if let Some(err) = self.failure.lock().ok().and_then(|slot| slot.clone()) {
            bail!("the watchers' threads could not lower their priority to SCHED_IDLE: {err}");
        }
        Ok(())
    }
}

impl Drop for WatcherThreads {
    fn drop(&mut self) {
        // Dropped from async code: a blocking shutdown would panic there.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Puts the calling thread under `SCHED_IDLE`.
fn lower_to_idle_priority() -> std::result::Result<(), String> {
    use thread_priority::unix::{
        NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
        thread_native_id,
    };
    set_thread_priority_and_policy(
        thread_native_id(),
        thread_priority::ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    )
    .map_err(|err| format!("{err:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use thread_priority::unix::{NormalThreadSchedulePolicy, ThreadSchedulePolicy};

    #[test]
    fn watcher_tasks_run_under_sched_idle() -> Result<()> {
        let threads = WatcherThreads::start()?;
        for _ in 0..4 {
            let task = threads.spawn(async { thread_priority::unix::thread_schedule_policy() });
            let policy = threads
                .handle()
                .block_on(task)?
                .map_err(|err| anyhow::anyhow!("{err:?}"))?;
            assert_eq!(
                policy,
                ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle)
            );
        }
        threads.check()
    }
}
