//! Each manager's role over time, from the leadership poller's
//! observations ([`LeaderObservation`]).
//!
//! The poller asks every manager at once and records the answers together
//! once the slowest answered (or timed out after 2 s), so one polling
//! round is a cluster of observations a few microseconds apart, and a
//! manager missing from a round did not answer it. A manager's role holds
//! from one round to the next, and the last round's for a typical round's
//! length. A round that ends more than [`MAX_GAP`] after the one before
//! waited for a slow manager (a paused one answers when it is resumed),
//! and every answer of it is dated at its end: then the roles of the
//! earlier round hold for a typical round's length, and the rest of the
//! gap is left unobserved for every manager.

use std::time::Duration;

use crate::chaos::history::{LeaderObservation, Recording};

/// Observations closer than this to the previous one belong to its round.
const ROUND_GAP: Duration = Duration::from_millis(50);
/// Rounds farther apart than this (the poller pauses 200 ms between two)
/// waited for a slow manager.
pub const MAX_GAP: Duration = Duration::from_secs(1);
/// A round's length when there is only one.
const DEFAULT_ROUND: Duration = Duration::from_millis(200);

/// What a manager was during a stretch of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It said it led.
    Leader,
    /// It answered and did not lead.
    Follower,
    /// Others answered the round; it did not.
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

/// The managers of a recording, from its observations and operations, in
/// natural order (`m2` before `m10`).
pub fn managers(recording: &Recording) -> Vec<String> {
    let mut names: Vec<String> = recording
        .leaders
        .iter()
        .map(|o| o.manager.clone())
        .chain(recording.ops.iter().map(|o| o.manager.clone()))
        .collect();
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

/// One polling round: when it was recorded and who answered it.
#[derive(Debug)]
struct Round<'a> {
    at: Duration,
    answers: Vec<&'a LeaderObservation>,
}

/// The observations grouped by round, in time order.
fn rounds(leaders: &[LeaderObservation]) -> Vec<Round<'_>> {
    let mut sorted: Vec<&LeaderObservation> = leaders.iter().collect();
    sorted.sort_by_key(|o| o.at);
    let mut rounds: Vec<Round<'_>> = Vec::new();
    let mut last = None;
    for o in sorted {
        match rounds.last_mut() {
            Some(r) if last.is_some_and(|l: Duration| o.at.saturating_sub(l) < ROUND_GAP) => {
                r.answers.push(o)
            }
            _ => rounds.push(Round {
                at: o.at,
                answers: vec![o],
            }),
        }
        last = Some(o.at);
    }
    rounds
}

/// The (lower) median time between two rounds ([`DEFAULT_ROUND`] with
/// fewer than two rounds).
fn typical_round(rounds: &[Round<'_>]) -> Duration {
    let mut gaps: Vec<Duration> = rounds.windows(2).map(|w| w[1].at - w[0].at).collect();
    gaps.sort();
    gaps.get(gaps.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(DEFAULT_ROUND)
}

/// The stretches of every manager of `managers` (same order), merged
/// where role and term do not change.
pub fn stretches(leaders: &[LeaderObservation], managers: &[String]) -> Vec<Vec<Stretch>> {
    let rounds = rounds(leaders);
    let typical = typical_round(&rounds).min(MAX_GAP);
    managers
        .iter()
        .map(|manager| {
            let mut out: Vec<Stretch> = Vec::new();
            for (i, round) in rounds.iter().enumerate() {
                let next = rounds.get(i + 1).map(|r| r.at);
                let to = match next {
                    Some(next) if next - round.at <= MAX_GAP => next,
                    _ => round.at + typical,
                };
                let (role, term) = match round.answers.iter().find(|o| &o.manager == manager) {
                    Some(o) if o.is_leader => (Role::Leader, o.term),
                    Some(o) => (Role::Follower, o.term),
                    None => (Role::Silent, 0),
                };
                match out.last_mut() {
                    Some(s) if s.role == role && s.term == term && s.to == round.at => s.to = to,
                    _ => out.push(Stretch {
                        role,
                        term,
                        from: round.at,
                        to,
                    }),
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
            leaders: vec![obs("m10", 0, 1, false), obs("m2", 0, 1, true)],
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
                (Role::Follower, 1, ms(0), ms(600)),
                (Role::Silent, 0, ms(600), ms(1200)),
                (Role::Follower, 2, ms(1200), ms(2000)),
            ]
        );
    }

    #[test]
    fn a_round_held_up_by_a_slow_manager_leaves_the_wait_unobserved() {
        // Rounds every 200 ms, then one that waited 1.9 s (a paused
        // manager answering once resumed).
        let leaders: Vec<LeaderObservation> = [0, 200, 400, 2300, 2500]
            .into_iter()
            .map(|at| obs("m1", at, 1, true))
            .collect();
        let all = stretches(&leaders, &["m1".to_string()]);
        let spans: Vec<(Duration, Duration)> = all[0].iter().map(|s| (s.from, s.to)).collect();
        assert_eq!(
            spans,
            [(ms(0), ms(600)), (ms(2300), ms(2700))],
            "no role from 0.6 s to 2.3 s"
        );
    }

    #[test]
    fn no_observation_no_stretch() {
        assert_eq!(stretches(&[], &["m1".to_string()]), [Vec::<Stretch>::new()]);
    }
}
