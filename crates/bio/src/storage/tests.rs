use super::*;
use gupio_pfn::{Origin, Pfn};

fn bv(pfn: usize) -> BioVec {
    BioVec::new(Pfn::new(pfn), Origin::Referenced, 512, 0)
}

fn fill<S: BvecStorage>(mut s: S) -> S {
    for i in 0..s.capacity() {
        assert_eq!(s.push(bv(i)), Ok(()));
    }
    assert_eq!(s.push(bv(99)), Err(bv(99)));
    s
}

#[test]
fn slice_storage_fills_to_the_slice_length_and_clears() {
    let mut backing = [BioVec::NONE; 3];
    let mut s = fill(BvecSlice::new(&mut backing));
    assert_eq!(s.as_slice(), &[bv(0), bv(1), bv(2)]);
    s.as_mut_slice()[1] = BioVec::NONE;
    s.clear();
    assert!(s.is_empty());
    assert_eq!(backing[1], BioVec::NONE);
}

#[test]
fn heapless_storage_and_references_behave_alike() {
    let v = fill(heapless::Vec::<BioVec, 4>::new());
    assert_eq!(BvecStorage::len(&v), 4);
    let mut v2 = heapless::Vec::<BioVec, 2>::new();
    let r = fill(&mut v2);
    assert_eq!(r.as_slice(), &[bv(0), bv(1)]);
    let mut backing = [BioVec::NONE; 0];
    let empty = fill(BvecSlice::from(&mut backing[..]));
    assert_eq!(empty.capacity(), 0);
}

#[test]
fn a_slice_table_starts_empty_whatever_the_slots_hold() {
    let mut backing = [bv(7); 3];
    let s = BvecSlice::new(&mut backing);
    assert_eq!((s.len(), s.capacity()), (0, 3));
    assert!(s.is_empty() && s.as_slice().is_empty());
}
