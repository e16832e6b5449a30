//! Direct I/O on `DIRECT.BIN`'s page-cache folios while writeback runs:
//! the mapped write, then the read into the mapped folios.

use core::ops::Range;

use embedded_sdmmc::DirEntry;
use gupio::bio::{Bio, BioOp, BioVec, BvecSlice, Origin, Sector as BioSector};
use gupio::pfn::Pfn;
use gupio::pin::{GupFlags, MemoryMap, PageFlags, UserAddr};
use gupio::release::{add_user_range, Completion, SubmittedBio};
use gupio::writeback::PinnedAction;

use crate::mem::PAGE_SIZE;
use crate::pagecache::{gupio_error, SECTORS_PER_PAGE};
use crate::userspace::UserSpace;

use super::contents::{mapped_byte, DIRECT_LEN, MAPPED_PAGES, READ_LEN, READ_PAGES};
use super::error::{cache_error, FilesError};
use super::fat::{first_cluster, Geometry};
use super::{Files, BIO_VECS};

impl Files<'_, '_, '_> {
    /// The disk pages of the first `count` clusters of the file at `entry`,
    /// checked contiguous.
    pub(super) fn file_pages(
        &self,
        geometry: &Geometry,
        entry: &DirEntry,
        count: usize,
    ) -> Result<Range<u64>, FilesError> {
        const STEP: &str = "direct I/O";
        if (entry.size as usize).div_ceil(PAGE_SIZE) < count {
            return Err(FilesError::Check(STEP, "a file is shorter than expected"));
        }
        let first = first_cluster(self.cache, entry)?;
        let mut cluster = first;
        for index in 1..count {
            let next = geometry
                .next(self.cache, cluster)
                .map_err(cache_error(STEP))?;
            if next != cluster + 1 {
                println!(
                    "  {STEP}: cluster {index} of {} is {next:#x}, after {cluster:#x}",
                    entry.name
                );
                return Err(FilesError::Check(STEP, "a file is not contiguous"));
            }
            cluster = next;
        }
        let start = geometry.cluster_sector(first) / SECTORS_PER_PAGE;
        Ok(start..start + count as u64)
    }

    /// Step 2: mmap, direct write, writeback with bouncing while it is in flight.
    pub(super) fn direct_io(&mut self, pages: Range<u64>) -> Result<(), FilesError> {
        const STEP: &str = "direct I/O";
        let cache_err = cache_error(STEP);
        let user = |error| FilesError::User(STEP, error);
        let mapped = pages.start..pages.start + MAPPED_PAGES as u64;
        let target = mapped.end..pages.end;

        // The process maps the file's first half (shared) and stores through it.
        let folios: [Pfn; MAPPED_PAGES] = self.map_file(STEP, mapped.clone())?;
        self.space
            .fill(UserSpace::page_addr(0), DIRECT_LEN, mapped_byte)
            .map_err(user)?;
        // The stores through a shared writable mapping dirty the folios.
        for &pfn in &folios {
            if let Some(counters) = self.map.counters(pfn) {
                counters.set_flags(PageFlags::DIRTY);
            }
        }

        // O_DIRECT write of the buffer to the second half: the cached pages
        // there are written back and dropped first.
        let before = self
            .cache
            .writeback_pages(target.clone(), &PinnedAction::Wait);
        before
            .into_result()
            .map_err(|error| FilesError::Writeback(STEP, error))?;
        self.cache.invalidate(target.clone()).map_err(&cache_err)?;

        let mut table = [BioVec::NONE; BIO_VECS];
        // The device only reads the buffer: a read pin.
        let (completion, bio, pinned) = self.user_bio(
            STEP,
            &mut table,
            BioOp::Write,
            target.start,
            DIRECT_LEN,
            GupFlags::empty(),
        )?;
        self.summary.direct_pinned = pinned;
        let submitted = self.submit(STEP, bio)?;

        // In flight: the file's cached pages are pinned; writeback bounces them.
        let pinned = folios
            .iter()
            .all(|&pfn| self.tracker.maybe_dma_pinned(pfn).unwrap_or(false));
        let during = self
            .cache
            .writeback_pages(pages.clone(), &PinnedAction::Bounce);
        let still_dirty = folios.iter().all(|&pfn| self.cache.is_dirty(pfn));
        let protected = folios.iter().enumerate().all(|(index, _)| {
            matches!(
                self.space.pte(UserSpace::page_addr(index)),
                crate::userspace::Pte::Present {
                    writable: false,
                    ..
                }
            )
        });

        let released = self.cache.finish(&completion, submitted, false);
        let unmapped = self.space.unmap_all(&self.tracker).map_err(user);
        let released = released.map_err(&cache_err)?;
        unmapped?;
        self.summary.bounced_in_flight = during.counts.bounced;
        if !pinned {
            return Err(FilesError::Check(
                STEP,
                "a page in flight does not read as maybe DMA-pinned",
            ));
        }
        if !during.is_ok() || during.counts.bounced != MAPPED_PAGES {
            return Err(FilesError::Count(
                STEP,
                "folios bounced in flight",
                during.counts.bounced,
                MAPPED_PAGES,
            ));
        }
        if !still_dirty || !protected {
            return Err(FilesError::Check(
                STEP,
                "a bounced folio was cleaned, or its mapping left writable",
            ));
        }
        if released.unpinned != MAPPED_PAGES {
            return Err(FilesError::Count(
                STEP,
                "pages unpinned",
                released.unpinned,
                MAPPED_PAGES,
            ));
        }
        println!(
            "  {STEP}: DIRECT.BIN at disk pages {}..{}: the process maps its first half (disk pages {}..{}) and \
             stores {DIRECT_LEN} bytes; an O_DIRECT write of that buffer to the second half (disk pages {}..{}) \
             pins the {} page-cache folios; writeback with \
             Bounce meanwhile: {} bounced (still dirty, mappings write-protected), {} clean; released {} unpinned",
            pages.start,
            pages.end,
            mapped.start,
            mapped.end,
            target.start,
            target.end,
            self.summary.direct_pinned,
            during.counts.bounced,
            during.counts.clean,
            released.unpinned
        );
        Ok(())
    }

    /// Step 2b: a direct read into the page cache under writeback. The
    /// process maps the start of `DIRECT.BIN` again and reads the start of
    /// `NOTES.TXT` into it with `O_DIRECT`: write pins on the file's
    /// page-cache folios, dirtied before submission, the device writing
    /// into them. Writeback meanwhile (Bounce) must leave them dirty, so the
    /// next integrity pass writes what the device put there.
    pub(super) fn direct_read(
        &mut self,
        direct: Range<u64>,
        source: Range<u64>,
    ) -> Result<(), FilesError> {
        const STEP: &str = "direct read";
        let cache_err = cache_error(STEP);
        let user = |error| FilesError::User(STEP, error);
        let folios: [Pfn; READ_PAGES] = self.map_file(STEP, direct.clone())?;
        let clean_before = folios.iter().all(|&pfn| !self.cache.is_dirty(pfn));
        let mut table = [BioVec::NONE; BIO_VECS];
        // The device writes into the buffer: a write pin. (A failed step's
        // mappings are removed by `run`.)
        let (completion, bio, pinned) = self.user_bio(
            STEP,
            &mut table,
            BioOp::Read,
            source.start,
            READ_LEN,
            GupFlags::WRITE,
        )?;
        // Dirtied before the device writes (Linux's bio_set_pages_dirty).
        let dirtied = gupio::release::set_pages_dirty(&self.tracker, &bio);
        let submitted = self.submit(STEP, bio)?;
        let during = self
            .cache
            .writeback_pages(direct.clone(), &PinnedAction::Bounce);
        let released = self.cache.finish(&completion, submitted, true);
        let dirty_after = folios.iter().all(|&pfn| self.cache.is_dirty(pfn));
        let unmapped = self.space.unmap_all(&self.tracker).map_err(user);
        let released = released.map_err(&cache_err)?;
        unmapped?;
        dirtied.map_err(|error| FilesError::Cache(STEP, gupio_error(error)))?;
        self.summary.direct_pinned += pinned;
        self.summary.bounced_in_flight += during.counts.bounced;
        if !clean_before {
            return Err(FilesError::Check(
                STEP,
                "the folios were dirty before the read",
            ));
        }
        if !during.is_ok() || during.counts.bounced != READ_PAGES {
            return Err(FilesError::Count(
                STEP,
                "folios bounced in flight",
                during.counts.bounced,
                READ_PAGES,
            ));
        }
        if !dirty_after || released.unpinned != READ_PAGES {
            return Err(FilesError::Check(
                STEP,
                "the folios the device wrote are not dirty, or not all unpinned",
            ));
        }
        println!(
            "  {STEP}: the process maps DIRECT.BIN's disk pages {}..{} again; an O_DIRECT read of NOTES.TXT \
             (disk pages {}..{}) into them write-pins {pinned} page-cache folios, dirtied before submission; \
             writeback with Bounce meanwhile: {} bounced, left dirty; the device writes them; released \
             {} unpinned, still dirty for the next pass",
            direct.start,
            direct.start + READ_PAGES as u64,
            source.start,
            source.end,
            during.counts.bounced,
            released.unpinned
        );
        Ok(())
    }

    /// Maps the file's disk pages `pages` (their page-cache folios) shared
    /// and writable at the process's first user pages, as many as fit `N`;
    /// returns the folios.
    fn map_file<const N: usize>(
        &self,
        step: &'static str,
        pages: Range<u64>,
    ) -> Result<[Pfn; N], FilesError> {
        let mut folios = [Pfn::ZERO; N];
        for (index, (page, pfn)) in pages.zip(folios.iter_mut()).enumerate() {
            *pfn = self.cache.page(page).map_err(cache_error(step))?;
            self.space
                .map_page(&self.tracker, UserSpace::page_addr(index), *pfn, true)
                .map_err(|error| FilesError::User(step, error))?;
        }
        Ok(folios)
    }

    /// A bio of `op` at disk page `page` holding `len` bytes of the
    /// process's buffer (from its first user page) pinned with `flags`, and
    /// its started completion; also the pins taken. On a failure the bio's
    /// pages go back.
    fn user_bio<'t>(
        &self,
        step: &'static str,
        table: &'t mut [BioVec],
        op: BioOp,
        page: u64,
        len: usize,
        flags: GupFlags,
    ) -> Result<(Completion, Bio<BvecSlice<'t>>, usize), FilesError> {
        let failed = |error| FilesError::Cache(step, gupio_error(error));
        let completion = Completion::new();
        completion.start().map_err(failed)?;
        let mut bio = Bio::new(
            BvecSlice::new(table),
            op,
            BioSector(page * SECTORS_PER_PAGE),
            self.cache.limits(),
        );
        let pins = self.map.pins().acquired();
        let added = add_user_range(
            &self.tracker,
            self.space,
            &mut bio,
            UserAddr::new(UserSpace::page_addr(0)),
            len,
            flags,
        );
        let pinned = self.map.pins().acquired() - pins;
        let built = match added {
            Ok(added) if added == len && bio.origins().has(Origin::Pinned) => Ok(()),
            Ok(added) => Err(FilesError::Count(step, "bytes pinned", added, len)),
            Err(error) => Err(failed(error)),
        };
        if let Err(error) = built {
            let _ = gupio::release::release_pages(&self.tracker, &bio, false);
            return Err(error);
        }
        Ok((completion, bio, pinned))
    }

    /// Submits `bio`; a refused bio's pages go back.
    fn submit<'t>(
        &self,
        step: &'static str,
        bio: Bio<BvecSlice<'t>>,
    ) -> Result<SubmittedBio<BvecSlice<'t>>, FilesError> {
        SubmittedBio::submit(bio).map_err(|(bio, error)| {
            let _ = gupio::release::release_pages(&self.tracker, &bio, false);
            FilesError::Cache(step, gupio_error(error))
        })
    }
}
