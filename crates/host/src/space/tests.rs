use super::*;

#[test]
fn only_a_shared_file_mapping_is_dirty_tracked() {
    let shared = MapKind::SharedFile {
        file: FileId(0),
        first_index: 0,
    };
    let read_only = MapKind::ReadOnlyFile {
        file: FileId(0),
        first_index: 0,
    };
    assert!(shared.is_dirty_tracked());
    assert!(!MapKind::Anonymous.is_dirty_tracked());
    assert!(!MapKind::ZeroPage.is_dirty_tracked());
    assert!(!read_only.is_dirty_tracked());
}

#[test]
fn gup_is_told_the_kind_of_each_mapping() {
    assert_eq!(MapKind::Anonymous.gup_kind(), MappingKind::Anonymous);
    assert_eq!(MapKind::ZeroPage.gup_kind(), MappingKind::Anonymous);
    let shared = MapKind::SharedFile {
        file: FileId(1),
        first_index: 2,
    };
    assert_eq!(
        shared.gup_kind(),
        MappingKind::SharedFile {
            dirty_tracked: true
        }
    );
    let read_only = MapKind::ReadOnlyFile {
        file: FileId(1),
        first_index: 2,
    };
    assert_eq!(read_only.gup_kind(), MappingKind::ReadOnly);
}
