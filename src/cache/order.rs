//! The cache's ordering rule: which news may replace an entry's view, by
//! (epoch, generation).

use super::View;

/// Which generations may replace an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Generation {
    /// A snapshot: as complete as the entry, or more. One of another epoch
    /// (the agent was deleted and made again) replaces the entry whatever
    /// its generation: the store answered it, so it is the current history.
    SameOrNewer,
    /// A transition message: only news, and only of the entry's epoch (or
    /// of none, from a publisher older than epochs). One of another epoch
    /// moves nothing but stops the entry being trusted, so the next
    /// decision asks the store, whose answer says which epoch is current.
    Newer,
}

/// What to do with an entry's view given news `view`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Old news: nothing changes.
    Keep,
    /// News of another history than the entry's: keep the view, but stop
    /// trusting it until the store answers.
    Distrust,
    /// The new view (its epoch filled in when the news had none).
    Replace(View),
}

/// The rule: generations compare within one epoch; see [`Generation`].
pub(super) fn step(current: &View, mut view: View, accept: Generation) -> Step {
    if accept == Generation::Newer && view.epoch == 0 {
        // A message without an epoch: of the entry's, presumably.
        view.epoch = current.epoch;
    }
    if view.epoch != current.epoch {
        return match accept {
            Generation::SameOrNewer => Step::Replace(view),
            Generation::Newer => Step::Distrust,
        };
    }
    let behind = match accept {
        Generation::SameOrNewer => view.generation < current.generation,
        Generation::Newer => view.generation <= current.generation,
    };
    if behind {
        Step::Keep
    } else {
        Step::Replace(view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CircuitState;

    fn view(epoch: u64, generation: u64) -> View {
        View {
            epoch,
            generation,
            state: CircuitState::Closed,
            open_until_ms: 0,
            forced_until_ms: None,
            clean: true,
        }
    }

    #[test]
    fn generations_compare_within_an_epoch_only() {
        use Generation::{Newer, SameOrNewer};
        let current = view(1, 13);
        assert_eq!(step(&current, view(1, 13), Newer), Step::Keep);
        assert_eq!(
            step(&current, view(1, 14), Newer),
            Step::Replace(view(1, 14))
        );
        assert_eq!(
            step(&current, view(1, 13), SameOrNewer),
            Step::Replace(view(1, 13))
        );
        assert_eq!(step(&current, view(1, 12), SameOrNewer), Step::Keep);
        assert_eq!(
            step(&current, view(2, 1), SameOrNewer),
            Step::Replace(view(2, 1))
        );
        assert_eq!(step(&current, view(2, 99), Newer), Step::Distrust);
        assert_eq!(
            step(&current, view(0, 14), Newer),
            Step::Replace(view(1, 14))
        );
        assert_eq!(step(&current, view(0, 2), Newer), Step::Keep);
    }
}
