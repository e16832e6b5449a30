use super::*;
use gupio_pfn::Pfn;
use gupio_pin::Folio;
use gupio_pin::{FolioOrder, PageCounters};

#[test]
fn constant_policy_answers_itself_on_every_attempt() {
    let c = PageCounters::new();
    let folio = FolioRef::new(Folio::single(Pfn::new(0)), &c);
    for action in [PinnedAction::Bounce, PinnedAction::Skip, PinnedAction::Wait] {
        for attempt in [Attempt::First, Attempt::AfterWait] {
            assert_eq!(action.action(folio, attempt), action);
        }
    }
}

#[test]
fn closure_policy_sees_the_folio_and_the_attempt() {
    let c = PageCounters::new();
    let order = FolioOrder::try_new(4).unwrap();
    let large = FolioRef::new(Folio::new(Pfn::new(16), order).unwrap(), &c);
    let policy = |folio: FolioRef<'_>, attempt: Attempt| match (folio.nr_pages(), attempt) {
        (16, Attempt::First) => PinnedAction::Wait,
        (16, Attempt::AfterWait) => PinnedAction::Bounce,
        _ => PinnedAction::Skip,
    };
    assert_eq!(policy.action(large, Attempt::First), PinnedAction::Wait);
    assert_eq!(
        policy.action(large, Attempt::AfterWait),
        PinnedAction::Bounce
    );
    let small = FolioRef::new(Folio::single(Pfn::new(0)), &c);
    assert_eq!(policy.action(small, Attempt::First), PinnedAction::Skip);
}
