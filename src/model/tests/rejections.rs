//! `total_rejections`: every rejection, in any state, and nothing else.

use super::*;

#[test]
fn every_rejection_in_any_state_increments_total_rejections_and_no_grant_does() {
    let mut c = Circuit::new();
    c.trip(T0);

    c.reject(T0 + 1);
    assert_eq!(c.s.total_rejections, 1, "open");

    let (at, _) = c.half_open();
    c.grant(at);
    c.grant(at);
    c.reject(at);
    c.reject(at + 1);
    assert_eq!(c.s.total_rejections, 3, "half_open");

    c.force(at + 2, ForceMode::Open, None);
    c.reject(at + 3);
    assert_eq!(c.s.total_rejections, 4, "forced_open");

    c.force(at + 4, ForceMode::Closed, None);
    c.grant(at + 5);
    c.force(at + 6, ForceMode::Auto, None);
    c.grant(at + 7);
    assert_eq!(
        c.s.total_rejections, 4,
        "grants and forces count no rejection"
    );
}
