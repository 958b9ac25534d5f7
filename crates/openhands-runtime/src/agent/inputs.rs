//! What reaches the running loop: its input channel, inputs put aside while the agent was
//! busy, and the drain flag; and the ways the loop ends early ([`Exit`]).
//!
//! Inputs are read only at defined points: while the agent waits (for a message or a
//! confirmation), and while it works on something a `Stop` may cut short (an LLM call, a
//! command). Anything else that arrives meanwhile is kept in order for later; a drain is
//! remembered and honoured at the next step boundary ([`Inputs::check`]).

use super::AgentInput;
use std::collections::VecDeque;
use std::future::Future;
use tokio::sync::mpsc::Receiver;
use tokio::sync::mpsc::error::TryRecvError;

/// Why the loop ends early.
pub(crate) enum Exit {
    Stopped,
    /// The input channel closed while the agent waited.
    Closed,
    /// An event could not be stored.
    Fatal(String),
    /// A drain: leave at this step boundary.
    Drained,
    /// A `Stop` after a drain cut the command in flight short (its result still to record).
    CutShort,
}

pub(crate) type Step<T> = Result<T, Exit>;

/// The input channel plus inputs that arrived while the agent was busy.
pub(crate) struct Inputs {
    rx: Receiver<AgentInput>,
    pub queued: VecDeque<AgentInput>,
    closed: bool,
    /// The reason of a drain received, once one was.
    pub draining: Option<String>,
}

/// How work driven by [`Inputs::unless_stopped`] ended early.
pub(crate) enum Cut {
    Stopped,
    Drained,
}

impl Inputs {
    pub fn new(rx: Receiver<AgentInput>) -> Self {
        Self {
            rx,
            queued: VecDeque::new(),
            closed: false,
            draining: None,
        }
    }

    pub async fn next(&mut self) -> Option<AgentInput> {
        if let Some(input) = self.queued.pop_front() {
            return Some(input);
        }
        if self.closed {
            return None;
        }
        let input = self.rx.recv().await;
        self.closed = input.is_none();
        input
    }

    /// Notes a drain, or queues any other input for later.
    fn keep(&mut self, input: AgentInput) {
        match input {
            AgentInput::Drain { reason } => self.draining = Some(reason),
            other => self.queued.push_back(other),
        }
    }

    /// Takes in what arrived meanwhile without waiting; fails at a `Stop` or a drain.
    pub fn check(&mut self) -> Step<()> {
        while !self.closed {
            match self.rx.try_recv() {
                Ok(AgentInput::Stop) => return Err(Exit::Stopped),
                Ok(other) => self.keep(other),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => self.closed = true,
            }
        }
        match self.draining {
            Some(_) => Err(Exit::Drained),
            None => Ok(()),
        }
    }

    /// Drives `work` to completion unless a `Stop` arrives first, or a drain when
    /// `drain_cuts`; other inputs are queued for later.
    pub async fn unless_stopped<F: Future>(
        &mut self,
        work: F,
        drain_cuts: bool,
    ) -> Result<F::Output, Cut> {
        if drain_cuts && self.draining.is_some() {
            return Err(Cut::Drained);
        }
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return Ok(out),
                input = self.rx.recv(), if !self.closed => match input {
                    Some(AgentInput::Stop) => return Err(Cut::Stopped),
                    Some(other) => {
                        self.keep(other);
                        if drain_cuts && self.draining.is_some() {
                            return Err(Cut::Drained);
                        }
                    }
                    None => self.closed = true,
                },
            }
        }
    }
}
