use super::*;

#[test]
fn every_limit_is_validated_with_its_name_and_value() {
    let l = BioLimits::new(PageGeometry::SIXTEEN_KIB);
    let bad = |limit, value| Err(BioError::InvalidLimit { limit, value });
    assert_eq!(l.with_max_vecs(0), bad(Limit::MaxVecs, 0));
    assert_eq!(l.with_max_vecs(257), bad(Limit::MaxVecs, 257));
    assert_eq!(
        l.with_max_segment_size(16383),
        bad(Limit::MaxSegmentSize, 16383)
    );
    assert_eq!(
        l.with_logical_block_size(256),
        bad(Limit::LogicalBlockSize, 256)
    );
    assert_eq!(
        l.with_logical_block_size(32768),
        bad(Limit::LogicalBlockSize, 32768)
    );
    assert_eq!(
        l.with_logical_block_size(1536),
        bad(Limit::LogicalBlockSize, 1536)
    );
    assert_eq!(l.with_dma_alignment(16384), bad(Limit::DmaAlignment, 16384));
    assert_eq!(
        l.with_dma_alignment(u32::MAX),
        bad(Limit::DmaAlignment, u64::from(u32::MAX))
    );
    assert_eq!(l.with_dma_alignment(5), bad(Limit::DmaAlignment, 5));
}

#[test]
fn valid_limits_are_stored() {
    let l = BioLimits::new(PageGeometry::SIXTY_FOUR_KIB)
        .with_max_vecs(1)
        .and_then(|l| l.with_max_segment_size(65536))
        .and_then(|l| l.with_logical_block_size(65536))
        .and_then(|l| l.with_dma_alignment(0))
        .unwrap();
    assert_eq!(
        (
            l.max_vecs(),
            l.max_segment_size(),
            l.logical_block_size(),
            l.block_sectors(),
            l.dma_alignment()
        ),
        (1, 65536, 65536, 128, 0)
    );
    assert_eq!(
        l.with_dma_alignment(65535).map(|l| l.dma_alignment()),
        Ok(65535)
    );
}

#[test]
fn defaults_are_linux_s() {
    let l = BioLimits::default();
    assert_eq!(l, BioLimits::new(PageGeometry::FOUR_KIB));
    assert_eq!(l.geometry(), PageGeometry::FOUR_KIB);
    assert_eq!(
        (l.max_vecs(), l.max_segment_size()),
        (BIO_MAX_VECS, u32::MAX)
    );
    assert_eq!(
        (l.logical_block_size(), l.block_sectors(), l.dma_alignment()),
        (512, 1, 511)
    );
    assert_eq!(BIO_MAX_VECS, 256);
    let g = PageGeometry::SIXTY_FOUR_KIB;
    assert_eq!(BioLimits::new(g).geometry(), g);
}

#[test]
fn limits_are_accepted_up_to_their_edges() {
    let l = BioLimits::default();
    assert_eq!(l.with_max_vecs(256).map(|l| l.max_vecs()), Ok(256));
    assert_eq!(
        l.with_max_segment_size(4096).map(|l| l.max_segment_size()),
        Ok(4096)
    );
    assert_eq!(
        l.with_max_segment_size(4095),
        Err(BioError::InvalidLimit {
            limit: Limit::MaxSegmentSize,
            value: 4095
        })
    );
    assert_eq!(
        l.with_logical_block_size(4096).map(|l| l.block_sectors()),
        Ok(8)
    );
    assert_eq!(
        l.with_logical_block_size(2048).map(|l| l.block_sectors()),
        Ok(4)
    );
    assert!(l.with_logical_block_size(8192).is_err());
    assert!(l.with_logical_block_size(1000).is_err());
    assert_eq!(l.with_dma_alignment(3).map(|l| l.dma_alignment()), Ok(3));
    assert_eq!(
        l.with_dma_alignment(4),
        Err(BioError::InvalidLimit {
            limit: Limit::DmaAlignment,
            value: 4
        })
    );
}
