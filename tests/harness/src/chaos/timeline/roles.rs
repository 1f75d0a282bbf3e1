//! Each manager's role over time, from the leadership poller's
//! observations ([`LeaderObservation`]).
//!
//! The poller asks each manager in a loop of its own, every 200 ms, and
//! records an answer when it arrives; a manager that does not answer (down,
//! paused, cut off) leaves a gap. A manager's role holds from one of its
//! answers to the next when they are at most [`MAX_GAP`] apart; after a
//! longer gap, it holds for one polling interval and the rest of the gap
//! shows the manager as not answering. The last answer holds for one
//! polling interval.

use std::time::Duration;

use crate::chaos::history::{LeaderObservation, Recording};

/// Answers of one manager farther apart than this (the poller asks every
/// 200 ms) leave it not answering in between.
pub const MAX_GAP: Duration = Duration::from_millis(500);
/// The poller's interval: how long an answer holds at most.
const POLL: Duration = Duration::from_millis(200);

/// What a manager was during a stretch of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It said it led.
    Leader,
    /// It answered and did not lead.
    Follower,
    /// It did not answer.
    Silent,
}

/// A manager's role from `from` to `to`; the term it said (0 when
/// silent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stretch {
    /// Its role.
    pub role: Role,
    /// Its Raft term (0 when [`Role::Silent`]).
    pub term: u64,
    /// Since the run started.
    pub from: Duration,
    /// Since the run started.
    pub to: Duration,
}

/// The managers of a recording, in natural order (`m2` before `m10`): the
/// poller's, or, without observations, those the operations went to.
pub fn managers(recording: &Recording) -> Vec<String> {
    let mut names: Vec<String> = if recording.leaders.is_empty() {
        recording.ops.iter().map(|o| o.manager.clone()).collect()
    } else {
        recording
            .leaders
            .iter()
            .map(|o| o.manager.clone())
            .collect()
    };
    names.sort_by(|a, b| natural_key(a).cmp(&natural_key(b)));
    names.dedup();
    names
}

/// `m10` as (`m`, 10, `m10`): the prefix, its trailing number, the name.
fn natural_key(name: &str) -> (&str, u64, &str) {
    let prefix = name.trim_end_matches(|c: char| c.is_ascii_digit());
    let number = name[prefix.len()..].parse().unwrap_or(0);
    (prefix, number, name)
}

/// The stretches of every manager of `managers` (same order), merged
/// where role and term do not change.
pub fn stretches(leaders: &[LeaderObservation], managers: &[String]) -> Vec<Vec<Stretch>> {
    managers
        .iter()
        .map(|manager| {
            let mut mine: Vec<&LeaderObservation> =
                leaders.iter().filter(|o| &o.manager == manager).collect();
            mine.sort_by_key(|o| o.at);
            let mut out: Vec<Stretch> = Vec::new();
            let mut push =
                |role: Role, term: u64, from: Duration, to: Duration| match out.last_mut() {
                    Some(s) if s.role == role && s.term == term && s.to == from => s.to = to,
                    _ => out.push(Stretch {
                        role,
                        term,
                        from,
                        to,
                    }),
                };
            for (i, o) in mine.iter().enumerate() {
                let role = if o.is_leader {
                    Role::Leader
                } else {
                    Role::Follower
                };
                match mine.get(i + 1).map(|n| n.at) {
                    Some(next) if next - o.at <= MAX_GAP => push(role, o.term, o.at, next),
                    Some(next) => {
                        push(role, o.term, o.at, o.at + POLL);
                        push(Role::Silent, 0, o.at + POLL, next);
                    }
                    None => push(role, o.term, o.at, o.at + POLL),
                }
            }
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(manager: &str, ms: u64, term: u64, is_leader: bool) -> LeaderObservation {
        LeaderObservation {
            manager: manager.into(),
            term,
            is_leader,
            at: Duration::from_millis(ms),
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn managers_come_in_natural_order_once() {
        let recording = Recording {
            leaders: vec![
                obs("m10", 0, 1, false),
                obs("m2", 0, 1, true),
                obs("m2", 200, 1, true),
            ],
            ..Recording::default()
        };
        assert_eq!(managers(&recording), ["m2", "m10"]);
    }

    #[test]
    fn a_manager_missing_from_rounds_is_silent_then_back() {
        let mut leaders = Vec::new();
        for r in 0..10u64 {
            let at = r * 200;
            leaders.push(obs("m1", at, 1, true));
            // m2 misses rounds 3..=5, then answers in a new term.
            if !(3..=5).contains(&r) {
                leaders.push(obs("m2", at + 1, if r < 3 { 1 } else { 2 }, false));
            }
        }
        let names = vec!["m1".to_string(), "m2".to_string()];
        let all = stretches(&leaders, &names);
        assert_eq!(
            all[0],
            [Stretch {
                role: Role::Leader,
                term: 1,
                from: ms(0),
                to: ms(2000)
            }]
        );
        let m2: Vec<(Role, u64, Duration, Duration)> = all[1]
            .iter()
            .map(|s| (s.role, s.term, s.from, s.to))
            .collect();
        assert_eq!(
            m2,
            [
                (Role::Follower, 1, ms(1), ms(601)),
                (Role::Silent, 0, ms(601), ms(1201)),
                (Role::Follower, 2, ms(1201), ms(2001)),
            ]
        );
    }

    #[test]
    fn a_manager_that_stops_answering_is_silent_until_it_answers() {
        // Answers every 200 ms, then none for 1.9 s (paused, then resumed).
        let leaders: Vec<LeaderObservation> = [0, 200, 400, 2300, 2500]
            .into_iter()
            .map(|at| obs("m1", at, 1, true))
            .collect();
        let all = stretches(&leaders, &["m1".to_string()]);
        let spans: Vec<(Role, Duration, Duration)> =
            all[0].iter().map(|s| (s.role, s.from, s.to)).collect();
        assert_eq!(
            spans,
            [
                (Role::Leader, ms(0), ms(600)),
                (Role::Silent, ms(600), ms(2300)),
                (Role::Leader, ms(2300), ms(2700))
            ],
            "not answering from 0.6 s to 2.3 s"
        );
    }

    #[test]
    fn no_observation_no_stretch() {
        assert_eq!(stretches(&[], &["m1".to_string()]), [Vec::<Stretch>::new()]);
    }
}
