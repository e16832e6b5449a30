//! Target `bio_builder`: gupio-bio's builder, iterators and split checked
//! against a reference model.
//!
//! The model keeps its own bvec table as (first byte's physical address,
//! origin, length) entries and applies the merge rule on physical
//! addresses, never on the crate's (page, offset) arithmetic; it also keeps
//! every accepted fragment, so iteration is checked both against the model's
//! table (exactly) and against the bytes the caller added (up to how they
//! were cut). It predicts every result, error values included, in the order
//! the crate documents its checks. Any disagreement panics: that is the
//! finding. Inputs never make the checks themselves panic.
//!
//! Input layout (a missing byte reads as 0):
//!
//! - header, 3 bytes:
//!   - `h0`: bits 0-1 page geometry (4, 16, 64, 4 KiB); bits 2-3 max_vecs
//!     (256, 1, 3, 8); bits 4-5 max_segment_size (`u32::MAX`, 1, 2, 16
//!     pages); bit 6 DMA alignment mask (511, 0); bit 7 logical block size
//!     (512, 4096);
//!   - `h1`: bits 0-1 operation (read, write, flush, discard); bits 2-3
//!     storage (`heapless::Vec` of 300, of 4, a 16-slot `BvecSlice`, a
//!     `&mut heapless::Vec` of 256);
//!   - `h2`: start sector: bit 7 set is `u64::MAX - (h2 & 0x7f)`, else `h2 * 8`.
//! - then operations until the input ends (at most [`MAX_OPS`]), an opcode
//!   byte (taken modulo 11) and its arguments:
//!   - 0 `add_page`: where, pick, origin, length (3 bytes), offset (3 bytes);
//!   - 1 `add_folio`: where, pick, order, origin, length (3), offset (3);
//!   - 2 `add_bvec`: where (4 is the no-page bvec), pick, origin, length (3),
//!     offset (3);
//!   - 3 `advance` and 4 `rewind`: amount (3 bytes);
//!   - 5 `split`: amount (3 bytes), then a byte of follow-ups on the part
//!     (bit 0 advance it by a block, bit 1 split it again, bit 2 rewind it);
//!   - 6 iterate and compare everything;
//!   - 7 `set_discard_size`: amount (3 bytes);
//!   - 8 `set_sector`: a sector byte as in the header;
//!   - 9 a standalone `BvecIter` over the table: a count byte, then that
//!     many (direction, amount (3 bytes)) steps at byte granularity;
//!   - 10 `validate`.
//!
//! A length, offset or amount is 3 bytes: a selector and a little-endian
//! 16-bit value `v`, mapped to interesting values (sector and page
//! multiples, raw bytes, zero, near `u32::MAX`, exactly the bytes left or
//! before the position) by the functions `length`, `offset` and `amount`. "where"
//! modes: 0 continue exactly where the last bvec ends, 1 the page where it
//! ends at a chosen offset, 2 a low frame `0x1000 + pick`, 3 a frame
//! `Pfn::MAX - pick` at the top of the encodable range.

use gupio_bio::{
    AddError, Added, Bio, BioError, BioLimits, BioOp, BioStatus, BioVec, BvecIter, BvecSlice,
    BvecStorage, Folio, FolioOrder, Origin, OriginSet, PageGeometry, Pfn, PfnError, Sector,
    SectorCount,
};

/// The most operations one input runs.
pub const MAX_OPS: usize = 320;

/// The most single-page pieces compared per iteration (a 4 GiB bvec of
/// 4 KiB pages has a million; the model and the crate are compared on the
/// first ones, and whole on segments).
const PIECE_LIMIT: usize = 2048;

/// Runs the operations in `data` against a bio and the model; panics on any
/// disagreement.
///
/// ```
/// // 4 KiB pages, a read over a heapless::Vec, sector 0; then a pinned
/// // 4 KiB page at frame 0x1000, the next page continuing it, and iterate.
/// let input = [
///     0, 0, 0, // header
///     0, 2, 0, 2, 1, 0, 0, 0, 0, 0, // add_page: low frame, pinned, a page at offset 0
///     0, 0, 0, 2, 1, 0, 0, 0, 0, 0, // add_page: where the last bvec ends
///     6, // iterate
/// ];
/// gupio_fuzz::bio_builder::run(&input);
/// ```
pub fn run(data: &[u8]) {
    let mut input = Input { data, at: 0 };
    let h0 = input.byte();
    let h1 = input.byte();
    let h2 = input.byte();
    let geometry = [
        PageGeometry::FOUR_KIB,
        PageGeometry::SIXTEEN_KIB,
        PageGeometry::SIXTY_FOUR_KIB,
        PageGeometry::FOUR_KIB,
    ][usize::from(h0 & 3)];
    let page = geometry.size_u32();
    let max_vecs = [256, 1, 3, 8][usize::from((h0 >> 2) & 3)];
    let max_segment_size = [u32::MAX, page, 2 * page, 16 * page][usize::from((h0 >> 4) & 3)];
    let dma_alignment = if h0 & 0x40 == 0 { 511 } else { 0 };
    let logical_block_size = if h0 & 0x80 == 0 { 512 } else { 4096 };
    let limits = BioLimits::new(geometry)
        .with_max_vecs(max_vecs)
        .and_then(|l| l.with_max_segment_size(max_segment_size))
        .and_then(|l| l.with_dma_alignment(dma_alignment))
        .and_then(|l| l.with_logical_block_size(logical_block_size))
        .unwrap_or_else(|e| panic!("valid limits refused: {e}"));
    let op = [BioOp::Read, BioOp::Write, BioOp::Flush, BioOp::Discard][usize::from(h1 & 3)];
    let sector = sector_from(h2);
    match (h1 >> 2) & 3 {
        0 => drive(
            heapless::Vec::<BioVec, 300>::new(),
            op,
            sector,
            limits,
            input,
        ),
        1 => drive(heapless::Vec::<BioVec, 4>::new(), op, sector, limits, input),
        2 => {
            let mut slots = [BioVec::NONE; 16];
            drive(BvecSlice::new(&mut slots), op, sector, limits, input);
        }
        _ => {
            let mut table = heapless::Vec::<BioVec, 256>::new();
            drive(&mut table, op, sector, limits, input);
        }
    }
}

/// The input cursor: a missing byte reads as 0.
struct Input<'a> {
    data: &'a [u8],
    at: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at = self.at.saturating_add(1);
        b
    }

    /// A selector byte and a little-endian 16-bit value.
    fn field(&mut self) -> (u8, u32) {
        let sel = self.byte();
        let lo = u32::from(self.byte());
        let hi = u32::from(self.byte());
        (sel, lo | hi << 8)
    }

    fn is_done(&self) -> bool {
        self.at >= self.data.len()
    }
}

/// A sector from one byte: bit 7 counts down from `u64::MAX`.
fn sector_from(b: u8) -> Sector {
    if b & 0x80 != 0 {
        Sector(u64::MAX - u64::from(b & 0x7f))
    } else {
        Sector(u64::from(b) * 8)
    }
}

/// A fragment length from a selector and a value (`page` bytes a page).
fn length(sel: u8, v: u32, page: u32) -> u32 {
    match sel % 8 {
        0 => 512 * (1 + v % 16),
        1 => page * (1 + v % 4),
        2 => page - 512 * (v % 4),
        3 => v,
        4 => 0,
        5 => u32::MAX - 511 - 512 * (v % 8),
        6 => v << 16 | v,
        _ => 512 * v,
    }
}

/// A fragment offset from a selector and a value.
fn offset(sel: u8, v: u32, page: u32) -> u32 {
    match sel % 4 {
        0 => 0,
        1 => 512 * (v % (page / 512)),
        2 => v,
        _ => v << 16 | v,
    }
}

/// An advance, rewind, split or discard amount in bytes, given the bytes
/// left (`size`) and before (`before`) the position.
fn amount(sel: u8, v: u32, size: u32, before: u32) -> u32 {
    match sel % 8 {
        0 => 512 * (v % 64),
        1 => v,
        2 => size,
        3 => size.wrapping_add(512),
        4 => before,
        5 => before.wrapping_add(512),
        6 => u32::MAX - 511,
        _ => 4096 * (v % 16),
    }
}

/// One bvec of the model's table.
#[derive(Clone, Copy, Debug)]
struct ModelVec {
    /// Physical address of the first byte.
    start: u128,
    origin: Origin,
    len: u32,
}

/// An iterator window in table bytes: `[pos, end)` at `sector`.
#[derive(Clone, Copy, Debug)]
struct Window {
    pos: u64,
    end: u64,
    sector: u64,
    /// How far a split part may rewind.
    advanced: u64,
}

/// What the crate is expected to hold.
struct Model {
    geometry: PageGeometry,
    limits: BioLimits,
    max_vecs: usize,
    op: BioOp,
    vecs: Vec<ModelVec>,
    /// Every accepted fragment, in order (they concatenate to the table).
    fragments: Vec<ModelVec>,
    /// Bytes in the table, or the discard range.
    total: u64,
    owner: Window,
}

impl Model {
    fn page(&self) -> u128 {
        u128::from(self.geometry.size_u64())
    }

    fn size(&self) -> u64 {
        self.owner.end - self.owner.pos
    }

    /// The physical address just past the last bvec.
    fn cursor(&self) -> u128 {
        self.vecs
            .last()
            .map_or(0x1000 * self.page(), |v| v.start + u128::from(v.len))
    }

    fn origins(&self) -> OriginSet {
        self.vecs
            .iter()
            .fold(OriginSet::empty(), |set, v| set | OriginSet::of(v.origin))
    }

    /// The expected outcome of adding `len` bytes at physical `start`
    /// (checks that come before it already passed), and the model updated
    /// on success.
    fn add_at(&mut self, start: u128, origin: Origin, len: u32) -> Result<Added, BioError> {
        let page = self.page();
        let in_page = u32::try_from(start % page).expect("below a page");
        let dma_alignment = self.limits.dma_alignment();
        if (in_page | len) & dma_alignment != 0 {
            return Err(BioError::Misaligned {
                offset: in_page,
                len,
                dma_alignment,
            });
        }
        let total = u32::try_from(self.total).expect("the model's total fits a u32");
        if total.checked_add(len).is_none() {
            return Err(BioError::SizeOverflow { size: total, len });
        }
        let max_segment_size = u64::from(self.limits.max_segment_size());
        let fragment = ModelVec { start, origin, len };
        if let Some(last) = self.vecs.last_mut() {
            let merged_len = u64::from(last.len) + u64::from(len);
            if last.start + u128::from(last.len) == start
                && last.origin == origin
                && merged_len <= max_segment_size
            {
                last.len = u32::try_from(merged_len).expect("within the segment size");
                self.fragments.push(fragment);
                self.total += u64::from(len);
                self.owner.end = self.total;
                let shared = start % page != 0;
                let pfn = pfn_of(start / page);
                return Ok(match (shared, origin) {
                    (true, Origin::Pinned) => Added::MergedDuplicatePin { pfn },
                    (true, Origin::Referenced) => Added::MergedDuplicateRef { pfn },
                    _ => Added::Merged,
                });
            }
        }
        if u64::from(len) > max_segment_size {
            return Err(BioError::SegmentTooLarge {
                len,
                max_segment_size: self.limits.max_segment_size(),
            });
        }
        if self.vecs.len() >= self.max_vecs {
            return Err(BioError::TooManyVecs {
                max_vecs: self.max_vecs,
            });
        }
        self.vecs.push(fragment);
        self.fragments.push(fragment);
        self.total += u64::from(len);
        self.owner.end = self.total;
        Ok(Added::NewVec)
    }

    /// The model's table as the crate's descriptors.
    fn table(&self) -> Vec<BioVec> {
        self.vecs.iter().map(|v| self.descriptor(*v)).collect()
    }

    fn descriptor(&self, v: ModelVec) -> BioVec {
        let page = self.page();
        let offset = u32::try_from(v.start % page).expect("below a page");
        BioVec::new(pfn_of(v.start / page), v.origin, v.len, offset)
    }

    /// Pieces of `entries` (concatenated) inside `[from, to)`: whole
    /// segments, or single-page pieces; at most `limit` of them.
    fn pieces(
        &self,
        entries: &[ModelVec],
        from: u64,
        to: u64,
        per_page: bool,
        limit: usize,
    ) -> Vec<BioVec> {
        let page = self.page();
        let mut out = Vec::new();
        let mut base = 0u64;
        for entry in entries {
            let (lo, hi) = (base, base + u64::from(entry.len));
            base = hi;
            let (s, e) = (lo.max(from), hi.min(to));
            if s >= e {
                continue;
            }
            let mut at = entry.start + u128::from(s - lo);
            let end = entry.start + u128::from(e - lo);
            while at < end && out.len() < limit {
                let take = if per_page {
                    (page - at % page).min(end - at)
                } else {
                    end - at
                };
                let piece = ModelVec {
                    start: at,
                    origin: entry.origin,
                    len: u32::try_from(take).expect("a piece fits a u32"),
                };
                out.push(self.descriptor(piece));
                at += take;
            }
            if out.len() >= limit {
                break;
            }
        }
        out
    }

    /// Single-page pieces of the table window, and whether they are all.
    fn page_pieces(&self, from: u64, to: u64) -> (Vec<BioVec>, bool) {
        let pieces = self.pieces(&self.vecs, from, to, true, PIECE_LIMIT + 1);
        let complete = pieces.len() <= PIECE_LIMIT;
        (pieces.into_iter().take(PIECE_LIMIT).collect(), complete)
    }
}

/// The frame number `raw`, which the model has already checked is
/// encodable.
fn pfn_of(raw: u128) -> Pfn {
    usize::try_from(raw)
        .ok()
        .and_then(|raw| Pfn::try_new(raw).ok())
        .unwrap_or_else(|| panic!("model produced an unencodable frame {raw:#x}"))
}

/// Pieces with contiguous neighbours in one page and of one origin joined.
fn canonical(pieces: &[BioVec]) -> Vec<(Pfn, Origin, u32, u32)> {
    let mut out: Vec<(Pfn, Origin, u32, u32)> = Vec::new();
    for p in pieces {
        let (pfn, origin) = p.decode().expect("a piece names a page");
        match out.last_mut() {
            Some(last) if last.0 == pfn && last.1 == origin && last.2 + last.3 == p.offset() => {
                last.3 += p.len();
            }
            _ => out.push((pfn, origin, p.offset(), p.len())),
        }
    }
    out
}

fn drive<S: BvecStorage>(
    storage: S,
    op: BioOp,
    sector: Sector,
    limits: BioLimits,
    mut input: Input<'_>,
) {
    let capacity = storage.capacity();
    let mut bio = Bio::new(storage, op, sector, limits);
    let mut model = Model {
        geometry: limits.geometry(),
        limits,
        max_vecs: limits.max_vecs().min(capacity),
        op,
        vecs: Vec::new(),
        fragments: Vec::new(),
        total: 0,
        owner: Window {
            pos: 0,
            end: 0,
            sector: sector.0,
            advanced: 0,
        },
    };
    check_state(&bio, &model);
    let mut ops = 0;
    while !input.is_done() && ops < MAX_OPS {
        ops += 1;
        match input.byte() % 11 {
            0 => add_page(&mut bio, &mut model, &mut input),
            1 => add_folio(&mut bio, &mut model, &mut input),
            2 => add_bvec(&mut bio, &mut model, &mut input),
            3 => advance(&mut bio, &mut model, &mut input),
            4 => rewind(&mut bio, &mut model, &mut input),
            5 => split(&bio, &mut model, &mut input),
            6 => check_iteration(&bio, &model),
            7 => set_discard_size(&mut bio, &mut model, &mut input),
            8 => {
                let sector = sector_from(input.byte());
                bio.set_sector(sector);
                model.owner.sector = sector.0;
            }
            9 => standalone_iter(&bio, &model, &mut input),
            _ => assert_eq!(bio.validate(), expected_validate(&model), "validate"),
        }
        check_state(&bio, &model);
    }
    check_iteration(&bio, &model);
    bio.set_status(BioStatus::IoError);
    assert_eq!(bio.status(), BioStatus::IoError);
}

/// The page an add starts on and its offset, from the "where" mode.
fn place(model: &Model, mode: u8, pick: u8, chosen_offset: u32) -> (u128, u32) {
    let page = model.page();
    let cursor = model.cursor();
    match mode % 4 {
        0 => (
            cursor / page,
            u32::try_from(cursor % page).expect("below a page"),
        ),
        1 => (cursor / page, chosen_offset),
        2 => (0x1000 + u128::from(pick), chosen_offset),
        _ => (
            u128::from(u64::try_from(Pfn::MAX.get()).expect("usize fits u64")) - u128::from(pick),
            chosen_offset,
        ),
    }
}

/// The frame, when it is encodable (the cursor can run off the top).
fn encodable(raw: u128) -> Option<Pfn> {
    usize::try_from(raw)
        .ok()
        .and_then(|raw| Pfn::try_new(raw).ok())
}

fn compare_add(
    what: &str,
    got: Result<Added, AddError>,
    want: Result<Added, BioError>,
    rejected: BioVec,
) {
    match (got, want) {
        (Ok(got), Ok(want)) => assert_eq!(got, want, "{what}: outcome"),
        (Err(got), Err(want)) => {
            assert_eq!(got.error(), want, "{what}: error");
            assert_eq!(got.rejected(), rejected, "{what}: the fragment handed back");
        }
        (got, want) => panic!("{what}: got {got:?}, model expects {want:?}"),
    }
}

fn add_page<S: BvecStorage>(bio: &mut Bio<S>, model: &mut Model, input: &mut Input<'_>) {
    let (mode, pick) = (input.byte(), input.byte());
    let origin = Origin::ALL[usize::from(input.byte() % 3)];
    let page = model.geometry.size_u32();
    let (sel, v) = input.field();
    let len = length(sel, v, page);
    let (sel, v) = input.field();
    let (frame, offset) = place(model, mode, pick, offset(sel, v, page));
    let Some(pfn) = encodable(frame) else {
        return;
    };
    let want = if !model.op.has_data() {
        Err(BioError::OpMismatch { op: model.op })
    } else if len == 0 {
        Err(BioError::ZeroLength)
    } else if u64::from(offset) + u64::from(len) > u64::from(page) {
        Err(BioError::PastPageRun {
            offset,
            len,
            run_bytes: u64::from(page),
        })
    } else {
        model.add_at(frame * model.page() + u128::from(offset), origin, len)
    };
    let got = bio.add_page(pfn, len, offset, origin);
    compare_add("add_page", got, want, BioVec::new(pfn, origin, len, offset));
}

fn add_folio<S: BvecStorage>(bio: &mut Bio<S>, model: &mut Model, input: &mut Input<'_>) {
    let (mode, pick, order_byte) = (input.byte(), input.byte(), input.byte());
    let origin = Origin::ALL[usize::from(input.byte() % 3)];
    let page = model.geometry.size_u32();
    let (len_sel, len_v) = input.field();
    let (off_sel, off_v) = input.field();
    let order = match order_byte {
        0xff => 200,
        b if b & 0x80 != 0 => 16 + u32::from(b & 7),
        b => u32::from(b % 10),
    };
    let pages = 1u128.checked_shl(order).unwrap_or(0);
    let top = u128::from(u64::try_from(Pfn::MAX.get()).expect("usize fits u64")) + 1;
    let cursor = model.cursor();
    let head = match mode % 4 {
        0 => (cursor / model.page()) & !pages.wrapping_sub(1),
        1 => (0x1000 + 64 * u128::from(pick)) & !pages.wrapping_sub(1),
        2 => top.saturating_sub(pages),
        _ => 0x1001 + u128::from(pick),
    };
    let Some(head_pfn) = encodable(head) else {
        return;
    };
    let order_ok = order <= FolioOrder::MAX.get();
    let folio_ok = order_ok && pages != 0 && head % pages == 0 && head + pages - 1 < top;
    let folio = FolioOrder::try_new(order).and_then(|o| Folio::new(head_pfn, o));
    if !folio_ok {
        let want = if order_ok {
            PfnError::UnalignedFolio {
                head: head_pfn.get(),
                order,
            }
        } else {
            PfnError::OrderTooLarge { order }
        };
        assert_eq!(folio, Err(want), "Folio::new({head:#x}, {order})");
        return;
    }
    let folio = folio.unwrap_or_else(|e| panic!("valid folio {head:#x}/{order} refused: {e}"));
    let len = length(len_sel, len_v, page);
    let offset = if off_sel % 5 == 4 {
        // Continue exactly at the cursor inside this folio, if it is there.
        u32::try_from(cursor.wrapping_sub(head * model.page())).unwrap_or(0)
    } else {
        offset(off_sel, off_v, page)
    };
    let run_bytes = folio.size(model.geometry);
    let want = if !model.op.has_data() {
        Err(BioError::OpMismatch { op: model.op })
    } else if len == 0 {
        Err(BioError::ZeroLength)
    } else if u64::from(offset) + u64::from(len) > run_bytes {
        Err(BioError::PastPageRun {
            offset,
            len,
            run_bytes,
        })
    } else {
        model.add_at(head * model.page() + u128::from(offset), origin, len)
    };
    let got = bio.add_folio(folio, len, offset, origin);
    compare_add(
        "add_folio",
        got,
        want,
        BioVec::new(head_pfn, origin, len, offset),
    );
}

fn add_bvec<S: BvecStorage>(bio: &mut Bio<S>, model: &mut Model, input: &mut Input<'_>) {
    let (mode, pick) = (input.byte(), input.byte());
    let origin = Origin::ALL[usize::from(input.byte() % 3)];
    let page = model.geometry.size_u32();
    let (sel, v) = input.field();
    let len = length(sel, v, page);
    let (sel, v) = input.field();
    let bvec = if mode % 5 == 4 {
        BioVec::NONE
    } else {
        let (frame, offset) = place(model, mode, pick, offset(sel, v, page));
        let Some(pfn) = encodable(frame) else {
            return;
        };
        BioVec::new(pfn, origin, len, offset)
    };
    let want = if !model.op.has_data() {
        Err(BioError::OpMismatch { op: model.op })
    } else if let Some((pfn, origin)) = bvec.decode() {
        let page_bytes = model.page();
        let start = u128::from(u64::try_from(pfn.get()).expect("usize fits u64")) * page_bytes
            + u128::from(bvec.offset());
        let top = u128::from(u64::try_from(Pfn::MAX.get()).expect("usize fits u64"));
        if bvec.is_empty() {
            Err(BioError::ZeroLength)
        } else if (start + u128::from(bvec.len()) - 1) / page_bytes > top {
            let end = u64::from(bvec.offset()) + u64::from(bvec.len());
            Err(BioError::PfnOutOfRange {
                pfn: pfn.get(),
                pages: ((end - 1) >> model.geometry.shift()) + 1,
            })
        } else {
            model.add_at(start, origin, bvec.len())
        }
    } else {
        Err(BioError::NoPage)
    };
    let got = bio.add_bvec(bvec);
    compare_add("add_bvec", got, want, bvec);
}

/// The expected result of advancing a window by `bytes`, and the window
/// after it.
fn advance_window(window: &mut Window, bytes: u32) -> Result<(), BioError> {
    if bytes % 512 != 0 {
        return Err(BioError::NotSectorMultiple { bytes });
    }
    let size = window.end - window.pos;
    let moved = u64::from(bytes).min(size);
    let Some(sector) = window.sector.checked_add(moved / 512) else {
        return Err(BioError::SectorOverflow {
            sector: window.sector,
            sectors: u32::try_from(moved / 512).expect("a u32 of bytes"),
        });
    };
    window.sector = sector;
    window.pos += moved;
    window.advanced += moved;
    if u64::from(bytes) > size {
        return Err(BioError::AdvancePastEnd {
            requested: bytes,
            remaining: u32::try_from(size).expect("a u32 of bytes"),
        });
    }
    Ok(())
}

/// The expected result of rewinding a window by at most `limit` bytes.
fn rewind_window(window: &mut Window, bytes: u32, limit: u64) -> Result<(), BioError> {
    if bytes % 512 != 0 {
        return Err(BioError::NotSectorMultiple { bytes });
    }
    let sectors = bytes / 512;
    let Some(sector) = window.sector.checked_sub(u64::from(sectors)) else {
        return Err(BioError::SectorOverflow {
            sector: window.sector,
            sectors,
        });
    };
    if u64::from(bytes) > limit {
        return Err(BioError::RewindPastStart {
            requested: bytes,
            available: u32::try_from(limit).expect("a u32 of bytes"),
        });
    }
    window.sector = sector;
    window.pos -= u64::from(bytes);
    window.advanced = window.advanced.saturating_sub(u64::from(bytes));
    Ok(())
}

fn split_point(sel: u8, v: u32, window: &Window) -> u32 {
    let size = u32::try_from(window.end - window.pos).expect("a u32 of bytes");
    let before = u32::try_from(window.pos).expect("a u32 of bytes");
    amount(sel, v, size, before) / 512
}

/// Model of a split: `Ok(front)` with `window` advanced past it.
fn split_window(window: &mut Window, sectors: u32, block_sectors: u32) -> Result<Window, BioError> {
    let bio_sectors = u32::try_from((window.end - window.pos) / 512).expect("a u32 of sectors");
    if sectors == 0 || sectors >= bio_sectors {
        return Err(BioError::SplitOutOfRange {
            sectors,
            bio_sectors,
        });
    }
    if sectors % block_sectors != 0 {
        return Err(BioError::SplitUnaligned {
            sectors,
            block_sectors,
        });
    }
    let Some(rest_sector) = window.sector.checked_add(u64::from(sectors)) else {
        return Err(BioError::SectorOverflow {
            sector: window.sector,
            sectors,
        });
    };
    let bytes = u64::from(sectors) * 512;
    let front = Window {
        pos: window.pos,
        end: window.pos + bytes,
        sector: window.sector,
        advanced: 0,
    };
    window.pos += bytes;
    window.sector = rest_sector;
    window.advanced = 0;
    Ok(front)
}

fn advance<S: BvecStorage>(bio: &mut Bio<S>, model: &mut Model, input: &mut Input<'_>) {
    let (sel, v) = input.field();
    let size = u32::try_from(model.size()).expect("a u32 of bytes");
    let before = u32::try_from(model.owner.pos).expect("a u32 of bytes");
    let bytes = amount(sel, v, size, before);
    let want = advance_window(&mut model.owner, bytes);
    assert_eq!(bio.advance(bytes), want, "advance({bytes})");
}

fn rewind<S: BvecStorage>(bio: &mut Bio<S>, model: &mut Model, input: &mut Input<'_>) {
    let (sel, v) = input.field();
    let size = u32::try_from(model.size()).expect("a u32 of bytes");
    let before = u32::try_from(model.owner.pos).expect("a u32 of bytes");
    let bytes = amount(sel, v, size, before);
    let limit = model.owner.pos;
    let want = rewind_window(&mut model.owner, bytes, limit);
    assert_eq!(bio.rewind(bytes), want, "rewind({bytes})");
}

fn set_discard_size<S: BvecStorage>(bio: &mut Bio<S>, model: &mut Model, input: &mut Input<'_>) {
    let (sel, v) = input.field();
    let bytes = amount(sel, v, 0, 0);
    let want = if model.op == BioOp::Discard {
        model.total = u64::from(bytes);
        model.owner.pos = 0;
        model.owner.end = model.total;
        Ok(())
    } else {
        Err(BioError::OpMismatch { op: model.op })
    };
    assert_eq!(
        bio.set_discard_size(bytes),
        want,
        "set_discard_size({bytes})"
    );
}

fn expected_validate(model: &Model) -> Result<(), BioError> {
    let size = u32::try_from(model.size()).expect("a u32 of bytes");
    if model.op != BioOp::Flush && size == 0 {
        return Err(BioError::ZeroLength);
    }
    let logical_block_size = model.limits.logical_block_size();
    if size % logical_block_size != 0 {
        return Err(BioError::NotBlockMultiple {
            bytes: size,
            logical_block_size,
        });
    }
    if model
        .owner
        .sector
        .checked_add(u64::from(size / 512))
        .is_none()
    {
        return Err(BioError::SectorOverflow {
            sector: model.owner.sector,
            sectors: size / 512,
        });
    }
    Ok(())
}

fn split<S: BvecStorage>(bio: &Bio<S>, model: &mut Model, input: &mut Input<'_>) {
    let (sel, v) = input.field();
    let follow = input.byte();
    let sectors = split_point(sel, v, &model.owner);
    let block = model.limits.block_sectors();
    let want = split_window(&mut model.owner, sectors, block);
    let got = bio.split(SectorCount(sectors));
    let (mut part, mut front) = match (got, want) {
        (Ok(part), Ok(front)) => (part, front),
        (Err(got), Err(want)) => {
            assert_eq!(got, want, "split({sectors})");
            return;
        }
        (got, want) => panic!("split({sectors}): got {got:?}, model expects {want:?}"),
    };
    assert!(!part.is_owner());
    check_part(model, &part, &front, "split part");
    // The rest of the owner moved past it.
    assert_eq!(
        bio.sector(),
        Sector(model.owner.sector),
        "owner sector after split"
    );
    assert_eq!(
        u64::from(bio.size()),
        model.size(),
        "owner size after split"
    );
    if follow & 1 != 0 {
        let bytes = model.limits.logical_block_size();
        let want = advance_window(&mut front, bytes);
        assert_eq!(part.advance(bytes), want, "part advance");
        check_part(model, &part, &front, "advanced part");
    }
    if follow & 2 != 0 {
        let want = split_window(&mut front, block, block);
        match (part.split(SectorCount(block)), want) {
            (Ok(inner), Ok(inner_model)) => {
                check_part(model, &inner, &inner_model, "inner part");
                check_part(model, &part, &front, "rest of part");
            }
            (Err(got), Err(want)) => assert_eq!(got, want, "part split"),
            (got, want) => panic!("part split: got {got:?}, model expects {want:?}"),
        }
    }
    if follow & 4 != 0 {
        let bytes = 512;
        let limit = front.advanced;
        let want = rewind_window(&mut front, bytes, limit);
        assert_eq!(part.rewind(bytes), want, "part rewind");
        check_part(model, &part, &front, "rewound part");
    }
}

fn check_part(model: &Model, part: &gupio_bio::BioSplit<'_>, window: &Window, what: &str) {
    assert_eq!(part.sector(), Sector(window.sector), "{what}: sector");
    assert_eq!(
        u64::from(part.size()),
        window.end - window.pos,
        "{what}: size"
    );
    assert_eq!(part.op(), model.op, "{what}: op");
    let (want, _) = model.page_pieces(window.pos, window.end);
    let got: Vec<BioVec> = part.pages().take(PIECE_LIMIT).collect();
    assert_eq!(got, want, "{what}: pages");
    let want = model.pieces(&model.vecs, window.pos, window.end, false, usize::MAX);
    let got: Vec<BioVec> = part.segments().collect();
    assert_eq!(got, want, "{what}: segments");
}

fn standalone_iter<S: BvecStorage>(bio: &Bio<S>, model: &Model, input: &mut Input<'_>) {
    let steps = input.byte() % 8;
    let table = bio.bvecs();
    let total = if model.op.has_data() { model.total } else { 0 };
    let mut iter = BvecIter::over(table, Sector(0)).unwrap_or_else(|e| panic!("over: {e}"));
    let mut pos = 0u64;
    assert_eq!(u64::from(iter.size()), total, "standalone size");
    for _ in 0..steps {
        let dir = input.byte();
        let (sel, v) = input.field();
        let size = u32::try_from(total - pos).expect("a u32 of bytes");
        let before = u32::try_from(pos).expect("a u32 of bytes");
        let bytes = amount(sel, v, size, before);
        if dir & 1 == 0 {
            let want = if u64::from(bytes) > total - pos {
                let remaining = size;
                pos = total;
                Err(BioError::AdvancePastEnd {
                    requested: bytes,
                    remaining,
                })
            } else {
                pos += u64::from(bytes);
                Ok(())
            };
            assert_eq!(
                iter.advance(table, bytes),
                want,
                "standalone advance({bytes})"
            );
        } else {
            let want = if u64::from(bytes) > pos {
                Err(BioError::RewindPastStart {
                    requested: bytes,
                    available: before,
                })
            } else {
                pos -= u64::from(bytes);
                Ok(())
            };
            assert_eq!(
                iter.rewind(table, bytes),
                want,
                "standalone rewind({bytes})"
            );
        }
        assert_eq!(u64::from(iter.size()), total - pos, "standalone size");
        let segment = model.pieces(&model.vecs, pos, total, false, 1);
        assert_eq!(
            iter.segment(table, model.geometry),
            segment.first().copied(),
            "segment at {pos}"
        );
        let page = model.pieces(&model.vecs, pos, total, true, 1);
        assert_eq!(
            iter.page(table, model.geometry),
            page.first().copied(),
            "page at {pos}"
        );
    }
}

/// Cheap state checks after every operation.
fn check_state<S: BvecStorage>(bio: &Bio<S>, model: &Model) {
    assert_eq!(bio.vcnt(), model.vecs.len(), "vcnt");
    assert_eq!(bio.bvecs(), &model.table()[..], "bvec table");
    assert_eq!(u64::from(bio.size()), model.size(), "size");
    assert_eq!(bio.sector(), Sector(model.owner.sector), "sector");
    assert_eq!(bio.origins(), model.origins(), "origins");
    assert_eq!(
        bio.needs_release(),
        model.origins().needs_release(),
        "needs_release"
    );
    assert_eq!(bio.max_vecs(), model.max_vecs, "max_vecs");
    assert_eq!(bio.is_full(), model.vecs.len() >= model.max_vecs, "is_full");
    assert!(bio.is_owner());
}

/// Full iteration checks: window pages and segments, the whole table, and
/// the bytes as added.
fn check_iteration<S: BvecStorage>(bio: &Bio<S>, model: &Model) {
    let (from, to) = (model.owner.pos, model.owner.end);
    let page = model.geometry.size_u32();
    let (want, complete) = if model.op.has_data() {
        model.page_pieces(from, to)
    } else {
        (Vec::new(), true)
    };
    let got: Vec<BioVec> = bio.pages().take(PIECE_LIMIT).collect();
    assert_eq!(got, want, "pages of the window");
    for p in &got {
        assert!(
            !p.is_empty() && p.offset() + p.len() <= page,
            "piece inside a page: {p:?}"
        );
    }
    if complete && model.op.has_data() {
        let added = model.pieces(&model.fragments, from, to, true, usize::MAX);
        assert_eq!(
            canonical(&got),
            canonical(&added),
            "pages against the bytes added"
        );
    }
    let want = if model.op.has_data() {
        model.pieces(&model.vecs, from, to, false, usize::MAX)
    } else {
        Vec::new()
    };
    let got: Vec<BioVec> = bio.segments().collect();
    assert_eq!(got, want, "segments of the window");
    for s in &got {
        assert!(s.offset() < page, "segment offset below a page: {s:?}");
    }
    let all_to = if model.op.has_data() { model.total } else { 0 };
    let (want, _) = model.page_pieces(0, all_to);
    let got: Vec<BioVec> = bio.all_pages().take(PIECE_LIMIT).collect();
    assert_eq!(got, want, "all pages");
}

#[cfg(test)]
mod tests;
