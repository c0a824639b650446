//! The agent's reconciler as a pure function: what to do with a job
//! assigned to this node, given whether this process is running it.

use crate::crd::Phase;

/// The facts about one job the decision needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentFacts {
    /// Its phase.
    pub phase: Phase,
    /// `spec.cancel`.
    pub cancel: bool,
    /// Deletion has begun.
    pub deleting: bool,
    /// The agent's finalizer is on it.
    pub has_finalizer: bool,
    /// `status.node` is this node.
    pub mine: bool,
    /// `status.attempts`.
    pub attempts: u32,
    /// This process runs (or queues) it.
    pub running_here: bool,
    /// This process already asked its run to stop.
    pub stop_sent: bool,
}

/// One step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentAction {
    /// Queue and run it (Assigned → InProgress when a slot is free).
    Start,
    /// Run it again: it was in progress when an earlier agent process
    /// stopped. A re-run reuses what was uploaded.
    Resume,
    /// Ask the local run to stop.
    Stop,
    /// Mark it canceled (nothing runs it here).
    MarkCanceled {
        /// The phase expected now.
        from: Phase,
    },
    /// Give up on a job interrupted too often.
    GiveUp {
        /// Why.
        message: String,
    },
    /// Remove the agent's finalizer.
    RemoveFinalizer,
}

/// Decides the next steps for a job.
pub fn decide(f: &AgentFacts, max_attempts: u32) -> Vec<AgentAction> {
    use AgentAction::*;
    if !f.mine {
        return vec![];
    }
    if f.running_here {
        return if (f.cancel || f.deleting) && !f.stop_sent {
            vec![Stop]
        } else {
            vec![]
        };
    }
    if f.deleting {
        return if f.has_finalizer {
            vec![RemoveFinalizer]
        } else {
            vec![]
        };
    }
    match f.phase {
        Phase::New => vec![],
        Phase::Assigned if f.cancel => vec![MarkCanceled { from: f.phase }],
        Phase::Assigned => vec![Start],
        Phase::InProgress if f.cancel => vec![MarkCanceled { from: f.phase }],
        Phase::InProgress if f.attempts >= max_attempts => vec![GiveUp {
            message: format!(
                "interrupted {} times (the agent restarted while running it); giving up",
                f.attempts
            ),
        }],
        Phase::InProgress => vec![Resume],
        _ if f.has_finalizer => vec![RemoveFinalizer],
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AgentAction::*;

    fn job(phase: Phase) -> AgentFacts {
        AgentFacts {
            phase,
            mine: true,
            ..Default::default()
        }
    }

    #[test]
    fn assigned_jobs_start_and_running_ones_are_left_alone() {
        assert_eq!(decide(&job(Phase::Assigned), 3), vec![Start]);
        let running = AgentFacts {
            running_here: true,
            ..job(Phase::InProgress)
        };
        assert_eq!(decide(&running, 3), vec![]);
        assert_eq!(decide(&job(Phase::New), 3), vec![]);
        let other = AgentFacts {
            mine: false,
            ..job(Phase::Assigned)
        };
        assert_eq!(decide(&other, 3), vec![], "another node's job");
    }

    #[test]
    fn cancel_stops_a_local_run_once_or_marks_an_idle_job() {
        let running = AgentFacts {
            running_here: true,
            cancel: true,
            ..job(Phase::InProgress)
        };
        assert_eq!(decide(&running, 3), vec![Stop]);
        let sent = AgentFacts {
            stop_sent: true,
            ..running
        };
        assert_eq!(decide(&sent, 3), vec![]);
        let queued = AgentFacts {
            cancel: true,
            ..job(Phase::Assigned)
        };
        assert_eq!(
            decide(&queued, 3),
            vec![MarkCanceled {
                from: Phase::Assigned
            }]
        );
    }

    #[test]
    fn a_job_left_in_progress_by_a_dead_agent_is_resumed_then_given_up() {
        let orphan = AgentFacts {
            attempts: 1,
            ..job(Phase::InProgress)
        };
        assert_eq!(decide(&orphan, 3), vec![Resume]);
        let tired = AgentFacts {
            attempts: 3,
            ..orphan
        };
        assert!(
            matches!(&decide(&tired, 3)[..], [GiveUp { message }] if message.contains("3 times"))
        );
    }

    #[test]
    fn deletion_stops_the_run_or_releases_the_finalizer() {
        let running = AgentFacts {
            running_here: true,
            deleting: true,
            has_finalizer: true,
            ..job(Phase::InProgress)
        };
        assert_eq!(decide(&running, 3), vec![Stop]);
        let idle = AgentFacts {
            running_here: false,
            ..running
        };
        assert_eq!(decide(&idle, 3), vec![RemoveFinalizer]);
        let done = AgentFacts {
            has_finalizer: true,
            ..job(Phase::Completed)
        };
        assert_eq!(decide(&done, 3), vec![RemoveFinalizer]);
    }
}
