//! The device threads: take a request, transfer it chunk by chunk, check
//! a write's checksums, complete the bio.

use std::collections::BTreeMap;
use std::thread;

use gupio::bio::{BioOp, BioStatus};
use gupio::pfn::Pfn;
use gupio::sync::atomic::{AtomicU64, Ordering};

use super::{Fault, GateSpec, OwnedBvecs, Request, Shared, UnstableWrite};
use crate::data::{SECTOR_SIZE, WORDS_PER_SECTOR};
use crate::memory::{lock, Frame};
use crate::Memory;

/// Where a transfer stands: chunks done and words since the last pause.
struct Pacer<'a> {
    shared: &'a Shared,
    gate: Option<GateSpec>,
    chunk_words: usize,
    since_pause: usize,
    chunks: usize,
}

impl Pacer<'_> {
    /// Counts `words` copied; pauses (gate, latency) at each chunk end.
    fn copied(&mut self, words: usize) {
        self.since_pause += words;
        while self.since_pause >= self.chunk_words {
            self.since_pause -= self.chunk_words;
            self.chunks += 1;
            self.pause();
        }
    }

    fn pause(&mut self) {
        if self
            .gate
            .as_ref()
            .is_some_and(|gate| gate.after_chunks == self.chunks)
        {
            if let Some(gate) = self.gate.take() {
                gate.stop();
            }
        }
        if !self.shared.config.latency.is_zero() {
            thread::sleep(self.shared.config.latency);
        }
    }
}

impl Shared {
    /// A device thread: takes requests until the device stops.
    pub(super) fn run(&self) {
        loop {
            let request = {
                let mut queue = lock(&self.queue);
                loop {
                    if let Some(request) = queue.requests.pop_front() {
                        queue.busy += 1;
                        break request;
                    }
                    if queue.stopping {
                        return;
                    }
                    queue = self
                        .work
                        .wait(queue)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            };
            self.process(request);
            self.finished_one();
        }
    }

    pub(super) fn finished_one(&self) {
        let mut queue = lock(&self.queue);
        queue.busy = queue.busy.saturating_sub(1);
        if queue.busy == 0 && queue.requests.is_empty() {
            self.idle.notify_all();
        }
    }

    fn take_gate(&self, op: BioOp) -> Option<GateSpec> {
        let mut gates = lock(&self.gates);
        let index = gates.iter().position(|gate| gate.op == op)?;
        Some(gates.remove(index))
    }

    /// Transfers, checks and completes one request.
    pub(super) fn process(&self, request: Request) {
        let Request {
            bio,
            completion,
            checksums,
            end_io,
        } = request;
        let op = bio.bio().op();
        let fault = lock(&self.faults).pop_front();
        let mut status = match fault {
            Some(Fault::Fail(status)) => status,
            _ => BioStatus::Ok,
        };
        if status.is_ok() {
            let gate = self.take_gate(op);
            status = self.transfer(bio.bio(), gate);
            if status.is_ok() && op == BioOp::Write {
                match &checksums {
                    Some(checksums) => self.verify(bio.bio(), checksums),
                    // A write without checksums leaves its blocks with none:
                    // a checksum recorded by an earlier write no longer
                    // describes them.
                    None => self.forget_checksums(bio.bio()),
                }
            }
        }
        if status.is_err() {
            // Relaxed: a statistic; it orders nothing.
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        // The interrupt handler: report the bio done; exactly one report
        // gets to run end_io.
        let memory = &*self.memory;
        // Nothing chains to these completions, so each bio ends alone: the
        // one rule gives back a completed bio whatever the completion said.
        let ended = bio.end(&completion, status, memory);
        if fault == Some(Fault::CompleteTwice) {
            if let Err(error) = completion.complete(status, memory) {
                // Relaxed: a statistic; it orders nothing.
                self.double_completions.fetch_add(1, Ordering::Relaxed);
                lock(&self.completion_errors).push(error);
            }
        }
        let counter = match op {
            BioOp::Read => &self.reads,
            _ => &self.writes,
        };
        // Relaxed: a statistic; it orders nothing.
        counter.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = ended.result {
            lock(&self.completion_errors).push(error);
        }
        end_io(ended.bio);
    }

    /// Copies the bio's data, chunk by chunk.
    fn transfer(&self, bio: &gupio::bio::Bio<OwnedBvecs>, gate: Option<GateSpec>) -> BioStatus {
        let op = bio.op();
        if !op.has_data() {
            return BioStatus::Ok;
        }
        let config = self.config;
        let total = usize::try_from(bio.size()).unwrap_or(usize::MAX);
        let chunk_bytes = config
            .chunk_bytes
            .max(total / config.max_chunks.max(1))
            .max(8);
        let mut pacer = Pacer {
            shared: self,
            gate,
            chunk_words: chunk_bytes / 8,
            since_pause: 0,
            chunks: 0,
        };
        if pacer.gate.as_ref().is_some_and(|g| g.after_chunks == 0) {
            pacer.pause();
        }
        let mut disk_word = match usize::try_from(bio.sector().0)
            .ok()
            .and_then(|s| s.checked_mul(WORDS_PER_SECTOR))
        {
            Some(word) => word,
            None => return BioStatus::Invalid,
        };
        for piece in bio.pages() {
            let Some(frame) = piece.page().and_then(|pfn| self.memory.frame(pfn)) else {
                return BioStatus::Protection;
            };
            let (offset, len) = (piece.offset(), piece.len());
            if offset % 8 != 0 || len % 8 != 0 {
                return BioStatus::Invalid;
            }
            let first = usize::try_from(offset / 8).unwrap_or(usize::MAX);
            let words = usize::try_from(len / 8).unwrap_or(usize::MAX);
            let Some(disk) = disk_word
                .checked_add(words)
                .and_then(|end| self.disk.words.get(disk_word..end))
            else {
                return BioStatus::Invalid;
            };
            let Some(page) = frame.words().get(first..first + words) else {
                return BioStatus::Invalid;
            };
            self.copy(op, page, disk, &mut pacer);
            disk_word += words;
        }
        let (counter, bytes) = match op {
            BioOp::Read => (&self.bytes_read, total),
            _ => (&self.bytes_written, total),
        };
        // Relaxed: a statistic; it orders nothing.
        counter.fetch_add(bytes, Ordering::Relaxed);
        if let Some(gate) = pacer.gate.take() {
            // The transfer ended before the gate: stop at the end instead,
            // so the test still sees it reached.
            gate.stop();
        }
        BioStatus::Ok
    }

    /// The DMA of one page piece, word by word, pausing at chunk ends.
    fn copy(&self, op: BioOp, page: &[AtomicU64], disk: &[AtomicU64], pacer: &mut Pacer<'_>) {
        let mut done = 0;
        while done < page.len() {
            let step = (pacer.chunk_words - pacer.since_pause).min(page.len() - done);
            let range = done..done + step;
            let (Some(page), Some(disk)) = (page.get(range.clone()), disk.get(range)) else {
                return;
            };
            let (from, to) = match op {
                BioOp::Read => (disk, page),
                _ => (page, disk),
            };
            for (source, target) in from.iter().zip(to) {
                // Relaxed: DMA words; the completion's AcqRel orders the
                // whole transfer before end_io.
                target.store(source.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            done += step;
            pacer.copied(step);
        }
    }

    /// Drops the checksums recorded for the blocks an unchecksummed write
    /// `bio` wrote.
    fn forget_checksums(&self, bio: &gupio::bio::Bio<OwnedBvecs>) {
        let sectors = u64::from(bio.size()) / u64::try_from(SECTOR_SIZE).unwrap_or(1);
        forget_overlapping(&mut lock(&self.recorded), bio.sector().0, sectors);
    }

    /// Recomputes each page piece's checksum over what reached the disk.
    fn verify(&self, bio: &gupio::bio::Bio<OwnedBvecs>, checksums: &[u64]) {
        let mut sector = bio.sector().0;
        for (piece, &expected) in bio.pages().zip(checksums) {
            let words = usize::try_from(piece.len() / 8).unwrap_or(0);
            // The device keeps the filesystem's checksum of the block (its
            // protection information, overwritten by the block's next
            // write) for a later scrub, replacing the blocks it overlaps.
            {
                let mut recorded = lock(&self.recorded);
                forget_overlapping(&mut recorded, sector, sectors_of(words));
                recorded.insert(sector, (words, expected));
            }
            if let Ok(written) = self.disk.checksum(sector, words) {
                if written != expected {
                    // Relaxed: a statistic; it orders nothing.
                    self.unstable_pages.fetch_add(1, Ordering::Relaxed);
                    lock(&self.unstable).push(UnstableWrite {
                        sector,
                        expected,
                        written,
                    });
                }
            }
            sector += u64::from(piece.len()) / u64::try_from(SECTOR_SIZE).unwrap_or(1);
        }
    }
}

/// Sectors a recorded run of `words` covers.
fn sectors_of(words: usize) -> u64 {
    u64::try_from(words.div_ceil(WORDS_PER_SECTOR)).unwrap_or(u64::MAX)
}

/// Removes every recorded checksum whose blocks overlap the `sectors`
/// sectors from `sector` (a record covers one page piece: at most a page).
fn forget_overlapping(recorded: &mut BTreeMap<u64, (usize, u64)>, sector: u64, sectors: u64) {
    let end = sector.saturating_add(sectors);
    let overlapping: Vec<u64> = recorded
        .range(sector.saturating_sub(64)..end)
        .filter(|(&start, &(len, _))| start.saturating_add(sectors_of(len)) > sector)
        .map(|(&start, _)| start)
        .collect();
    for start in overlapping {
        recorded.remove(&start);
    }
}

/// The filesystem's checksum of each page piece of `bio`, in order, over
/// the pieces' current contents (what [`Device::submit`](super::Device::submit) takes).
pub fn bio_checksums(memory: &Memory, bio: &gupio::bio::Bio<OwnedBvecs>) -> Vec<u64> {
    bio.pages()
        .map(|piece| {
            let first = usize::try_from(piece.offset() / 8).unwrap_or(0);
            let words = usize::try_from(piece.len() / 8).unwrap_or(0);
            piece
                .page()
                .and_then(|pfn: Pfn| memory.frame(pfn))
                .map(Frame::words)
                .and_then(|page| page.get(first..first + words))
                .map_or(0, crate::data::fnv1a_atomic)
        })
        .collect()
}

#[cfg(test)]
mod tests;
